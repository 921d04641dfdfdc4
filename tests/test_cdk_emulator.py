"""The AWS emulator's own extensions, as other tests and the demo rely on them."""
import ipaddress
import json
import signal
import subprocess
import sys

import boto3

from cdk.config import DEFAULT_AMI_SSM_PARAMETER
from mxlab.offline import REPO_ROOT


def test_dlami_parameter_is_published(aws_emulator):
    ssm = aws_emulator.boto3_client("ssm")
    value = ssm.get_parameter(Name=DEFAULT_AMI_SSM_PARAMETER)["Parameter"]["Value"]
    images = aws_emulator.boto3_client("ec2").describe_images(ImageIds=[value])["Images"]
    assert [i["ImageId"] for i in images] == [value]


def test_public_ips_are_loopback(aws_emulator):
    ec2 = aws_emulator.boto3_client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/24")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/26")["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    reservation = ec2.run_instances(ImageId=aws_emulator.default_image_id(), MinCount=2,
                                    MaxCount=2, SubnetId=subnet)
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    described = ec2.describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"]
    ips = {i["PublicIpAddress"] for i in described}
    assert len(ips) == 2 and all(ipaddress.ip_address(ip).is_loopback for ip in ips)
    assert {i["PublicDnsName"] for i in described} == {"localhost"}


def test_console_output_default_and_host_keys(aws_emulator):
    ec2 = aws_emulator.boto3_client("ec2")
    (instance,) = ec2.run_instances(ImageId=aws_emulator.default_image_id(), MinCount=1,
                                    MaxCount=1)["Instances"]
    iid = instance["InstanceId"]
    assert "BEGIN SSH HOST KEY KEYS" not in ec2.get_console_output(InstanceId=iid)["Output"]
    aws_emulator.set_host_keys(iid, ["ssh-ed25519 AAAAkey1", "ecdsa-sha2-nistp256 AAAAkey2"])
    output = ec2.get_console_output(InstanceId=iid)["Output"]
    assert ("-----BEGIN SSH HOST KEY KEYS-----\nec2: ssh-ed25519 AAAAkey1\n"
            "ec2: ecdsa-sha2-nistp256 AAAAkey2\n-----END SSH HOST KEY KEYS-----") in output


def test_env_points_only_at_the_emulator(aws_emulator, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "real-account")
    env = aws_emulator.env()
    assert env["AWS_ENDPOINT_URL"] == aws_emulator.endpoint_url
    assert ipaddress.ip_address(env["AWS_ENDPOINT_URL"].split("//")[1].split(":")[0]).is_loopback
    assert "AWS_PROFILE" not in env and env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["CDK_DISABLE_CLI_TELEMETRY"] == "true"
    argv, cli_env = aws_emulator.cdk_command("deploy", {"ssh_cidr": "10.0.0.0/8", "attendees": 2},
                                             outputs_file="out.json")
    assert argv[:4] == ["npx", "--no", "cdk", "deploy"]
    assert ["--require-approval", "never"] == argv[argv.index("--require-approval"):][:2]
    assert "--outputs-file" in argv and "attendees=2" in argv and "--no-notices" in argv
    assert cli_env == env


def test_runs_standalone_until_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "mxlab.offline.emulator", "--port", "0"],
                            cwd=str(REPO_ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        assert ssm.get_parameter(Name=DEFAULT_AMI_SSM_PARAMETER)["Parameter"]["Value"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        env_line = json.loads(proc.stderr.readline())
        assert env_line["AWS_ENDPOINT_URL"] == endpoint
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
