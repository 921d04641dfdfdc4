"""`npx cdk deploy` / `destroy` for real, into the AWS emulator on 127.0.0.1."""
import datetime
import io
import ipaddress
import json

import paramiko
import pytest

from tests.fixtures_aws import cdk_runner

CONTEXT = {"ssh_cidr": "203.0.113.7/32", "attendees": 2}
STACK = "MxnetLab"


@pytest.fixture(scope="module")
def cdk(module_emulator, tmp_path_factory):
    return cdk_runner(module_emulator, CONTEXT, tmp_path_factory.mktemp("cdk.out"), stack=STACK)


@pytest.fixture(scope="module")
def deployed(cdk, tmp_path_factory):
    outputs_file = tmp_path_factory.mktemp("deploy") / "outputs.json"
    result = cdk("deploy", outputs_file=outputs_file)
    return {"result": result, "outputs_file": outputs_file,
            "outputs": json.loads(outputs_file.read_text())[STACK]}


def test_outputs_file_holds_every_attendee(deployed, module_emulator):
    outputs = deployed["outputs"]
    assert outputs["LabAttendees"] == "2" and outputs["LabSshUser"] == "ubuntu"
    ec2 = module_emulator.boto3_client("ec2")
    for n in (1, 2):
        ip = outputs["Attendee%dPublicIp" % n]
        assert ipaddress.ip_address(ip).is_loopback  # nothing leaves 127.0.0.0/8
        (reservation,) = ec2.describe_instances(
            InstanceIds=[outputs["Attendee%dInstanceId" % n]])["Reservations"]
        (instance,) = reservation["Instances"]
        assert instance["PublicIpAddress"] == ip
        assert outputs["Attendee%dPublicDns" % n] == instance["PublicDnsName"]
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert (tags["project"], tags["stack"], tags["attendee"]) == ("mxlab", STACK, str(n))
        assert instance["KeyName"] == "MxnetLab-attendee%d" % n
    assert outputs["Attendee1InstanceId"] != outputs["Attendee2InstanceId"]
    assert outputs["Attendee1PublicIp"] != outputs["Attendee2PublicIp"]


def test_each_instance_has_its_idle_stop_alarm(deployed, module_emulator):
    outputs = deployed["outputs"]
    alarms = module_emulator.boto3_client("cloudwatch").describe_alarms()["MetricAlarms"]
    watched = {a["Dimensions"][0]["Value"]: a for a in alarms}
    for n in (1, 2):
        alarm = watched[outputs["Attendee%dInstanceId" % n]]
        assert alarm["MetricName"] == "CPUUtilization"
        assert alarm["AlarmActions"] == ["arn:aws:automate:us-east-1:ec2:stop"]
        assert alarm["Period"] * alarm["EvaluationPeriods"] == 120 * 60


def test_private_key_is_read_back_and_loads_in_paramiko(deployed, module_emulator):
    outputs = deployed["outputs"]
    ssm, ec2 = module_emulator.boto3_client("ssm"), module_emulator.boto3_client("ec2")
    for n in (1, 2):
        key_id = outputs["Attendee%dKeyPairId" % n]
        name = outputs["Attendee%dPrivateKeyParameter" % n]
        assert name == "/ec2/keypair/%s" % key_id
        param = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        assert param["Type"] == "SecureString"
        key = paramiko.Ed25519Key.from_private_key(io.StringIO(param["Value"]))
        # moto ignores KeyPairIds; the key-pair-id filter is what AWS also takes.
        (pair,) = ec2.describe_key_pairs(
            Filters=[{"Name": "key-pair-id", "Values": [key_id]}],
            IncludePublicKey=True)["KeyPairs"]
        assert pair["KeyType"] == "ed25519"
        assert pair["PublicKey"].split()[1] == key.get_base64()


def test_console_output_carries_the_host_keys_set_by_a_test(deployed, module_emulator):
    instance_id = deployed["outputs"]["Attendee1InstanceId"]
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO1bUJ3Hk2kfJAdQvLzHzPDqTsrN2vpmTpETS6dpKzHt"
    module_emulator.set_host_keys(instance_id, [line])
    text = module_emulator.boto3_client("ec2").get_console_output(InstanceId=instance_id)["Output"]
    block = text.split("-----BEGIN SSH HOST KEY KEYS-----\n")[1].split(
        "-----END SSH HOST KEY KEYS-----")[0]
    assert block.strip() == "ec2: " + line


def test_a_second_deploy_keeps_the_instances(deployed, module_emulator, cdk, tmp_path):
    """Deploying again (mxlab up twice) keeps the hosts and outputs; only the deadline moves.

    That a newer AMI behind the SSM parameter does not replace hosts rests on
    CloudFormation's update rules, which the emulator does not model: the
    template test pins the launch-template version for that.
    """
    ec2 = module_emulator.boto3_client("ec2")
    before = deployed["outputs"]
    outputs_file = tmp_path / "outputs.json"
    cdk("deploy", outputs_file=outputs_file)
    after = json.loads(outputs_file.read_text())[STACK]
    assert after.pop("LabDeadline") >= before["LabDeadline"]  # now + lifetime_hours, again
    assert after == {k: v for k, v in before.items() if k != "LabDeadline"}
    running = ec2.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["running", "pending"]}])
    ids = {i["InstanceId"] for r in running["Reservations"] for i in r["Instances"]}
    assert ids == {before["Attendee1InstanceId"], before["Attendee2InstanceId"]}


def _publish_cpu(cloudwatch, instance_id, periods, busiest_minute, quiet=1.0):
    """As EC2's basic monitoring does: one statistic set per 5 minutes of five 1-minute samples."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    for k in range(periods, 0, -1):
        cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=[{
            "MetricName": "CPUUtilization", "Unit": "Percent",
            "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            "Timestamp": now - datetime.timedelta(minutes=5 * k),
            "StatisticValues": {"SampleCount": 5, "Sum": 4 * quiet + busiest_minute,
                                "Minimum": quiet, "Maximum": busiest_minute}}])


@pytest.mark.aws_behaviour
@pytest.mark.aws_behaviour
def test_a_changed_ssh_cidr_list_updates_the_security_group_in_place(deployed, module_emulator, tmp_path):
    """The organiser's own address added beside the room's: the same group, its rules now both
    CIDRs, every host kept (id and address). moto replaced the group (and so the hosts) on any
    change; AWS updates the rules in place."""
    ec2 = module_emulator.boto3_client("ec2")
    before = deployed["outputs"]

    cloudformation = module_emulator.boto3_client("cloudformation")

    def lab_group():
        return cloudformation.describe_stack_resource(
            StackName=STACK, LogicalResourceId="LabSshSecurityGroup")[
            "StackResourceDetail"]["PhysicalResourceId"]
    group = lab_group()
    outputs_file = tmp_path / "outputs.json"
    context = dict(CONTEXT, ssh_cidr="203.0.113.7/32,198.51.100.0/24")
    cdk_runner(module_emulator, context, tmp_path / "cdk.out", stack=STACK)("deploy", outputs_file=outputs_file)
    after = json.loads(outputs_file.read_text())[STACK]
    assert lab_group() == group
    (described,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    allowed = {r["CidrIp"] for p in described["IpPermissions"] if p.get("FromPort") == 22
               for r in p["IpRanges"]}
    assert allowed == {"203.0.113.7/32", "198.51.100.0/24"}
    for n in (1, 2):
        for key in ("Attendee%dInstanceId" % n, "Attendee%dPublicIp" % n):
            assert after[key] == before[key]


# after the second deploy: the idle host stays stopped (a new public IP once started)
def test_the_idle_stop_spares_an_attendee_with_short_bursts_and_stops_an_idle_one(deployed, module_emulator):
    """Two hours of CPU as an interactive attendee makes it (one busy minute in five: 12 %, else 1 %,
    an Average of 3.2 %) against an idle host (2 % at most): only the idle one is stopped. With the
    alarm on Average, both were (the finding: working attendees stopped mid-lab)."""
    outputs = deployed["outputs"]
    working, idle = outputs["Attendee1InstanceId"], outputs["Attendee2InstanceId"]
    cloudwatch, ec2 = module_emulator.boto3_client("cloudwatch"), module_emulator.boto3_client("ec2")
    periods = 120 // 5
    _publish_cpu(cloudwatch, working, periods, busiest_minute=12.0)
    _publish_cpu(cloudwatch, idle, periods, busiest_minute=2.0)
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(
        InstanceIds=[working, idle])["Reservations"] for i in r["Instances"]}
    assert states[idle] in ("stopping", "stopped")
    assert states[working] == "running"


def test_destroy_removes_the_lab(deployed, module_emulator, cdk):
    outputs = deployed["outputs"]
    cdk("destroy")
    cfn = module_emulator.boto3_client("cloudformation")
    (summary,) = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == STACK]
    assert summary["StackStatus"] == "DELETE_COMPLETE"
    ec2 = module_emulator.boto3_client("ec2")
    for n in (1, 2):
        (reservation,) = ec2.describe_instances(
            InstanceIds=[outputs["Attendee%dInstanceId" % n]])["Reservations"]
        assert reservation["Instances"][0]["State"]["Name"] == "terminated"
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    names = [p["Name"] for p in module_emulator.boto3_client("ssm").describe_parameters()["Parameters"]]
    assert not [n for n in names if n.startswith("/ec2/keypair/")]
    assert module_emulator.boto3_client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    vpcs = ec2.describe_vpcs()["Vpcs"]
    assert [v["IsDefault"] for v in vpcs] == [True]
