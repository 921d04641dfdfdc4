"""`mxlab up`/`down` as an organiser with exactly `mxlab policy`'s policy, against an emulator that
enforces IAM as AWS does (mxlab/offline/iam_enforcement.py): CloudFormation creates the lab's
resources with the deployer's permissions. With one statement group left out, `mxlab up` fails
naming the action that group allows and pointing at `mxlab policy`; with the whole policy the lab
deploys, its instance role cannot read the attendees' keys, and `down` removes it.

One enforcing emulator for the module; each `up` synthesizes the app (about 20 s here). The
removals come first: a refused create leaves the stack ROLLBACK_COMPLETE with nothing created (the
next `cdk deploy` deletes it before trying again), so no alarm has made CloudWatch's service-linked
role yet when AlarmServiceLinkedRole's turn comes. (The commands on the hosts, as the policy user:
tests/test_iam_enforced_sandbox.py.)
"""
import json

import boto3
import pytest

from mxlab.lab import iam_policy
from mxlab.offline.account import ACCOUNT_ID
from mxlab.offline.emulator import AwsEmulator

pytestmark = [pytest.mark.slow, pytest.mark.aws_behaviour, pytest.mark.timeout(1200)]  # each up synthesizes the app

STACK = "IamLab"
# --timeout 5: no instance here prints host keys (no sshd plays it), so `up` pins none and says so
UP = ["up", "--stack", STACK, "-c", "ssh_cidr=127.0.0.1/32", "-c", "attendees=2", "--timeout", "5"]
USER = "organiser"

# (group left out, the action `mxlab up` of a new lab is then refused, first)
CREATE_NEEDS = [
    ("DeployLabStacks", "cloudformation:CreateChangeSet"),
    ("ReadImageParameter", "ssm:GetParameters"),  # as CloudFormation resolves it (the pre-flight skipped)
    ("DeployNetwork", "ec2:CreateVpc"),
    ("TagLabResources", "ec2:CreateTags"),
    ("DeployInstances", "ec2:CreateKeyPair"),
    ("DeployRoles", "iam:CreateRole"),
    ("PassLabRoles", "iam:PassRole"),
    ("DeployIdleAlarms", "cloudwatch:PutMetricAlarm"),
    ("AlarmServiceLinkedRole", "iam:CreateServiceLinkedRole"),
    ("DeployDeadline", "scheduler:CreateSchedule"),
]


@pytest.fixture(scope="module")
def enforcing():
    emulator = AwsEmulator(enforce_iam=True).start()
    try:
        lab = iam_policy.Lab(STACK, emulator.region, ACCOUNT_ID)
        credentials = emulator.add_user(USER, iam_policy.split(iam_policy.organiser_policy(lab)))
        yield emulator, lab, credentials
    finally:
        emulator.stop()


@pytest.fixture
def organiser(enforcing, monkeypatch, tmp_path_factory):
    """mxlab (in-process) and the CDK CLI it runs sign as the organiser; `policy(leave_out)` sets
    the organiser's policy (the whole one again after the test)."""
    emulator, lab, credentials = enforcing
    env = emulator.env({})
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(credentials)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path_factory.getbasetemp() / "iam-deploy-home"))

    def policy(leave_out=()):
        emulator.set_user_policies(USER, iam_policy.split(iam_policy.organiser_policy(lab, leave_out=leave_out)))
    yield policy
    policy()


def refused(err, action, doing):
    return ("AWS refused %s (%s): the IAM policy of this user does not allow it; `mxlab policy` prints "
            "what mxlab needs" % (action, doing)) in err and "Traceback" not in err


@pytest.mark.parametrize("group,action", CREATE_NEEDS, ids=[g for g, _ in CREATE_NEEDS])
def test_up_without_a_group_is_refused_naming_its_action(organiser, mxlab_cli, enforcing, group, action):
    organiser(leave_out=[group])
    # The pre-flight reads the image parameter too (ssm:GetParameter): skipped, CloudFormation's turn.
    code, out, err = mxlab_cli(*UP + (["--skip-preflight"] if group == "ReadImageParameter" else []))
    assert code == 1, out + err
    assert refused(err, action, "cdk deploy"), out + err
    emulator = enforcing[0]
    stacks = emulator.boto3_client("cloudformation").describe_stacks(StackName=STACK)["Stacks"] \
        if group != "DeployLabStacks" else []
    for stack in stacks:  # CloudFormation rolled the new stack back: nothing of it is left running
        assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert not [i for r in emulator.boto3_client("ec2").describe_instances()["Reservations"]
                for i in r["Instances"] if i["State"]["Name"] == "running"]


def test_with_the_policy_up_deploys_and_down_destroys(organiser, mxlab_cli, enforcing):
    emulator = enforcing[0]
    code, out, err = mxlab_cli(*UP)
    assert code == 0, out + err
    iam = emulator.boto3_client("iam")
    assert iam.get_role(RoleName="AWSServiceRoleForCloudWatchEvents")  # made by the first EC2-action alarm
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               emulator.boto3_client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    check_instance_role_cannot_read_keys(emulator, outputs)
    code, out, err = mxlab_cli("down", "--stack", STACK)
    assert code == 0, out + err
    assert not [s for s in emulator.boto3_client("cloudformation").list_stacks()["StackSummaries"]
                if s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE"]


def check_instance_role_cannot_read_keys(emulator, outputs):
    """Finding: AmazonSSMManagedInstanceCore (the instance role's, for Session Manager) allows
    ssm:GetParameter on every parameter; code on attendee 1's host signs with that role's keys (what
    the instance metadata service hands out) and must not read attendee 2's private key."""
    keys = emulator.instance_role_credentials(outputs["Attendee1InstanceId"])
    ssm = boto3.client("ssm", endpoint_url=emulator.endpoint_url, region_name=emulator.region,
                       aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
                       aws_session_token=keys["AWS_SESSION_TOKEN"])
    from cdk.config import DEFAULT_AMI_SSM_PARAMETER
    assert ssm.get_parameter(Name=DEFAULT_AMI_SSM_PARAMETER)["Parameter"]["Value"].startswith("ami-")
    for n in (1, 2):
        with pytest.raises(ssm.exceptions.ClientError) as denied:
            ssm.get_parameter(Name=outputs["Attendee%dPrivateKeyParameter" % n], WithDecryption=True)
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "with an explicit deny" in denied.value.response["Error"]["Message"]  # the role's Deny, not a gap


def test_through_a_cloudformation_service_role_the_narrow_policy_suffices(organiser, mxlab_cli, enforcing):
    """-c cfn_role_arn=...: CloudFormation acts as the role (`mxlab policy --service-role`), the
    organiser has only `mxlab policy --cfn-role`'s policy: creating nothing directly, passing the role."""
    emulator, lab, _ = enforcing
    iam = emulator.boto3_client("iam")  # the administrator's
    role = iam.create_role(RoleName="mxlab-cloudformation", AssumeRolePolicyDocument=json.dumps(
        iam_policy.service_role_trust(lab)))["Role"]["Arn"]
    iam.put_role_policy(RoleName="mxlab-cloudformation", PolicyName="mxlab",
                        PolicyDocument=json.dumps(iam_policy.service_role_policy(lab)))
    emulator.set_user_policies(USER, iam_policy.split(iam_policy.organiser_policy(lab, cfn_role=role)))
    code, out, err = mxlab_cli(*UP)  # without the role, CloudFormation acts as the organiser
    assert code == 1 and refused(err, "ec2:CreateVpc", "cdk deploy"), out + err
    emulator.set_user_policies(USER, iam_policy.split(iam_policy.organiser_policy(
        lab, cfn_role=role, leave_out=["PassCloudFormationRole"])))
    code, out, err = mxlab_cli(*UP + ["-c", "cfn_role_arn=" + role])
    assert code == 1 and refused(err, "iam:PassRole", "cdk deploy"), out + err
    emulator.set_user_policies(USER, iam_policy.split(iam_policy.organiser_policy(lab, cfn_role=role)))
    code, out, err = mxlab_cli(*UP + ["-c", "cfn_role_arn=" + role])
    assert code == 0, out + err
    code, out, err = mxlab_cli("down", "--stack", STACK)  # through the role again (the saved context)
    assert code == 0, out + err
