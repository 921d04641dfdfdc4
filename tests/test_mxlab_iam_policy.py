"""`mxlab policy`: the organiser's least-privilege policy, built from statement groups (mxlab/lab/iam_policy.py).

What each group allows is proven by removing it in the enforcing sandbox (tests/test_iam_enforced.py);
these check the document itself: scopes, the non-obvious permissions, the service-role variant.
"""
import json

import pytest

from mxlab.lab import deploy, iam_policy
from mxlab.cli import build_parser

LAB = iam_policy.Lab("MxnetLab", "eu-west-1")


def statements(document, action):
    """The statements of `document` that allow `action` (exactly, or by a trailing * pattern)."""
    found = []
    for s in document["Statement"]:
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        if any(a == action or (a.endswith("*") and action.startswith(a[:-1])) for a in actions):
            found.append(s)
    return found


def resources(statement):
    return [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]


def test_every_command_that_calls_aws_has_its_groups():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    needing = {c for g in iam_policy.GROUPS for c in g.commands}
    # report (local files), policy (prints), sandbox and demo (the emulator) call no AWS API
    assert commands - needing == {"report", "policy", "sandbox", "demo"}
    assert len({g.sid for g in iam_policy.GROUPS}) == len(iam_policy.GROUPS)
    sids = [s["Sid"] for s in iam_policy.organiser_policy(LAB)["Statement"]]
    assert len(set(sids)) == len(sids) and all(sid.isalnum() for sid in sids)  # IAM: Sids are alphanumeric


def test_cloudformation_only_on_the_labs_stacks():
    policy = iam_policy.organiser_policy(LAB)
    cfn = [s for s in policy["Statement"] if any(a.startswith("cloudformation:") for a in s["Action"])]
    assert cfn
    for s in cfn:
        # the first stack and its shards MxnetLab-2 .. -5 (`?`: one character)
        assert resources(s) == ["arn:aws:cloudformation:eu-west-1:*:stack/MxnetLab/*",
                                "arn:aws:cloudformation:eu-west-1:*:stack/MxnetLab-?/*"]


def test_private_keys_only_from_the_key_pair_parameters():
    (s,) = statements(iam_policy.organiser_policy(LAB), "ssm:GetParameter")[:1]
    assert resources(s) == ["arn:aws:ssm:eu-west-1:*:parameter/ec2/keypair/*"]


@pytest.mark.parametrize("action", ["ec2:GetConsoleOutput", "ec2:StartInstances", "ec2:StopInstances"])
def test_instance_actions_only_on_the_labs_tagged_instances(action):
    (s,) = statements(iam_policy.organiser_policy(LAB), action)
    assert resources(s) == ["arn:aws:ec2:eu-west-1:*:instance/*"]
    assert s["Condition"] == {"StringEquals": {"aws:ResourceTag/stack": "MxnetLab"}}


def test_the_non_obvious_permissions_are_there():
    policy = iam_policy.organiser_policy(LAB)
    (slr,) = statements(policy, "iam:CreateServiceLinkedRole")
    assert slr["Condition"] == {"StringEquals": {"iam:AWSServiceName": "events.amazonaws.com"}}
    (passing,) = statements(policy, "iam:PassRole")
    assert resources(passing) == ["arn:aws:iam::*:role/MxnetLab-*"]
    assert sorted(passing["Condition"]["StringEquals"]["iam:PassedToService"]) == [
        "ec2.amazonaws.com", "scheduler.amazonaws.com"]
    (image,) = statements(policy, "ssm:GetParameters")
    assert resources(image) == ["arn:aws:ssm:eu-west-1:*:parameter/aws/service/deeplearning/*"]
    for action in ("ec2:CreateTags", "iam:TagRole", "servicequotas:GetServiceQuota",
                   "ec2:DescribeInstanceTypeOfferings", "scheduler:CreateSchedule", "ssm:PutParameter"):
        assert statements(policy, action), action


def test_the_instance_role_may_carry_only_the_ssm_core_policy():
    (attach,) = statements(iam_policy.organiser_policy(LAB), "iam:AttachRolePolicy")
    assert attach["Condition"] == {"ArnLike": {
        "iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}}


def test_with_a_cloudformation_service_role_the_organiser_creates_nothing_directly():
    narrow = iam_policy.organiser_policy(LAB, cfn_role="arn:aws:iam::123456789012:role/cfn-lab")
    for action in ("ec2:RunInstances", "ec2:CreateVpc", "iam:CreateRole", "cloudwatch:PutMetricAlarm",
                   "scheduler:CreateSchedule", "iam:CreateServiceLinkedRole"):
        assert not statements(narrow, action), action
    (passing,) = statements(narrow, "iam:PassRole")
    assert passing["Resource"] == "arn:aws:iam::123456789012:role/cfn-lab"
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    for action in ("cloudformation:CreateChangeSet", "ssm:GetParameter", "ec2:StartInstances"):
        assert statements(narrow, action), action
    role = iam_policy.service_role_policy(LAB)
    for action in ("ec2:RunInstances", "iam:CreateRole", "iam:PassRole", "ssm:GetParameters"):
        assert statements(role, action), action
    # the role makes the key pairs but never reads the attendees' private keys
    assert all("ec2/keypair" not in r for s in statements(role, "ssm:GetParameter") for r in resources(s))


def test_other_partitions_get_their_arns():
    policy = iam_policy.organiser_policy(iam_policy.Lab("Lab", "cn-north-1"))
    text = json.dumps(policy)
    assert "arn:aws:" not in text and "arn:aws-cn:cloudformation:cn-north-1:*:stack/Lab/*" in text


def test_the_default_labs_policy_is_one_managed_policy():
    assert len(iam_policy.split(iam_policy.organiser_policy(LAB))) == 1


def test_each_document_fits_a_managed_policy():
    for document in (iam_policy.organiser_policy(LAB), iam_policy.service_role_policy(LAB)):
        for part in iam_policy.split(document):
            assert iam_policy.size(part) <= iam_policy.MANAGED_POLICY_LIMIT
    big = {"Version": "2012-10-17", "Statement": iam_policy.organiser_policy(LAB)["Statement"] * 3}
    parts = iam_policy.split(big)
    assert len(parts) > 1 and sum(len(p["Statement"]) for p in parts) == len(big["Statement"])


def test_mxlab_policy_prints_the_one_copy(mxlab_cli, monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    code, out, err = mxlab_cli("policy", "--stack", "Lab", "--region", "us-east-2", "--json")
    assert code == 0, err
    assert json.loads(out) == iam_policy.organiser_policy(iam_policy.Lab("Lab", "us-east-2"))
    code, out, err = mxlab_cli("policy", "--cfn-role")
    assert code == 0, err
    assert json.loads(out) == iam_policy.organiser_policy(iam_policy.Lab("MxnetLab", "*"), cfn_role=True)
    assert "PassCloudFormationRole (up, extend, down)" in err and "DeployNetwork" not in err
    code, out, err = mxlab_cli("policy", "--service-role")
    assert code == 0 and json.loads(out) == iam_policy.service_role_policy(iam_policy.Lab("MxnetLab", "*"))
    assert "cloudformation.amazonaws.com" in err
    long = iam_policy.Lab("L" * 32, "ap-southeast-2", "123456789012")  # the longest names: two documents
    parts = iam_policy.split(iam_policy.organiser_policy(long))
    assert len(parts) == 2
    code, out, err = mxlab_cli("policy", "--stack", "L" * 32, "--region", "ap-southeast-2", "--account",
                               "123456789012", "--part", "2")
    assert code == 0 and json.loads(out) == parts[1] and "2 documents" in err
    code, out, err = mxlab_cli("policy", "--part", "2")
    assert code == 2 and "--part 2: the policy is 1 document(s)" in err
    code, out, err = mxlab_cli("policy", "--account", "12")
    assert code == 2 and "--account '12'" in err


def test_cfn_role_arn_deploys_and_destroys_through_the_role(monkeypatch, tmp_path, mxlab_cli):
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "home"))
    ran = []
    monkeypatch.setattr(deploy, "_run", lambda argv, region, stack: ran.append(argv) or 0)
    role = "arn:aws:iam::123456789012:role/mxlab-cloudformation"
    code, out, err = mxlab_cli("up", "--skip-preflight", "-c", "ssh_cidr=203.0.113.7/32", "-c", "cfn_role_arn=" + role)
    assert code == 0, err
    code, out, err = mxlab_cli("down")  # from the saved context
    assert code == 0, err
    for argv in ran:
        assert argv[argv.index("--role-arn") + 1] == role
    code, out, err = mxlab_cli("up", "--skip-preflight", "-c", "ssh_cidr=203.0.113.7/32", "-c", "cfn_role_arn=mxlab")
    assert code == 2 and "cfn_role_arn='mxlab': expected an IAM role ARN" in err
