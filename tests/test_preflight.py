"""Pre-flight before `mxlab up` (mxlab/lab/preflight.py) against the emulator.

The emulator answers DescribeInstanceTypeOfferings from moto's real per-AZ data and
EC2 vCPU quotas from mxlab/offline/quotas.py, which a test can make too small.
"""
import json

import boto3
import pytest

from mxlab.lab import deploy, preflight
from mxlab.offline import quotas
from mxlab.lab.preflight import PreflightError

pytestmark = pytest.mark.aws_behaviour

STANDARD, G_AND_VT = "L-1216C47A", "L-DB2E81BA"


@pytest.fixture
def session(aws_emulator, monkeypatch):
    for key, value in aws_emulator.env({}).items():
        monkeypatch.setenv(key, value)
    return boto3.session.Session()


def _config(**context):
    return deploy.cdk_config.validate(dict({"ssh_cidr": "127.0.0.1/32"}, **context))


def _run(aws_emulator, instance_type, count=1, tags=None):
    ec2 = aws_emulator.boto3_client("ec2")
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] \
        if tags else []
    return ec2.run_instances(ImageId=aws_emulator.default_image_id(), InstanceType=instance_type,
                             MinCount=count, MaxCount=count, TagSpecifications=spec)


def test_a_lab_that_fits_passes_in_the_regions_first_az(session):
    result = preflight.check(session, _config(attendees="3"), "Lab")
    assert (result.region, result.availability_zone, result.context) == ("us-east-1", "us-east-1a", {})
    assert any("m5.2xlarge is offered in us-east-1a" in line for line in result.lines)
    assert any("24 vCPUs needed + 0 running elsewhere <= 1152 (L-1216C47A" in line for line in result.lines)


def test_a_quota_too_small_stops_the_lab_naming_quota_need_and_remedy(session):
    quotas.set_quota(STANDARD, 16)
    with pytest.raises(PreflightError) as raised:
        preflight.check(session, _config(attendees="3"), "Lab")
    message = str(raised.value)
    assert "3 x m5.2xlarge need 24 vCPUs" in message
    assert "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances\" (L-1216C47A)" in message
    assert "24 > 16 allowed" in message and "Nothing was created" in message
    assert "request-service-quota-increase --service-code ec2 --quota-code L-1216C47A " \
           "--desired-value 24 --region us-east-1" in message
    assert "--skip-preflight" in message


def test_what_already_runs_elsewhere_counts_but_the_labs_own_hosts_do_not(aws_emulator, session):
    quotas.set_quota(STANDARD, 20)
    _run(aws_emulator, "m5.2xlarge", tags={"stack": "Lab"})  # this lab's (a re-run of up)
    _run(aws_emulator, "m5.xlarge", tags={"aws:cloudformation:stack-name": "Lab-2"})  # its shard
    _run(aws_emulator, "g4dn.xlarge")  # another quota
    preflight.check(session, _config(attendees="2"), "Lab")  # 16 + 0 <= 20
    _run(aws_emulator, "c5.large")  # 2 vCPUs of the standard families, someone else's
    preflight.check(session, _config(attendees="2"), "Lab")  # 16 + 2 <= 20
    _run(aws_emulator, "t3.medium", count=2)  # 4 more
    with pytest.raises(PreflightError, match=r"and 6 of its vCPUs already run outside this lab: 22 > 20"):
        preflight.check(session, _config(attendees="2"), "Lab")


def test_gpu_types_count_against_the_g_and_vt_quota(session):
    quotas.set_quota(G_AND_VT, 4)  # a new account's G quota is often this small
    with pytest.raises(PreflightError) as raised:
        preflight.check(session, _config(instance_type="g4dn.xlarge", attendees="2"), "Lab")
    assert "(L-DB2E81BA)" in str(raised.value) and "need 8 vCPUs" in str(raised.value)
    assert preflight.quota_for("p3.2xlarge")[0] == "L-417A185B"
    assert preflight.quota_for("vt1.3xlarge")[0] == G_AND_VT
    assert preflight.quota_for("mac1.metal") is None


def _offered(aws_emulator, instance_type):
    found = aws_emulator.boto3_client("ec2").describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [instance_type]}])
    return sorted(o["Location"] for o in found["InstanceTypeOfferings"])


def test_an_az_that_offers_the_type_is_picked_for_a_new_lab(aws_emulator, session):
    # moto's offering data, as AWS's: trn1.2xlarge is not in us-east-1a
    offered = _offered(aws_emulator, "trn1.2xlarge")
    assert offered and "us-east-1a" not in offered
    result = preflight.check(session, _config(instance_type="trn1.2xlarge"), "Lab")
    assert result.availability_zone == offered[0]
    assert result.context == {"availability_zone": offered[0]}  # for the CDK app
    with pytest.raises(PreflightError) as raised:
        preflight.check(session, _config(instance_type="trn1.2xlarge",
                                         availability_zone="us-east-1a"), "Lab")
    assert "instance_type=trn1.2xlarge is not offered in us-east-1a (availability_zone)" in str(raised.value)
    assert "it is in %s." % ", ".join(offered) in str(raised.value)


def test_a_type_the_region_does_not_offer_is_refused(session):
    with pytest.raises(PreflightError, match=r"instance_type=p2.xlarge is not offered in any availability "
                                             r"zone of us-east-1"):
        preflight.check(session, _config(instance_type="p2.xlarge", ami_id="ami-0123456789abcdef0"), "Lab")


def test_mxlab_up_stops_before_anything_is_created(aws_emulator, monkeypatch, tmp_path, mxlab_cli):
    for key, value in aws_emulator.env({}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "home"))
    ran = []
    monkeypatch.setattr(deploy, "_run", lambda argv, region, stack: ran.append(argv) or 0)
    quotas.set_quota(STANDARD, 8)
    code, out, err = mxlab_cli("up", "--stack", "Lab", "-c", "ssh_cidr=127.0.0.1/32", "-c", "attendees=2")
    assert code == 1
    assert "need 16 vCPUs" in err and "L-1216C47A" in err
    assert ran == []  # cdk never ran
    cfn = aws_emulator.boto3_client("cloudformation")
    assert cfn.list_stacks()["StackSummaries"] == []
    assert not (tmp_path / "home" / "Lab" / "context.json").exists()
    # --skip-preflight: straight to `cdk deploy`
    code, out, err = mxlab_cli("up", "--stack", "Lab", "-c", "ssh_cidr=127.0.0.1/32", "-c", "attendees=2",
                               "--skip-preflight")
    assert code == 0, err
    (argv,) = ran
    assert "deploy" in argv and "attendees=2" in argv
    assert json.loads((tmp_path / "home" / "Lab" / "context.json").read_text())["attendees"] == "2"


def test_mxlab_up_hands_the_chosen_az_to_the_cdk_app(aws_emulator, monkeypatch, tmp_path, mxlab_cli):
    for key, value in aws_emulator.env({}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "home"))
    ran = []
    monkeypatch.setattr(deploy, "_run", lambda argv, region, stack: ran.append(argv) or 0)
    code, out, err = mxlab_cli("up", "--stack", "Lab", "-c", "ssh_cidr=127.0.0.1/32",
                               "-c", "instance_type=trn1.2xlarge")
    assert code == 0, err
    zone = _offered(aws_emulator, "trn1.2xlarge")[0]
    assert "trn1.2xlarge is offered in %s (the first that offers" % zone in err
    (argv,) = ran
    assert "availability_zone=%s" % zone in argv
    # saved, so the next `up` and `down` synthesize the same subnet
    saved = json.loads((tmp_path / "home" / "Lab" / "context.json").read_text())
    assert saved["availability_zone"] == zone


def _deploy(aws_emulator, lab_stacks, body_format, **context):
    import yaml
    template = lab_stacks.template(ssh_cidr="127.0.0.1/32", lifetime_hours="0", **context).to_json()
    body = json.dumps(template) if body_format == "json" else yaml.safe_dump(template)  # the CLI sends YAML
    aws_emulator.boto3_client("cloudformation").create_stack(
        StackName="MxnetLab", TemplateBody=body, Capabilities=["CAPABILITY_IAM"])


@pytest.mark.parametrize("body_format", ["json", "yaml"])
def test_a_deployed_lab_keeps_its_az(aws_emulator, lab_stacks, session, body_format):
    _deploy(aws_emulator, lab_stacks, body_format, availability_zone="us-east-1c")
    result = preflight.check(session, _config(), "MxnetLab")
    # the template names the AZ: the next deploy must name it too, or the subnet is replaced
    assert (result.availability_zone, result.context) == ("us-east-1c", {"availability_zone": "us-east-1c"})
    assert any("where the lab is deployed" in line for line in result.lines)
    with pytest.raises(PreflightError, match=r"lab MxnetLab is deployed in us-east-1c; "
                                             r"availability_zone=us-east-1b would replace its subnet"):
        preflight.check(session, _config(availability_zone="us-east-1b"), "MxnetLab")


def test_a_lab_deployed_in_the_regions_first_az_gets_no_az_context(aws_emulator, lab_stacks, session):
    _deploy(aws_emulator, lab_stacks, "yaml")  # Fn::GetAZs, as every lab before the pre-flight
    result = preflight.check(session, _config(), "MxnetLab")
    assert (result.availability_zone, result.context) == ("us-east-1a", {})


def test_no_credentials_is_a_clear_error_not_a_traceback(aws_emulator, monkeypatch, tmp_path, mxlab_cli):
    for key, value in aws_emulator.env({}).items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "home"))
    code, out, err = mxlab_cli("up", "--stack", "Lab", "-c", "ssh_cidr=127.0.0.1/32")
    assert code == 2
    assert "pre-flight: no AWS credentials found" in err and "Traceback" not in err


def _deploy_terminating_lab(aws_emulator, lab_stacks, attendees="3"):
    """The lab's template with expiry_action=terminate, deployed; then its deadline comes true (the
    emulator's scheduler carries out the schedule the template made)."""
    import datetime

    from mxlab.offline import scheduler
    template = lab_stacks.template(ssh_cidr="127.0.0.1/32", attendees=attendees, expiry_action="terminate")
    cfn = aws_emulator.boto3_client("cloudformation")
    cfn.create_stack(StackName="MxnetLab", TemplateBody=json.dumps(template.to_json()),
                     Capabilities=["CAPABILITY_IAM"])
    stack = cfn.describe_stacks(StackName="MxnetLab")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    scheduler.stop()  # driven by hand: the deadline is hours away
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=13)
    assert scheduler.run_due(now=later), "the deadline's schedule ran"
    return outputs


def test_a_lab_whose_hosts_the_deadline_terminated_is_refused_with_down_then_up(aws_emulator, lab_stacks, session):
    outputs = _deploy_terminating_lab(aws_emulator, lab_stacks)
    ec2 = aws_emulator.boto3_client("ec2")
    ids = [outputs["Attendee%dInstanceId" % n] for n in (1, 2, 3)]
    states = [i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
              for i in r["Instances"]]
    assert states == ["terminated"] * 3
    with pytest.raises(PreflightError, match=r"lab MxnetLab: the instances of attendee-1, attendee-2, attendee-3 "
                                             r"were terminated .*CloudFormation does not recreate .*run "
                                             r"`mxlab down`, then `mxlab up`"):
        preflight.check(session, _config(attendees="3"), "MxnetLab")


def test_a_lab_with_one_host_terminated_by_hand_names_it(aws_emulator, lab_stacks, session):
    template = lab_stacks.template(ssh_cidr="127.0.0.1/32", attendees="2")
    cfn = aws_emulator.boto3_client("cloudformation")
    cfn.create_stack(StackName="MxnetLab", TemplateBody=json.dumps(template.to_json()),
                     Capabilities=["CAPABILITY_IAM"])
    stack = cfn.describe_stacks(StackName="MxnetLab")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert preflight.check(session, _config(attendees="2"), "MxnetLab").availability_zone  # all there: passes
    aws_emulator.boto3_client("ec2").terminate_instances(InstanceIds=[outputs["Attendee2InstanceId"]])
    with pytest.raises(PreflightError, match=r"the instance of attendee-2 was terminated"):
        preflight.check(session, _config(attendees="2"), "MxnetLab")


def test_a_terminated_host_says_down_then_up_not_up(aws_emulator, lab_stacks, session):
    from mxlab.hosts import readiness
    from mxlab.errors import HostUnreachable
    from mxlab.lab.targets import Target
    outputs = _deploy_terminating_lab(aws_emulator, lab_stacks, attendees="1")
    target = Target(label="attendee-1", host="", port=22, user="ubuntu", identity=None, known_hosts=None,
                    pin_from_console=True, instance_id=outputs["Attendee1InstanceId"], attendee=1)
    with pytest.raises(HostUnreachable, match=r"attendee-1: instance i-\w+ is terminated .*`mxlab down`, then "
                                              r"`mxlab up` brings the lab back"):
        readiness.wait_state(target, ("running",), timeout=5)


def test_a_graviton_type_with_the_x86_64_dlami_is_refused_before_launch(session):
    """Synth passes it; RunInstances would fail halfway through the deploy."""
    with pytest.raises(PreflightError) as raised:
        preflight.check(session, _config(instance_type="m7g.2xlarge"), "Lab")
    message = str(raised.value)
    assert "instance_type=m7g.2xlarge runs arm64" in message and "is x86_64" in message


def test_an_image_whose_root_device_is_not_root_device_is_refused(aws_emulator, session):
    image = aws_emulator.register_image("al2023-like", root_device_name="/dev/xvda", root_gb=8)
    with pytest.raises(PreflightError, match=r"root_device=/dev/sda1, but the image %s .* boots from "
                                             r"/dev/xvda.*-c root_device=/dev/xvda" % image):
        preflight.check(session, _config(ami_id=image), "Lab")
    result = preflight.check(session, _config(ami_id=image, root_device="/dev/xvda"), "Lab")
    assert any("root /dev/xvda 8 GB" in line for line in result.lines)


def test_a_volume_smaller_than_the_images_root_snapshot_is_refused(session):
    with pytest.raises(PreflightError, match=r"volume_gb=50 is smaller than the root snapshot .*75 GB"
                                             r".*-c volume_gb=75 or more"):
        preflight.check(session, _config(volume_gb="50"), "Lab")


def test_a_missing_ami_parameter_is_refused(session):
    with pytest.raises(PreflightError, match=r"ami_ssm_parameter=/no/such/ami does not exist in us-east-1"):
        preflight.check(session, _config(ami_ssm_parameter="/no/such/ami"), "Lab")


def test_spot_instances_do_not_count_against_the_on_demand_quota(aws_emulator, session):
    quotas.set_quota(STANDARD, 8)
    ec2 = aws_emulator.boto3_client("ec2")
    ec2.run_instances(ImageId=aws_emulator.default_image_id(), InstanceType="m5.2xlarge", MinCount=1,
                      MaxCount=1, InstanceMarketOptions={"MarketType": "spot"})
    preflight.check(session, _config(), "Lab")  # 8 + 0 on demand <= 8
    _run(aws_emulator, "m5.large")
    with pytest.raises(PreflightError, match=r"and 2 of its vCPUs already run outside this lab"):
        preflight.check(session, _config(), "Lab")


def test_high_memory_types_count_against_their_own_quota(session):
    assert preflight.quota_for("u-6tb1.56xlarge")[0] == "L-43DA4232"
    assert preflight.quota_for("u7in-32tb.224xlarge")[0] == "L-43DA4232"
    quotas.set_quota("L-43DA4232", 0)  # what a new account has
    with pytest.raises(PreflightError, match=r"Running On-Demand High Memory instances\" \(L-43DA4232\)"):
        preflight.check(session, _config(instance_type="u-6tb1.56xlarge", volume_gb="100"), "Lab")


def test_a_new_lab_needs_room_for_one_more_vpc_and_internet_gateway(aws_emulator, session):
    ec2 = aws_emulator.boto3_client("ec2")
    existing = len(ec2.describe_vpcs()["Vpcs"])  # the default VPC
    for k in range(5 - existing):
        ec2.create_vpc(CidrBlock="10.%d.0.0/16" % (100 + k))
    with pytest.raises(PreflightError) as raised:
        preflight.check(session, _config(), "Lab")
    message = str(raised.value)
    assert "one more of \"VPCs per Region\" (L-F678F1CE)" in message and "5 of 5 exist" in message
    assert "--service-code vpc --quota-code L-F678F1CE --desired-value 6" in message
