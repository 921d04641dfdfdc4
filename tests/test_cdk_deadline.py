"""The lab's deadline (cdk/deadline.py): AWS stops/terminates the instances by itself.

One EventBridge Scheduler at() schedule per stack with the universal EC2 target,
a role that may do only that to only those instances, and no Lambda or asset.
(The sandbox carrying it out: tests/test_offline_scheduler.py.)
"""
import json
import re

import pytest

CIDR = "203.0.113.7/32"
THIRTY = dict(ssh_cidr=CIDR, attendees="30")


def _resources(template, rtype):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == rtype}


def _instance_ids(template):
    return sorted(_resources(template, "AWS::EC2::Instance"))


def _deadline(stack):
    return stack.config.deadline


@pytest.mark.parametrize("shard", [0, 1])
def test_each_stack_stops_its_own_instances_at_the_deadline(lab_stacks, shard):
    template = lab_stacks.template(shard=shard, **THIRTY).to_json()
    stack = lab_stacks.stacks(**THIRTY)[shard]
    instances = _instance_ids(template)
    assert len(instances) == (20 if shard == 0 else 10)
    (schedule,) = _resources(template, "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert re.fullmatch(r"at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\)", props["ScheduleExpression"])
    assert props["ScheduleExpression"] == "at(%s)" % _deadline(stack)
    assert props.get("ScheduleExpressionTimezone", "UTC") == "UTC"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = props["Target"]
    assert target["Arn"] == {"Fn::Sub": "arn:${AWS::Partition}:scheduler:::aws-sdk:ec2:stopInstances"}
    # the input is the API call's parameters: exactly this stack's instances
    body = target["Input"]["Fn::Sub"]
    parameters = json.loads(re.sub(r"\$\{(\w+)\}", r"\1", body))
    assert list(parameters) == ["InstanceIds"]
    assert sorted(parameters["InstanceIds"]) == instances and len(set(parameters["InstanceIds"])) == len(instances)
    assert target["RoleArn"] == {"Fn::GetAtt": ["LabExpiryRole", "Arn"]}
    assert template["Outputs"]["LabDeadline"]["Value"] == "%sZ stop" % _deadline(stack)


def test_the_schedules_role_may_only_stop_those_instances(lab_stacks):
    template = lab_stacks.template(**THIRTY).to_json()
    role = template["Resources"]["LabExpiryRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "ManagedPolicyArns" not in role
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "ec2:StopInstances"
    delimiter, (body, variables) = statement["Resource"]["Fn::Split"][0], \
        statement["Resource"]["Fn::Split"][1]["Fn::Sub"]
    assert delimiter == ","
    assert variables == {"a": {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:"
                                          "${AWS::AccountId}:instance/"}}
    assert sorted(body.split(",")) == ["${a}${%s}" % i for i in _instance_ids(template)]
    assert "*" not in json.dumps(role)


def test_terminate_instead_of_stop(lab_stacks):
    template = lab_stacks.template(ssh_cidr=CIDR, expiry_action="terminate").to_json()
    (schedule,) = _resources(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["Arn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:scheduler:::aws-sdk:ec2:terminateInstances"}
    (policy,) = template["Resources"]["LabExpiryRole"]["Properties"]["Policies"]
    assert policy["PolicyDocument"]["Statement"][0]["Action"] == "ec2:TerminateInstances"
    assert template["Outputs"]["LabDeadline"]["Value"].endswith("Z terminate")


def test_lifetime_zero_has_no_deadline(lab_stacks):
    for shard in (0, 1):
        template = lab_stacks.template(shard=shard, lifetime_hours="0", **THIRTY).to_json()
        assert not _resources(template, "AWS::Scheduler::Schedule")
        assert "LabExpiryRole" not in template["Resources"]
        assert "LabDeadline" not in template["Outputs"]


def test_an_explicit_deadline_is_used_as_given(lab_stacks):
    template = lab_stacks.template(ssh_cidr=CIDR, deadline="2030-06-01T18:00:00").to_json()
    (schedule,) = _resources(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["ScheduleExpression"] == "at(2030-06-01T18:00:00)"
    assert template["Outputs"]["LabDeadline"]["Value"] == "2030-06-01T18:00:00Z stop"


def test_the_deadline_needs_no_lambda_asset_or_custom_resource(lab_stacks):
    for shard in (0, 1):
        text = json.dumps(lab_stacks.template(shard=shard, **THIRTY).to_json())
        assert "AWS::Lambda" not in text and "Custom::" not in text
        assert "AWS::CloudFormation::CustomResource" not in text


@pytest.mark.aws_behaviour
@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_the_schedules_target_is_in_the_stacks_own_partition(lab_stacks, partition):
    """Outside `aws` (China, GovCloud) a literal arn:aws:scheduler target is refused: the ARN is
    CloudFormation's ${AWS::Partition}, resolved where the stack is deployed."""
    template = lab_stacks.template(ssh_cidr=CIDR).to_json()
    (schedule,) = _resources(template, "AWS::Scheduler::Schedule").values()
    arn = schedule["Properties"]["Target"]["Arn"]["Fn::Sub"]
    assert arn.replace("${AWS::Partition}", partition) == \
        "arn:%s:scheduler:::aws-sdk:ec2:stopInstances" % partition
    assert "arn:aws:" not in json.dumps(template)
