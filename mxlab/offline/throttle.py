"""AWS throttling in the emulator: a share of API calls answered with the error each service returns
when it throttles, so every command is proven to finish against an account that is busy (a room's
worth of parallel calls, or another tool in the same account, makes AWS throttle).

set_rate(0.3) makes about 30 % of the calls to EC2, CloudFormation, SSM and Service Quotas fail, each
in its own protocol as AWS answers them: EC2 HTTP 503 RequestLimitExceeded, CloudFormation HTTP 400
Throttling, SSM and Service Quotas HTTP 400 ThrottlingException. The SDKs (boto3, the CDK CLI's) retry
these; mxlab's clients do so adaptively (mxlab/lab/aws.py). Calls made in-process (the sandbox's own
backends) are never throttled. Not modelled: AWS's token buckets per action, bursts, or per-account
limits: the share is random (seed it with MXLAB_THROTTLE_SEED for a repeatable run).
"""
import os
import random
import re
import threading
import uuid

_lock = threading.Lock()
_rate = 0.0
_random = random.Random(int(os.environ.get("MXLAB_THROTTLE_SEED", "0")) or None)
_counts = {"calls": 0, "throttled": 0}
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


def set_rate(rate):
    """Throttle this share (0..1) of the calls from now on; returns the previous share."""
    global _rate
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError("throttle rate %r: expected 0 <= rate < 1" % rate)
    with _lock:
        previous, _rate = _rate, float(rate)
    return previous


def counts():
    with _lock:
        return dict(_counts)


def _ec2(start_response):
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>RequestLimitExceeded"
            "</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>%s</RequestID>"
            "</Response>" % uuid.uuid4())
    start_response("503 Service Unavailable", [("Content-Type", "text/xml")])
    return [body.encode()]


def _query(start_response):
    body = ("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded"
            "</Message></Error><RequestId>%s</RequestId></ErrorResponse>" % uuid.uuid4())
    start_response("400 Bad Request", [("Content-Type", "text/xml")])
    return [body.encode()]


def _json(start_response):
    body = '{"__type":"ThrottlingException","message":"Rate exceeded"}'
    start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1"),
                                       ("x-amzn-RequestId", str(uuid.uuid4()))])
    return [body.encode()]


ANSWERS = {"ec2": _ec2, "cloudformation": _query, "ssm": _json, "servicequotas": _json}


def install():
    """Patch moto; emulator.install_extensions() calls it, once per process."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def __call__(self, environ, start_response):
        match = _SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        answer = ANSWERS.get(match.group(1)) if match else None
        if answer is not None:
            with _lock:
                _counts["calls"] += 1
                throttled = _rate > 0 and _random.random() < _rate
                if throttled:
                    _counts["throttled"] += 1
            if throttled:
                return answer(start_response)
        return original(self, environ, start_response)
    DomainDispatcherApplication.__call__ = __call__
