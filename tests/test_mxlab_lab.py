"""The lab-stack path end to end against the AWS emulator: stack outputs (DescribeStacks), the key
pair's private key from SSM, host keys from the console output, `--all` over the attendees.

The stack is a small CloudFormation template created with boto3 in the emulator (the same output
names the CDK app exports; the CDK deploy itself is tested with the cdk/ tests and the demo).
"""
import json
import stat
from pathlib import Path

import paramiko
import pytest

from mxlab.lab import targets
from mxlab.offline.lab_host import SshdHost, free_port

STACK = "MxlabTestLab"


def template(attendees, user):
    res = {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
        "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.0.0.0/24", "MapPublicIpOnLaunch": True}},
    }
    outputs = {"LabAttendees": {"Value": str(attendees)}, "LabSshUser": {"Value": user}}
    for n in range(1, attendees + 1):
        res["Key%d" % n] = {"Type": "AWS::EC2::KeyPair",
                            "Properties": {"KeyName": "mxlab-test-%d" % n, "KeyType": "ed25519"}}
        res["Instance%d" % n] = {"Type": "AWS::EC2::Instance", "Properties": {
            "ImageId": {"Ref": "Ami"}, "InstanceType": "t3.medium", "SubnetId": {"Ref": "Subnet"},
            "KeyName": {"Ref": "Key%d" % n}}}
        a = "Attendee%d" % n
        outputs.update({
            a + "InstanceId": {"Value": {"Ref": "Instance%d" % n}},
            a + "PublicIp": {"Value": {"Fn::GetAtt": ["Instance%d" % n, "PublicIp"]}},
            a + "KeyPairId": {"Value": {"Fn::GetAtt": ["Key%d" % n, "KeyPairId"]}},
            a + "PrivateKeyParameter": {"Value": {"Fn::Join": ["", ["/ec2/keypair/",
                                                                   {"Fn::GetAtt": ["Key%d" % n, "KeyPairId"]}]]}},
        })
    return {"Parameters": {"Ami": {"Type": "String"}}, "Resources": res, "Outputs": outputs}


@pytest.fixture
def lab(aws_emulator, monkeypatch, tmp_path):
    """A 2-attendee stack in the emulator; attendee 1 is a real sshd on its loopback public IP, attendee 2 is down."""
    host = SshdHost()
    cfn = aws_emulator.boto3_client("cloudformation")
    cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(template(2, host.user)),
                     Parameters=[{"ParameterKey": "Ami", "ParameterValue": aws_emulator.default_image_id()}])
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    assert outputs["Attendee1PublicIp"].startswith("127.0.0.")
    # The instance trusts its key pair's public key, as EC2 puts it in authorized_keys.
    private = aws_emulator.boto3_client("ssm").get_parameter(
        Name=outputs["Attendee1PrivateKeyParameter"], WithDecryption=True)["Parameter"]["Value"]
    key_file = tmp_path / "from-ssm"
    key_file.write_text(private)
    key = paramiko.PKey.from_path(str(key_file))
    key_file.unlink()
    host.address = outputs["Attendee1PublicIp"]
    host.port = free_port(host.address)
    host.extra_authorized = ["%s %s" % (key.get_name(), key.get_base64())]
    host.start()
    aws_emulator.set_host_keys(outputs["Attendee1InstanceId"], host.host_key_lines())
    for k, v in aws_emulator.env({}).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "mxlab-home"))
    yield {"host": host, "outputs": outputs, "private": private, "emulator": aws_emulator}
    host.stop()


def test_run_all_attendees_from_the_stack(lab, mxlab_cli, local_zoo, sample_photos, tmp_path):
    host, outputs = lab["host"], lab["outputs"]
    code, out, err = mxlab_cli("run", "--stack", STACK, "--all", "--ssh-port", host.port, "--timeout", "3",
                               "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path / "res",
                               sample_photos / "coffee.jpg", sample_photos / "chelsea.jpg")
    # Attendee 2 has no SSH server: the run fails overall, attendee 1's results are kept.
    assert code == 1
    (run_dir,) = (tmp_path / "res" / STACK).iterdir()
    saved = [json.loads(l) for l in (run_dir / "attendee-1.jsonl").read_text().splitlines()]
    assert {Path(r["image"]).name: r["top"][0]["label"] for r in saved}["coffee.jpg"] == "espresso"
    summary = {s["host"]: s for s in json.loads((run_dir / "summary.json").read_text())}
    assert summary["attendee-1"]["status"] == "ok" and summary["attendee-2"]["status"] == "failed"
    assert "attendee-2" in err and "waiting for the SSH server" in err
    # The private key came from SSM, 0600, in ~/.mxlab/<stack>/; never printed.
    pem = tmp_path / "mxlab-home" / STACK / "attendee-1.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert pem.read_text().strip() == lab["private"].strip()
    body = "".join(lab["private"].strip().splitlines()[1:-1])
    assert body[:40] not in out + err
    # The host keys were pinned from the console output (both of them) under the instance id, not the
    # address: a restarted instance keeps its keys but not its address.
    pinned = (tmp_path / "mxlab-home" / STACK / "known_hosts").read_text().splitlines()
    assert sorted(l.split(" ", 1)[1] for l in pinned) == sorted(host.host_key_lines())
    assert all(l.startswith(outputs["Attendee1InstanceId"] + " ") for l in pinned)


def test_hosts_lists_attendees_with_state(lab, mxlab_cli):
    code, out, err = mxlab_cli("hosts", "--stack", STACK)
    assert code == 0, err
    for n in (1, 2):
        assert lab["outputs"]["Attendee%dInstanceId" % n] in out
        assert lab["outputs"]["Attendee%dPublicIp" % n] in out
    assert out.count("running") == 2


def test_console_keys_of_another_machine_are_rejected(lab, sshd_factory, mxlab_cli, local_zoo, sample_photos,
                                                      tmp_path):
    impostor = sshd_factory()
    lab["emulator"].set_host_keys(lab["outputs"]["Attendee1InstanceId"], impostor.host_key_lines())
    code, out, err = mxlab_cli("run", "--stack", STACK, "--attendee", "1", "--ssh-port", lab["host"].port,
                               "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path,
                               sample_photos / "coffee.jpg")
    assert code == 1
    assert "HOST KEY MISMATCH" in err and "ssh-keygen -R" in err
    assert not (lab["host"].home / ".mxlab-agent").exists()


def test_missing_console_keys_time_out_clearly(lab, mxlab_cli, sample_photos, tmp_path):
    lab["emulator"].set_console_output(lab["outputs"]["Attendee1InstanceId"], "Linux version 5.15\nbooting\n")
    code, out, err = mxlab_cli("run", "--stack", STACK, "--attendee", "1", "--ssh-port", lab["host"].port,
                               "--timeout", "2", "--model", "efficientnet-lite0", "--results", tmp_path,
                               sample_photos / "coffee.jpg")
    assert code == 1
    assert "waiting for host keys on the console" in err and lab["outputs"]["Attendee1InstanceId"] in err


def test_ssh_opens_a_shell_with_the_pinned_key(lab, capfd):
    from mxlab.cli import main
    code = main(["ssh", "--stack", STACK, "--attendee", "1", "--ssh-port", str(lab["host"].port), "--",
                 "echo", "hello-from", "$HOME"])
    out = capfd.readouterr().out
    assert code == 0
    assert "hello-from %s" % lab["host"].home in out


def test_no_such_stack_is_a_usage_error(aws_emulator, monkeypatch, tmp_path, mxlab_cli, sample_photos):
    for k, v in aws_emulator.env({}).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path))
    code, out, err = mxlab_cli("run", "--stack", "NoSuchLab", "--model", "efficientnet-lite0",
                               sample_photos / "coffee.jpg")
    assert code == 2 and "no stack 'NoSuchLab'" in err and "mxlab up" in err


def test_outputs_file_targets_and_attendee_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path))
    outputs = {"LabAttendees": "2", "LabSshUser": "ubuntu",
               "Attendee1PublicIp": "203.0.113.5", "Attendee1InstanceId": "i-1", "Attendee1KeyPairId": "key-1",
               "Attendee2PublicIp": "203.0.113.6", "Attendee2InstanceId": "i-2",
               "Attendee2PrivateKeyParameter": "/ec2/keypair/key-2"}
    f = tmp_path / "out.json"
    f.write_text(json.dumps({"Lab": outputs}))
    got = targets.read_outputs("Lab", f)
    (t1, t2) = targets.lab_targets("Lab", got, None, ssh_port=2222)
    assert (t1.host, t1.port, t1.user, t1.key_parameter) == ("203.0.113.5", 2222, "ubuntu", "/ec2/keypair/key-1")
    assert t2.key_parameter == "/ec2/keypair/key-2" and t2.identity == tmp_path / "Lab" / "attendee-2.pem"
    with pytest.raises(targets.UsageError, match="attendees 1..2"):
        targets.lab_targets("Lab", got, [3])
    with pytest.raises(targets.UsageError, match="no stack 'Other'"):
        targets.read_outputs("Other", f)


def shard_outputs(numbers, total, stacks):
    outputs = {"LabAttendees": str(total), "LabStacks": ",".join(stacks), "LabSshUser": "ubuntu"}
    for n in numbers:
        outputs.update({"Attendee%dPublicIp" % n: "203.0.113.%d" % n, "Attendee%dInstanceId" % n: "i-%d" % n,
                        "Attendee%dPrivateKeyParameter" % n: "/ec2/keypair/key-%d" % n})
    return outputs


def test_a_sharded_lab_is_read_whole_from_the_outputs_file(tmp_path, monkeypatch):
    """Past 20 attendees the CDK app splits the lab into `<stack>`, `<stack>-2`...: one lab to mxlab."""
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path))
    stacks = ["Lab", "Lab-2"]
    f = tmp_path / "out.json"
    f.write_text(json.dumps({"Lab": shard_outputs(range(1, 21), 22, stacks),
                             "Lab-2": shard_outputs((21, 22), 22, stacks)}))
    every = targets.lab_targets("Lab", targets.read_outputs("Lab", f), None)
    assert [t.attendee for t in every] == list(range(1, 23))
    assert (every[21].host, every[21].instance_id) == ("203.0.113.22", "i-22")
    f.write_text(json.dumps({"Lab": shard_outputs(range(1, 21), 22, stacks)}))
    with pytest.raises(targets.UsageError, match="stacks Lab-2 are not in it"):
        targets.read_outputs("Lab", f)


def test_a_sharded_lab_is_read_whole_from_describe_stacks(aws_emulator, monkeypatch):
    for k, v in aws_emulator.env({}).items():
        monkeypatch.setenv(k, v)
    cfn = aws_emulator.boto3_client("cloudformation")
    stacks = ["ShardLab", "ShardLab-2"]
    for name, numbers in (("ShardLab", range(1, 21)), ("ShardLab-2", (21,))):
        body = {"Resources": {"Placeholder": {"Type": "AWS::SSM::Parameter", "Properties": {
                    "Name": "/mxlab-test/%s" % name, "Type": "String", "Value": "x"}}},
                "Outputs": {k: {"Value": v} for k, v in shard_outputs(numbers, 21, stacks).items()}}
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))
    try:
        merged = targets.read_outputs("ShardLab", None)
        assert [t.attendee for t in targets.lab_targets("ShardLab", merged, None)] == list(range(1, 22))
        assert merged["Attendee21InstanceId"] == "i-21"
    finally:
        for name in reversed(stacks):
            cfn.delete_stack(StackName=name)


def stale_outputs_file(lab, tmp_path):
    """The lab's outputs as `mxlab up` saved them, but attendee 1's public IP is an old one
    (the instance was stopped by the cost guard and started again with a new address)."""
    outputs = dict(lab["outputs"], Attendee1PublicIp="127.0.0.254")
    f = tmp_path / "stale-outputs.json"
    f.write_text(json.dumps({STACK: outputs}))
    return f


def test_hosts_shows_the_live_address_not_the_stale_output(lab, mxlab_cli, tmp_path):
    code, out, err = mxlab_cli("hosts", "--stack", STACK, "--outputs", stale_outputs_file(lab, tmp_path))
    assert code == 0, err
    assert lab["outputs"]["Attendee1PublicIp"] in out and "127.0.0.254" not in out


def test_run_connects_to_the_live_address_of_a_restarted_instance(lab, mxlab_cli, local_zoo, sample_photos,
                                                                  tmp_path):
    host = lab["host"]
    code, out, err = mxlab_cli("run", "--stack", STACK, "--outputs", stale_outputs_file(lab, tmp_path),
                               "--attendee", "1", "--ssh-port", host.port, "--timeout", "5",
                               "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path / "res",
                               sample_photos / "coffee.jpg")
    assert code == 0, err
    (run_dir,) = (tmp_path / "res" / STACK).iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary[0]["address"] == "%s:%d" % (host.address, host.port)
