"""The synthesized lab template: resources, security, outputs, bootstrap-free."""
import json
from pathlib import Path

import pytest
from aws_cdk import App, Environment, LegacyStackSynthesizer
from aws_cdk.assertions import Annotations, Match

from cdk.config import DEFAULT_AMI_SSM_PARAMETER, validate
from cdk.lab_stack import LabShardStack, LabStack, build_lab

CIDR = "203.0.113.7/32"
CASES = [(1, "m5.2xlarge"), (3, "m5.2xlarge"), (1, "g4dn.xlarge"), (3, "g4dn.xlarge")]
PER_ATTENDEE_OUTPUTS = ("InstanceId", "PublicIp", "PublicDns", "KeyPairId",
                        "PrivateKeyParameter")


def _ctx(attendees, itype, **extra):
    return dict(ssh_cidr=CIDR, attendees=str(attendees), instance_type=itype, **extra)


@pytest.mark.parametrize("attendees, itype", CASES)
def test_resource_counts(lab_stacks, attendees, itype):
    template = lab_stacks.template(**_ctx(attendees, itype))
    for rtype, count in {
        "AWS::EC2::VPC": 1, "AWS::EC2::Subnet": 1, "AWS::EC2::InternetGateway": 1,
        "AWS::EC2::VPCGatewayAttachment": 1, "AWS::EC2::NatGateway": 0,
        "AWS::EC2::SecurityGroup": 1, "AWS::EC2::SecurityGroupIngress": 0,
        "AWS::EC2::KeyPair": attendees, "AWS::EC2::Instance": attendees,
        "AWS::CloudWatch::Alarm": attendees,
        "AWS::IAM::Role": 2,  # the instances' (SSM) and the deadline schedule's
        "AWS::Scheduler::Schedule": 1,
        "AWS::IAM::InstanceProfile": 1, "AWS::EC2::LaunchTemplate": 1,
        "AWS::Lambda::Function": 0, "AWS::CloudFormation::CustomResource": 0,
    }.items():
        template.resource_count_is(rtype, count)
    template.has_resource_properties("AWS::EC2::Subnet", {"MapPublicIpOnLaunch": True})
    template.has_resource_properties("AWS::EC2::Route", {
        "DestinationCidrBlock": "0.0.0.0/0",
        "GatewayId": {"Ref": Match.string_like_regexp("IGW")}})


@pytest.mark.parametrize("attendees, itype", CASES)
def test_instances_are_hardened_and_tagged(lab_stacks, attendees, itype):
    template = lab_stacks.template(**_ctx(attendees, itype))
    instances = template.find_resources("AWS::EC2::Instance")
    assert sorted(instances) == ["Attendee%dInstance" % n for n in range(1, attendees + 1)]
    for n in range(1, attendees + 1):
        props = instances["Attendee%dInstance" % n]["Properties"]
        assert props["InstanceType"] == itype
        assert props["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2
        (root,) = props["BlockDeviceMappings"]
        assert root["DeviceName"] == "/dev/sda1"
        assert root["Ebs"] == {"VolumeSize": 75, "VolumeType": "gp3",
                               "Encrypted": True, "DeleteOnTermination": True}
        assert props["KeyName"] == {"Ref": "Attendee%dKeyPair" % n}
        assert props["SubnetId"] == {"Ref": "LabPublicSubnet"}
        assert props["IamInstanceProfile"] == {"Ref": "LabInstanceProfile"}
        assert props["SecurityGroupIds"] == [
            {"Fn::GetAtt": ["LabSshSecurityGroup", "GroupId"]}]
        assert props["PropagateTagsToVolumeOnCreation"] is True
        tags = {t["Key"]: t["Value"] for t in props["Tags"]}
        assert tags == {"attendee": str(n)}  # + the stack's tags (below)
    # CloudFormation puts stack tags on every resource it creates, the instances too
    assert lab_stacks.stack(**_ctx(attendees, itype)).tags.tag_values() == {
        "project": "mxlab", "stack": "MxnetLab"}
    for n in range(1, attendees + 1):
        template.has_resource_properties("AWS::EC2::KeyPair", {
            "KeyName": "MxnetLab-attendee%d" % n, "KeyType": "ed25519"})


def test_ssh_only_from_the_given_cidr(lab_stacks):
    template = lab_stacks.template(**_ctx(3, "m5.2xlarge"))
    (group,) = template.find_resources("AWS::EC2::SecurityGroup").values()
    assert group["Properties"]["SecurityGroupIngress"] == [{
        "CidrIp": CIDR, "Description": "SSH", "FromPort": 22, "IpProtocol": "tcp",
        "ToPort": 22}]
    text = json.dumps(template.to_json())
    assert '"CidrIp": "0.0.0.0/0", "Description": "SSH"' not in text
    assert "CidrIpv6" not in text  # IPv4 only: config.py refuses an IPv6 ssh_cidr


def test_ssh_from_each_cidr_of_a_list(lab_stacks):
    template = lab_stacks.template(ssh_cidr="203.0.113.7/32, 198.51.100.0/24,203.0.113.7/32")
    (group,) = template.find_resources("AWS::EC2::SecurityGroup").values()
    assert [r["CidrIp"] for r in group["Properties"]["SecurityGroupIngress"]] == [
        "203.0.113.7/32", "198.51.100.0/24"]  # a repeated entry once


def test_world_ssh_needs_the_explicit_switch(lab_stacks):
    template = lab_stacks.template(ssh_cidr="0.0.0.0/0", allow_world_ssh="true")
    (group,) = template.find_resources("AWS::EC2::SecurityGroup").values()
    assert group["Properties"]["SecurityGroupIngress"][0]["CidrIp"] == "0.0.0.0/0"
    reasons = group["Metadata"]["cdk_nag"]["rules_to_suppress"]
    assert [r["id"] for r in reasons] == ["AwsSolutions-EC23"]


@pytest.mark.parametrize("attendees, itype", CASES)
def test_outputs_are_the_deploy_step_contract(lab_stacks, attendees, itype):
    template = lab_stacks.template(**_ctx(attendees, itype))
    outputs = template.to_json()["Outputs"]
    expected = {"LabAttendees", "LabStacks", "LabSshUser", "LabDeadline"} | {
        "Attendee%d%s" % (n, o) for n in range(1, attendees + 1)
        for o in PER_ATTENDEE_OUTPUTS}
    assert set(outputs) == expected
    assert outputs["LabAttendees"]["Value"] == str(attendees)
    assert outputs["LabStacks"]["Value"] == "MxnetLab"
    assert outputs["LabSshUser"]["Value"] == "ubuntu"
    n = attendees
    assert outputs["Attendee%dInstanceId" % n]["Value"] == {"Ref": "Attendee%dInstance" % n}
    assert outputs["Attendee%dPublicIp" % n]["Value"] == {
        "Fn::Sub": "${Attendee%dInstance.PublicIp}" % n}
    assert outputs["Attendee%dKeyPairId" % n]["Value"] == {
        "Fn::GetAtt": ["Attendee%dKeyPair" % n, "KeyPairId"]}
    assert outputs["Attendee%dPrivateKeyParameter" % n]["Value"] == {
        "Fn::Sub": "/ec2/keypair/${Attendee%dKeyPair.KeyPairId}" % n}


def test_idle_instances_are_stopped_by_an_alarm(lab_stacks):
    template = lab_stacks.template(**_ctx(3, "m5.2xlarge"))
    for n in (1, 2, 3):
        template.has_resource_properties("AWS::CloudWatch::Alarm", {
            "Namespace": "AWS/EC2", "MetricName": "CPUUtilization",
            "Dimensions": [{"Name": "InstanceId", "Value": {"Ref": "Attendee%dInstance" % n}}],
            "Period": 300, "EvaluationPeriods": 24, "Statistic": "Maximum",
            "ComparisonOperator": "LessThanThreshold",
            "AlarmActions": [{"Fn::Sub": "arn:${AWS::Partition}:automate:${AWS::Region}:ec2:stop"}],
        })
    lab_stacks.template(ssh_cidr=CIDR, auto_stop_minutes="0").resource_count_is(
        "AWS::CloudWatch::Alarm", 0)
    lab_stacks.template(ssh_cidr=CIDR, auto_stop_minutes="30").has_resource_properties(
        "AWS::CloudWatch::Alarm", {"EvaluationPeriods": 6})


def test_instance_role_allows_session_manager(lab_stacks):
    template = lab_stacks.template(ssh_cidr=CIDR)
    template.has_resource_properties("AWS::IAM::Role", {
        "AssumeRolePolicyDocument": {"Statement": [Match.object_like({
            "Principal": {"Service": "ec2.amazonaws.com"}})]},
        "ManagedPolicyArns": [{"Fn::Join": ["", Match.array_with([
            Match.string_like_regexp("AmazonSSMManagedInstanceCore")])]}],
    })


def test_default_ami_is_the_dlami_parameter_pinned_through_launch_template_v1(lab_stacks):
    template = lab_stacks.template(ssh_cidr=CIDR, attendees="2").to_json()
    (param_id, param), = template["Parameters"].items()
    assert param_id == "LabImageId"  # short: written twice (template size limit)
    assert param == {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                     "Default": DEFAULT_AMI_SSM_PARAMETER}
    assert template["Resources"]["LabImageTemplate"]["Properties"] == {
        "LaunchTemplateData": {"ImageId": {"Ref": param_id}}}
    for n in (1, 2):
        props = template["Resources"]["Attendee%dInstance" % n]["Properties"]
        # A fixed version: a newer AMI behind the parameter adds version 2 on a
        # later deploy but leaves running instances (no replacement).
        assert props["LaunchTemplate"] == {
            "LaunchTemplateId": {"Ref": "LabImageTemplate"}, "Version": "1"}
        assert "ImageId" not in props


def test_explicit_ami_id_goes_on_the_instances(lab_stacks):
    template = lab_stacks.template(ssh_cidr=CIDR, ami_id="ami-0123456789abcdef0")
    template.resource_count_is("AWS::EC2::LaunchTemplate", 0)
    template.has_resource_properties("AWS::EC2::Instance", {
        "ImageId": "ami-0123456789abcdef0"})
    assert "Parameters" not in template.to_json()


def test_ami_name_is_looked_up_at_synth_and_cached_in_context():
    app = App()
    config = validate({"ssh_cidr": CIDR, "ami_name": "Deep Learning Base OSS*"})
    LabStack(app, "MxnetLab", config=config,
             env=Environment(account="123456789012", region="us-east-1"))
    assembly = app.synth()
    manifest = json.loads((Path(assembly.directory) / "manifest.json").read_text())
    (missing,) = [m for m in manifest["missing"] if m["provider"] == "ami"]
    assert missing["props"]["filters"]["name"] == ["Deep Learning Base OSS*"]
    assert missing["props"]["owners"] == ["amazon"]


def test_legacy_instance_type_warns_at_synth(lab_stacks):
    stack = lab_stacks.stack(**_ctx(1, "p2.xlarge", ami_id="ami-0123456789abcdef0"))
    Annotations.from_stack(stack).has_warning(
        "*", Match.string_like_regexp("p2.xlarge is a retired/previous-generation"))
    Annotations.from_stack(stack).has_warning(
        "*", Match.string_like_regexp("p2.xlarge has a Kepler K80 GPU .*open kernel modules"))
    quiet = lab_stacks.stack(**_ctx(1, "m5.2xlarge"))
    assert Annotations.from_stack(quiet).find_warning("*", Match.any_value()) == []


@pytest.mark.parametrize("attendees", [1, 30])
def test_no_bootstrap_and_no_assets(attendees):
    app = App()
    stacks = build_lab(app, validate({"ssh_cidr": CIDR, "attendees": str(attendees)}))
    assembly = app.synth()
    assert len(stacks) == (1 if attendees == 1 else 2)
    for stack in stacks:
        assert isinstance(stack.synthesizer, LegacyStackSynthesizer)
        artifact = assembly.get_stack_artifact(stack.artifact_id)
        assert artifact.assets == []
        assert artifact.stack_template_asset_object_url is None
        template = artifact.template
        assert "BootstrapVersion" not in template.get("Parameters", {})
        assert "Rules" not in template
        assert all(not r["Type"].startswith(("AWS::Lambda", "Custom::", "AWS::CloudFormation::Custom"))
                   for r in template["Resources"].values())
        assert not any(k.startswith("AssetParameters") for k in template.get("Parameters", {}))


# -- a lab bigger than one stack: 30 attendees = MxnetLab (1-20) + MxnetLab-2 (21-30) --

THIRTY = _ctx(30, "m5.2xlarge")
EXPORTS = {"LabSubnetId": ("MxnetLab-SubnetId", {"Ref": "LabPublicSubnet"}),
           "LabSecurityGroupId": ("MxnetLab-SecurityGroupId",
                                  {"Fn::GetAtt": ["LabSshSecurityGroup", "GroupId"]}),
           "LabInstanceProfile": ("MxnetLab-InstanceProfile", {"Ref": "LabInstanceProfile"}),
           "LabImageTemplateId": ("MxnetLab-ImageTemplateId", {"Ref": "LabImageTemplate"})}


def test_thirty_attendees_make_two_stacks_with_one_network(lab_stacks):
    first, second = lab_stacks.stacks(**THIRTY)
    assert isinstance(first, LabStack) and isinstance(second, LabShardStack)
    assert (first.stack_name, second.stack_name) == ("MxnetLab", "MxnetLab-2")
    assert second.dependencies == [first]  # deployed after it, destroyed before it
    shared = {"AWS::EC2::VPC": 1, "AWS::EC2::Subnet": 1, "AWS::EC2::InternetGateway": 1,
              "AWS::EC2::SecurityGroup": 1,
              "AWS::IAM::InstanceProfile": 1, "AWS::EC2::LaunchTemplate": 1}
    for index, attendees, has_shared in ((0, 20, True), (1, 10, False)):
        template = lab_stacks.template(shard=index, **THIRTY)
        for rtype, count in shared.items():
            template.resource_count_is(rtype, count if has_shared else 0)
        for rtype in ("AWS::EC2::KeyPair", "AWS::EC2::Instance", "AWS::CloudWatch::Alarm"):
            template.resource_count_is(rtype, attendees)
        # each stack's own deadline schedule, and its role; the first one's instance role
        template.resource_count_is("AWS::Scheduler::Schedule", 1)
        template.resource_count_is("AWS::IAM::Role", 2 if has_shared else 1)
    # only the first stack reads the DLAMI parameter; the shard uses its template
    assert "Parameters" not in lab_stacks.template(shard=1, **THIRTY).to_json()


def test_shard_instances_import_the_first_stacks_network(lab_stacks):
    first = lab_stacks.template(shard=0, **THIRTY).to_json()
    for key, (name, value) in EXPORTS.items():
        assert first["Outputs"][key] == {"Value": value, "Export": {"Name": name}}
    second = lab_stacks.template(shard=1, **THIRTY).to_json()
    assert sorted(second["Resources"]["Attendee21Instance"]["Properties"]) == sorted(
        first["Resources"]["Attendee1Instance"]["Properties"])
    for n in range(21, 31):
        props = second["Resources"]["Attendee%dInstance" % n]["Properties"]
        assert props["SubnetId"] == {"Fn::ImportValue": "MxnetLab-SubnetId"}
        assert props["SecurityGroupIds"] == [{"Fn::ImportValue": "MxnetLab-SecurityGroupId"}]
        assert props["IamInstanceProfile"] == {"Fn::ImportValue": "MxnetLab-InstanceProfile"}
        assert props["LaunchTemplate"] == {
            "LaunchTemplateId": {"Fn::ImportValue": "MxnetLab-ImageTemplateId"}, "Version": "1"}
        assert props["KeyName"] == {"Ref": "Attendee%dKeyPair" % n}
        tags = {t["Key"]: t["Value"] for t in props["Tags"]}
        assert tags == {"attendee": str(n)}
    assert lab_stacks.stacks(**THIRTY)[1].tags.tag_values() == {"project": "mxlab", "stack": "MxnetLab"}
    imports = {v for v in json.dumps(second).split('"') if v.startswith("MxnetLab-") and
               v in {name for name, _ in EXPORTS.values()}}
    assert imports == {name for name, _ in EXPORTS.values()}
    # nothing is exported from a lab that fits one stack (no lock on its resources)
    single = lab_stacks.template(**_ctx(20, "m5.2xlarge")).to_json()
    assert not [o for o in single["Outputs"].values() if "Export" in o]


def test_shard_outputs_are_numbered_globally(lab_stacks):
    outputs = [lab_stacks.template(shard=i, **THIRTY).to_json()["Outputs"] for i in (0, 1)]
    for out, numbers in zip(outputs, (range(1, 21), range(21, 31))):
        attendee_keys = {k for k in out if k.startswith("Attendee")}
        assert attendee_keys == {"Attendee%d%s" % (n, o) for n in numbers
                                 for o in PER_ATTENDEE_OUTPUTS}
        assert out["LabAttendees"]["Value"] == "30"  # the lab's total, in every stack
        assert out["LabStacks"]["Value"] == "MxnetLab,MxnetLab-2"
        assert out["LabSshUser"]["Value"] == "ubuntu"
    second = outputs[1]
    assert set(second) - {k for k in second if k.startswith("Attendee")} == {
        "LabAttendees", "LabStacks", "LabSshUser", "LabDeadline"}
    assert second["Attendee25InstanceId"]["Value"] == {"Ref": "Attendee25Instance"}
    assert second["Attendee25PrivateKeyParameter"]["Value"] == {
        "Fn::Sub": "/ec2/keypair/${Attendee25KeyPair.KeyPairId}"}
    template = lab_stacks.template(shard=1, **THIRTY)
    template.has_resource_properties("AWS::EC2::KeyPair", {"KeyName": "MxnetLab-attendee25"})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "Dimensions": [{"Name": "InstanceId", "Value": {"Ref": "Attendee30Instance"}}]})


def test_shards_with_an_explicit_ami_share_no_launch_template(lab_stacks):
    ctx = dict(THIRTY, ami_id="ami-0123456789abcdef0")
    first = lab_stacks.template(shard=0, **ctx).to_json()
    assert "LabImageTemplateId" not in first["Outputs"]
    second = lab_stacks.template(shard=1, **ctx)
    second.resource_count_is("AWS::EC2::LaunchTemplate", 0)
    second.has_resource_properties("AWS::EC2::Instance", {"ImageId": "ami-0123456789abcdef0"})


def test_a_hundred_attendees_make_five_stacks(lab_stacks):
    stacks = lab_stacks.stacks(ssh_cidr=CIDR, attendees="100")
    assert [s.stack_name for s in stacks] == ["MxnetLab"] + [
        "MxnetLab-%d" % k for k in range(2, 6)]
    assert all(s.dependencies == [stacks[0]] for s in stacks[1:])
    for index, stack in enumerate(stacks):
        outputs = lab_stacks.template(shard=index, ssh_cidr=CIDR, attendees="100").to_json()["Outputs"]
        assert len(outputs) <= 200
        assert "Attendee%dInstanceId" % (20 * index + 1) in outputs
        assert "Attendee%dInstanceId" % (20 * index + 20) in outputs


@pytest.mark.aws_behaviour
def test_the_instance_role_may_not_read_the_private_keys(lab_stacks):
    """AmazonSSMManagedInstanceCore allows ssm:GetParameter on every parameter: without an explicit
    Deny, any attendee could read every other attendee's private key (/ec2/keypair/<id>) from their host."""
    template = lab_stacks.template(ssh_cidr=CIDR).to_json()
    (role,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"
               and "ec2.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])]
    (policy,) = role["Properties"]["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "ssm:GetParameter*"  # GetParameter, GetParameters, ...History, ...ByPath
    assert statement["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/ec2/keypair/*"}
