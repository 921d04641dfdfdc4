"""boto3 sessions the way the AWS CLI takes profile and region (flags, then environment), and the clients
mxlab calls AWS with: one session and one client per service and region per thread (a boto3 session is
not thread-safe, and building one costs ~50 ms: every call built a new one before), with adaptive retries
(AWS throttles a room's worth of parallel calls: RequestLimitExceeded, Throttling).
"""
import os
import threading

from mxlab.errors import AwsAccessDenied, UsageError

_options = {"profile": None, "region": None}
_local = threading.local()
# Throttling and transient errors are retried with client-side rate limiting; ten attempts carry a
# command through a 30 % throttle rate (tests/test_mxlab_aws.py) where the legacy five did not.
RETRIES = {"mode": "adaptive", "max_attempts": 10}

NO_REGION = ("no AWS region is configured: pass --region (e.g. --region us-east-1), set "
             "AWS_REGION or AWS_DEFAULT_REGION, or put one in ~/.aws/config "
             "(`aws configure set region us-east-1`)")


def configure(profile=None, region=None):
    _options.update(profile=profile, region=region)
    _local.__dict__.clear()


def retry_config():
    from botocore.config import Config
    return Config(retries=dict(RETRIES))


def client(service, region=None):
    """This thread's client for `service` (in `region`, default the session's), made once for the same
    profile, region and AWS_* environment (another endpoint or key gets its own)."""
    setting = (_options["profile"], _options["region"],
               tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
    if _local.__dict__.get("setting") != setting:
        _local.__dict__.clear()
        _local.setting, _local.session, _local.clients = setting, session(), {}
    key = (service, region)
    if key not in _local.clients:
        _local.clients[key] = _local.session.client(service, region_name=region, config=retry_config())
    return _local.clients[key]


def session():
    """A boto3 session with a region, or UsageError saying how to set one.

    AWS_REGION counts as the AWS CLI v2 takes it, before AWS_DEFAULT_REGION and
    the profile's region (boto3 itself reads only AWS_DEFAULT_REGION); a missing
    region would otherwise surface as botocore's NoRegionError from whichever
    call came first.
    """
    # Imported here, not at the top: start-up time of runs that need no AWS call (boto3 costs ~0.25 s).
    import boto3
    import botocore.exceptions

    region = _options["region"] or os.environ.get("AWS_REGION") or None
    try:
        sess = boto3.session.Session(profile_name=_options["profile"], region_name=region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise UsageError("%s: check --profile / AWS_PROFILE (`aws configure list-profiles`)"
                         % exc) from None
    if not sess.region_name:
        raise UsageError(NO_REGION)
    # Every client of the session: an IAM refusal becomes AwsAccessDenied, which names the action,
    # before any caller's `except ClientError` can make it something else.
    sess.events.register("after-call", refuse_denied)
    return sess


def refuse_denied(parsed=None, model=None, **_):
    """botocore's after-call hook: raise AwsAccessDenied for AccessDenied/UnauthorizedOperation."""
    error = (parsed or {}).get("Error") or {}
    if error.get("Code") not in AwsAccessDenied.CODES:
        return
    action = AwsAccessDenied.action_in(error.get("Message"))
    if action is None and model is not None:  # a message without it: the call itself
        action = "%s:%s" % (model.service_model.signing_name, model.name)
    raise AwsAccessDenied(action or "the call")
