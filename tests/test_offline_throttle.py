"""AWS throttling, modelled in the emulator (mxlab/offline/throttle.py), and mxlab finishing through it
(issue 22, finding 12): every call used to build a new boto3 session and client with the legacy five
attempts, and `hosts` asked EC2 once per attendee in turn."""
import botocore.config
import botocore.exceptions
import pytest

from mxlab.hosts import readiness
from mxlab.lab import aws
from mxlab.offline import REPO_ROOT, throttle
from mxlab.offline.sandbox_process import SandboxProcess
from mxlab.lab.targets import Target

pytestmark = pytest.mark.aws_behaviour
NO_RETRY = botocore.config.Config(retries={"total_max_attempts": 1})


@pytest.mark.parametrize("service, call, code, status", [
    ("ec2", lambda c: c.describe_instances(), "RequestLimitExceeded", 503),
    ("cloudformation", lambda c: c.describe_stacks(), "Throttling", 400),
    ("ssm", lambda c: c.get_parameter(Name="/x"), "ThrottlingException", 400),
    ("service-quotas", lambda c: c.get_service_quota(ServiceCode="ec2", QuotaCode="L-1216C47A"),
     "ThrottlingException", 400),
])
def test_a_throttled_call_gets_the_services_own_error(aws_emulator, service, call, code, status):
    client = aws_emulator.boto3_client(service, config=NO_RETRY)
    aws_emulator.set_throttle(0.999999)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            call(client)
    finally:
        aws_emulator.set_throttle(0)
    error = raised.value.response
    assert error["Error"]["Code"] == code and error["ResponseMetadata"]["HTTPStatusCode"] == status


def test_mxlabs_clients_finish_through_a_30_percent_throttle_and_hosts_asks_once(aws_emulator, monkeypatch):
    for key, value in aws_emulator.env({}).items():
        monkeypatch.setenv(key, value)
    ec2 = aws_emulator.boto3_client("ec2")
    reservation = ec2.run_instances(ImageId=aws_emulator.default_image_id(), InstanceType="m5.large",
                                    MinCount=30, MaxCount=30)
    targets = [Target(label="attendee-%d" % (n + 1), host="", port=22, user="u", identity=None,
                      known_hosts=REPO_ROOT, instance_id=i["InstanceId"])
               for n, i in enumerate(reservation["Instances"])]
    aws_emulator.set_throttle(0.3)
    try:
        first = throttle.counts()
        for _ in range(40):  # the same thread's client, again and again
            assert aws.client("ec2") is aws.client("ec2")
            aws.client("ec2").describe_availability_zones()
        before = throttle.counts()
        readiness.refresh_all(targets)
        after = throttle.counts()
    finally:
        aws_emulator.set_throttle(0)
    assert all(t.state == "running" for t in targets)
    assert before["throttled"] > first["throttled"]  # it did throttle, and every call got through
    # 30 attendees, one DescribeInstances that got through (a throttled try is a call too)
    assert (after["calls"] - before["calls"]) - (after["throttled"] - before["throttled"]) == 1


@pytest.mark.slow
def test_every_command_finishes_in_a_sandbox_that_throttles_30_percent(tmp_path):
    box = SandboxProcess(tmp_path / "box", "--attendees", "2", "--throttle", "0.3")
    try:
        box.wait_ready()  # the deploy itself (the CDK CLI's calls) went through the throttle
        photo = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")
        for argv in (["hosts"], ["run", "--all", "--model", "efficientnet-lite0", photo],
                     ["handout", "--all", "--out", str(tmp_path / "handout")], ["down"]):
            done = box.mxlab(*argv)
            assert done.returncode == 0, (argv, done.stdout + done.stderr)
            assert "Traceback" not in done.stderr
    finally:
        box.stop()
