"""`mxlab sandbox --enforce-iam`: the lab deployed and used as an IAM user with exactly `mxlab policy`'s
policy, the emulator enforcing IAM as AWS does. With it every command works (hosts, prepare, run,
handout, --start, a redeploy, down); with one of the groups the commands on the hosts need left out,
the command that needs it fails naming the refused action and pointing at `mxlab policy`, never a
traceback. (What `mxlab up` of a new lab needs, group by group: tests/test_iam_enforced_deploy.py.)

One sandbox (2 attendees) for the module; the administrator's keys (MXLAB_SANDBOX_ADMIN_*) change the
organiser's policy for each removal and put the whole one back after it; `down` comes last.
"""
import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mxlab.lab import iam_policy
from mxlab.offline import REPO_ROOT
from mxlab.offline.account import ACCOUNT_ID
from mxlab.offline.lab import ORGANISER
from mxlab.offline.sandbox_process import SandboxProcess

# timeout: the first test also waits for the sandbox.
pytestmark = [pytest.mark.slow, pytest.mark.aws_behaviour, pytest.mark.timeout(1800)]
PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")
MODEL = "efficientnet-lite0"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    sandbox = SandboxProcess(tmp_path_factory.mktemp("iam-sandbox"), "--attendees", "2", "--enforce-iam")
    try:
        yield sandbox.wait_ready()
    finally:
        sandbox.stop()


def lab(box):
    return iam_policy.Lab(box.variables.get("MXLAB_STACK", "MxnetLab"), box.variables["AWS_DEFAULT_REGION"],
                          ACCOUNT_ID)


def set_policy(box, leave_out=()):
    """The organiser's managed policies, as its administrator replaces them."""
    iam = box.client("iam", admin=True)
    for attached in iam.list_attached_user_policies(UserName=ORGANISER)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=ORGANISER, PolicyArn=attached["PolicyArn"])
        iam.delete_policy(PolicyArn=attached["PolicyArn"])
    for i, document in enumerate(iam_policy.split(iam_policy.organiser_policy(lab(box), leave_out=leave_out)), 1):
        arn = iam.create_policy(PolicyName="%s-%d" % (ORGANISER, i), PolicyDocument=json.dumps(document))
        iam.attach_user_policy(UserName=ORGANISER, PolicyArn=arn["Policy"]["Arn"])


@pytest.fixture
def without(box):
    """without(group): the organiser's policy less that statement group, for this test only."""
    yield lambda group: set_policy(box, leave_out=[group])
    set_policy(box)


def mxlab(box, *args, home=None, cwd=None):
    """`mxlab ARGS` as the organiser; home: another MXLAB_HOME (what a fresh machine has)."""
    env = box.env()
    if home is not None:
        env["MXLAB_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "mxlab"] + [str(a) for a in args], env=env, capture_output=True,
                          text=True, timeout=900, cwd=str(cwd or REPO_ROOT))


def fresh_home(box, tmp_path, outputs=True):
    """An MXLAB_HOME with at most the lab's outputs file: no private keys, no pinned host keys yet."""
    stack = box.variables.get("MXLAB_STACK", "MxnetLab")
    home = tmp_path / "fresh-home"
    (home / stack).mkdir(parents=True)
    if outputs:
        shutil.copy(Path(box.variables["MXLAB_HOME"]) / stack / "outputs.json", home / stack / "outputs.json")
    return home


def refused(result, action):
    text = result.stdout + result.stderr
    return ("AWS refused %s" % action in text and "the IAM policy of this user does not allow it; "
            "`mxlab policy` prints what mxlab needs" in text and "Traceback" not in text)


def up_args():
    """The sandbox's own deploy context: a redeploy that changes nothing but the deadline."""
    return ["up", "-c", "ssh_cidr=127.0.0.1/32", "-c", "attendees=2",
            "-c", "ssh_user=%s" % pwd.getpwuid(os.getuid()).pw_name]


def test_the_exported_keys_are_the_policy_users(box):
    identity = box.client("sts").get_caller_identity()
    assert identity["Arn"] == "arn:aws:iam::%s:user/%s" % (ACCOUNT_ID, ORGANISER)
    iam = box.client("iam", admin=True)
    attached = iam.list_attached_user_policies(UserName=ORGANISER)["AttachedPolicies"]
    documents = [iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId="v1")["PolicyVersion"]["Document"]
                 for p in attached]
    documents = [json.loads(d) if isinstance(d, str) else d for d in documents]
    assert documents == iam_policy.split(iam_policy.organiser_policy(lab(box)))
    with pytest.raises(box.client("iam").exceptions.ClientError):  # the organiser is no administrator
        box.client("iam").list_users()


def test_with_the_policy_every_command_works(box, tmp_path):
    hosts = box.mxlab("hosts")
    assert hosts.returncode == 0 and hosts.stdout.count("running") == 2, hosts.stdout + hosts.stderr
    prepare = box.mxlab("prepare", "--all", "--models", MODEL)
    assert prepare.returncode == 0, prepare.stdout + prepare.stderr
    run = mxlab(box, "run", "--all", "--model", MODEL, PHOTO, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    handout = box.mxlab("handout", "--out", tmp_path / "handout")
    assert handout.returncode == 0, handout.stdout + handout.stderr
    # the idle stop or the deadline stopped a host: --start brings it back, as the organiser
    ec2 = box.client("ec2", admin=True)
    instance = box.outputs()["Attendee2InstanceId"]
    ec2.stop_instances(InstanceIds=[instance])
    again = mxlab(box, "run", "--attendee", "2", "--start", "--model", MODEL, PHOTO, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "starting stopped instance %s" % instance in again.stderr
    redeploy = box.mxlab(*up_args())
    assert redeploy.returncode == 0, redeploy.stdout + redeploy.stderr
    assert "lab deadline" in redeploy.stderr and "AWS refused" not in redeploy.stderr
    assert "vCPUs needed" in redeploy.stderr  # the quota was read, as the organiser


def test_hosts_without_the_stack_read_names_describe_stacks(box, without, tmp_path):
    without("ReadLabStacks")
    hosts = mxlab(box, "hosts", home=fresh_home(box, tmp_path, outputs=False))  # no outputs here: DescribeStacks
    assert hosts.returncode == 1 and refused(hosts, "cloudformation:DescribeStacks"), hosts.stdout + hosts.stderr


def test_hosts_without_ec2_reads_names_describe_instances(box, without):
    without("ReadEc2")
    hosts = box.mxlab("hosts")
    assert hosts.returncode == 1 and refused(hosts, "ec2:DescribeInstances"), hosts.stdout + hosts.stderr
    assert "unknown (AWS refused ec2:DescribeInstances)" in hosts.stdout  # the listing still shows the hosts


@pytest.mark.parametrize("group,action", [("HostKeysFromConsole", "ec2:GetConsoleOutput"),
                                          ("AttendeeKeys", "ssm:GetParameter")])
def test_a_first_run_without_the_keys_is_refused_naming_the_action(box, without, tmp_path, group, action):
    without(group)
    run = mxlab(box, "run", "--attendee", "1", "--model", MODEL, PHOTO, home=fresh_home(box, tmp_path), cwd=tmp_path)
    assert run.returncode == 1 and refused(run, action), run.stdout + run.stderr


def test_start_without_start_instances_is_refused(box, without, tmp_path):
    ec2 = box.client("ec2", admin=True)
    instance = box.outputs()["Attendee2InstanceId"]
    ec2.stop_instances(InstanceIds=[instance])
    try:
        without("StartStopLabInstances")
        run = mxlab(box, "run", "--attendee", "2", "--start", "--model", MODEL, PHOTO, cwd=tmp_path)
        assert run.returncode == 1 and refused(run, "ec2:StartInstances"), run.stdout + run.stderr
    finally:
        ec2.start_instances(InstanceIds=[instance])


def test_an_unpinned_restarted_instance_without_run_command_is_refused(box, without, tmp_path):
    """Restarted before anything pinned its keys, an instance no longer shows them on its console:
    mxlab reads them through SSM Run Command (HostKeysThroughSsm), which this policy then lacks."""
    ec2 = box.client("ec2", admin=True)
    instance = box.outputs()["Attendee1InstanceId"]
    ec2.stop_instances(InstanceIds=[instance])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance], WaiterConfig={"Delay": 1})
    ec2.start_instances(InstanceIds=[instance])
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig={"Delay": 1})
    without("HostKeysThroughSsm")
    run = mxlab(box, "run", "--attendee", "1", "--model", MODEL, PHOTO, home=fresh_home(box, tmp_path), cwd=tmp_path)
    assert run.returncode == 1 and refused(run, "ssm:SendCommand"), run.stdout + run.stderr


def test_up_without_quota_reads_says_so_and_goes_on(box, without):
    without("ReadQuotas")
    redeploy = box.mxlab(*up_args())
    assert redeploy.returncode == 0, redeploy.stdout + redeploy.stderr
    assert refused(redeploy, "servicequotas:GetServiceQuota"), redeploy.stderr
    assert "could not read the quota" in redeploy.stderr


def test_down_as_the_policy_user(box):
    down = box.mxlab("down")
    assert down.returncode == 0, down.stdout + down.stderr
    stacks = box.client("cloudformation", admin=True).list_stacks()["StackSummaries"]
    assert all(s["StackStatus"] == "DELETE_COMPLETE" for s in stacks if s["StackName"].startswith("MxnetLab"))
