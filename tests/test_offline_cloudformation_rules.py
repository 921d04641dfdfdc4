"""CloudFormation's update rules in the emulator (mxlab/offline/cloudformation_rules.py).

Small templates straight through the emulator's CloudFormation API (UpdateStack and
change sets, as `cdk deploy` uses): an overlapping subnet replacement fails with
InvalidSubnet.Conflict, and an export another stack imports can neither change nor
go away. The lab's own growth never hits either (tests/test_cdk_network.py).
"""
import json

import botocore.exceptions
import pytest

pytestmark = pytest.mark.aws_behaviour


def _network(cidrs, export=True, exported="LabPublicSubnet"):
    """A VPC with subnets {logical id: CIDR}, exporting one subnet's id as Net-SubnetId."""
    resources = {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.42.0.0/24"}}}
    for logical_id, cidr in cidrs.items():
        resources[logical_id] = {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": cidr}}
    template = {"Resources": resources, "Outputs": {"Vpc": {"Value": {"Ref": "Vpc"}}}}
    if export:
        template["Outputs"]["LabSubnetId"] = {"Value": {"Ref": exported},
                                              "Export": {"Name": "Net-SubnetId"}}
    return json.dumps(template)


IMPORTER = json.dumps({"Resources": {"Where": {"Type": "AWS::SSM::Parameter", "Properties": {
    "Type": "String", "Name": "/lab/subnet", "Value": {"Fn::ImportValue": "Net-SubnetId"}}}}})


def _status(cfn, name):
    return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]


def _reasons(cfn, name):
    return [e.get("ResourceStatusReason", "") for e in cfn.describe_stack_events(StackName=name)["StackEvents"]]


def _subnets(aws_emulator):
    ec2 = aws_emulator.boto3_client("ec2")
    return sorted(s["CidrBlock"] for s in ec2.describe_subnets()["Subnets"]
                  if s["CidrBlock"].startswith("10.42."))


def _update_by_change_set(cfn, name, body):
    cfn.create_change_set(StackName=name, ChangeSetName="next", TemplateBody=body,
                          ChangeSetType="UPDATE")
    cfn.execute_change_set(StackName=name, ChangeSetName="next")


@pytest.fixture
def cfn(aws_emulator):
    return aws_emulator.boto3_client("cloudformation")


@pytest.mark.parametrize("how", ["update_stack", "change_set"])
def test_replacing_a_subnet_with_an_overlapping_cidr_fails(aws_emulator, cfn, how):
    """The old lab growth: the /26 of up to 59 attendees became a /25 at 60."""
    cfn.create_stack(StackName="Net", TemplateBody=_network({"LabPublicSubnet": "10.42.0.0/26"},
                                                            export=False))
    bigger = _network({"LabPublicSubnet": "10.42.0.0/25"}, export=False)
    if how == "update_stack":
        cfn.update_stack(StackName="Net", TemplateBody=bigger)
    else:
        _update_by_change_set(cfn, "Net", bigger)
    assert _status(cfn, "Net") == "UPDATE_ROLLBACK_COMPLETE"
    assert any("InvalidSubnet.Conflict" in r and "10.42.0.0/25" in r for r in _reasons(cfn, "Net"))
    assert _subnets(aws_emulator) == ["10.42.0.0/26"]  # nothing changed
    with pytest.raises(botocore.exceptions.WaiterError):
        cfn.get_waiter("stack_update_complete").wait(StackName="Net", WaiterConfig={"Delay": 1})


def test_adding_a_subnet_beside_the_first_is_fine(aws_emulator, cfn):
    """The lab's growth now: the first /26 stays, a second one is added."""
    cfn.create_stack(StackName="Net", TemplateBody=_network({"LabPublicSubnet": "10.42.0.0/26"}))
    _update_by_change_set(cfn, "Net", _network({"LabPublicSubnet": "10.42.0.0/26",
                                                "LabPublicSubnet2": "10.42.0.64/26"}))
    assert _status(cfn, "Net") == "UPDATE_COMPLETE"
    assert _subnets(aws_emulator) == ["10.42.0.0/26", "10.42.0.64/26"]


def test_an_added_subnet_that_overlaps_fails_too(aws_emulator, cfn):
    cfn.create_stack(StackName="Net", TemplateBody=_network({"LabPublicSubnet": "10.42.0.0/26"}))
    cfn.update_stack(StackName="Net", TemplateBody=_network({
        "LabPublicSubnet": "10.42.0.0/26", "LabPublicSubnet2": "10.42.0.32/27"}))
    assert _status(cfn, "Net") == "UPDATE_ROLLBACK_COMPLETE"
    assert _subnets(aws_emulator) == ["10.42.0.0/26"]


def test_an_imported_export_cannot_change_or_go(aws_emulator, cfn):
    two = {"LabPublicSubnet": "10.42.0.0/26", "Other": "10.42.0.128/26"}
    cfn.create_stack(StackName="Net", TemplateBody=_network(two))
    cfn.create_stack(StackName="Imp", TemplateBody=IMPORTER)
    subnet_id = aws_emulator.boto3_client("ssm").get_parameter(Name="/lab/subnet")["Parameter"]["Value"]
    assert subnet_id.startswith("subnet-")

    _update_by_change_set(cfn, "Net", _network(two, exported="Other"))  # a new value
    assert _status(cfn, "Net") == "UPDATE_ROLLBACK_COMPLETE"
    assert "Export Net-SubnetId cannot be updated as it is in use by Imp" in _reasons(cfn, "Net")

    cfn.update_stack(StackName="Net", TemplateBody=_network(two, export=False))  # removed
    assert "Export Net-SubnetId cannot be deleted as it is in use by Imp" in _reasons(cfn, "Net")
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports()["Exports"]}
    assert exports == {"Net-SubnetId": subnet_id}

    cfn.delete_stack(StackName="Net")  # the exporting stack itself
    assert _status(cfn, "Net") == "DELETE_FAILED"
    assert any("Net-SubnetId cannot be deleted as it is in use by Imp" in r for r in _reasons(cfn, "Net"))

    # once nothing imports it, both are allowed (what `cdk destroy --all` does: shards first)
    cfn.delete_stack(StackName="Imp")
    cfn.update_stack(StackName="Net", TemplateBody=_network(two, exported="Other"))
    assert _status(cfn, "Net") == "UPDATE_COMPLETE"
    cfn.delete_stack(StackName="Net")
    assert not [s for s in cfn.list_stacks()["StackSummaries"]
                if s["StackName"] == "Net" and s["StackStatus"] != "DELETE_COMPLETE"]
