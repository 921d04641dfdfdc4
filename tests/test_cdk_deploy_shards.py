"""A lab bigger than one stack, for real: `npx cdk deploy --all` of 22 attendees
(MxnetLab: network + 1-20, MxnetLab-2: 21-22 importing the network) into the
AWS emulator on 127.0.0.1, then `cdk destroy --all`."""
import ipaddress
import json

import pytest

from tests.fixtures_aws import cdk_runner

CONTEXT = {"ssh_cidr": "203.0.113.7/32", "attendees": 22}
STACKS = ["MxnetLab", "MxnetLab-2"]


@pytest.fixture(scope="module")
def cdk(module_emulator, tmp_path_factory):
    return cdk_runner(module_emulator, CONTEXT, tmp_path_factory.mktemp("cdk.out"), extra=["--all"])


@pytest.fixture(scope="module")
def deployed(cdk, tmp_path_factory):
    outputs_file = tmp_path_factory.mktemp("deploy") / "outputs.json"
    cdk("deploy", outputs_file=outputs_file)
    return json.loads(outputs_file.read_text())


def test_outputs_file_holds_one_section_per_stack_numbered_globally(deployed):
    assert sorted(deployed) == STACKS
    first, second = deployed["MxnetLab"], deployed["MxnetLab-2"]
    for outputs in (first, second):
        assert outputs["LabAttendees"] == "22"
        assert outputs["LabStacks"] == "MxnetLab,MxnetLab-2"
        assert outputs["LabSshUser"] == "ubuntu"
    numbers = lambda outputs: sorted(int(k[8:-10]) for k in outputs  # noqa: E731
                                     if k.startswith("Attendee") and k.endswith("InstanceId"))
    assert numbers(first) == list(range(1, 21))
    assert numbers(second) == [21, 22]
    assert ipaddress.ip_address(second["Attendee22PublicIp"]).is_loopback


def test_shard_instances_run_in_the_first_stacks_subnet_and_group(deployed, module_emulator):
    first, second = deployed["MxnetLab"], deployed["MxnetLab-2"]
    ec2 = module_emulator.boto3_client("ec2")
    ids = [first["Attendee1InstanceId"], second["Attendee21InstanceId"],
           second["Attendee22InstanceId"]]
    described = {i["InstanceId"]: i for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
                 for i in r["Instances"]}
    assert described[ids[1]]["SubnetId"] == described[ids[0]]["SubnetId"] == first["LabSubnetId"]
    # (moto's CloudFormation instance drops SecurityGroupIds: the group import is
    # asserted on the template, test_cdk_template; here its export resolves.)
    assert first["LabSecurityGroupId"].startswith("sg-")
    assert described[ids[2]]["KeyName"] == "MxnetLab-attendee22"
    assert len([v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]]) == 1
    exports = module_emulator.boto3_client("cloudformation").list_exports()["Exports"]
    assert {e["Name"] for e in exports} == {
        "MxnetLab-SubnetId", "MxnetLab-SecurityGroupId", "MxnetLab-InstanceProfile",
        "MxnetLab-ImageTemplateId"}
    ssm = module_emulator.boto3_client("ssm")
    param = ssm.get_parameter(Name=second["Attendee21PrivateKeyParameter"], WithDecryption=True)
    assert "PRIVATE KEY" in param["Parameter"]["Value"]


def test_destroy_all_removes_every_stack(deployed, module_emulator, cdk):
    cdk("destroy")
    cfn = module_emulator.boto3_client("cloudformation")
    status = {s["StackName"]: s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"]}
    assert status == {name: "DELETE_COMPLETE" for name in STACKS}
    ec2 = module_emulator.boto3_client("ec2")
    states = {i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
              for i in r["Instances"]}
    assert states == {"terminated"}
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert cfn.list_exports()["Exports"] == []
    assert [v["IsDefault"] for v in ec2.describe_vpcs()["Vpcs"]] == [True]
