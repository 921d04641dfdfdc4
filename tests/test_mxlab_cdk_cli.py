"""`mxlab up` / `mxlab down` with the pinned CDK CLI against the AWS emulator."""
import datetime
import json
import stat
import threading
import time

import pytest

from mxlab.lab import deploy, statedir
from tests.fixtures_aws import own_home


@pytest.mark.slow
def test_up_hosts_down_against_the_emulator(aws_emulator, monkeypatch, tmp_path, mxlab_cli):
    for k, v in aws_emulator.env({}).items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "mxlab-home"
    monkeypatch.setenv("MXLAB_HOME", str(home))
    own_home(monkeypatch, tmp_path)  # the CDK CLI's own caches
    # --timeout 1: no instance here prints host keys (no sshd plays it): `up` pins none, and says so, sooner
    code, out, err = mxlab_cli("up", "--stack", "MxlabUpTest", "-c", "ssh_cidr=127.0.0.1/32", "--timeout", "1")
    assert code == 0, err
    assert "pre-flight: m5.2xlarge is offered in us-east-1a" in err
    assert "lab deadline: the instances stop at " in err  # 12 h from now, local and UTC
    outputs = json.loads((home / "MxlabUpTest" / "outputs.json").read_text())["MxlabUpTest"]
    assert outputs["Attendee1InstanceId"].startswith("i-")
    assert outputs["LabDeadline"].endswith("Z stop")
    assert stat.S_IMODE((home / "MxlabUpTest").stat().st_mode) == 0o700
    code, out, err = mxlab_cli("hosts", "--stack", "MxlabUpTest")
    assert code == 0, err
    assert outputs["Attendee1InstanceId"] in out and "running" in out
    assert "lab deadline: the instances stop at" in out and " UTC), in 11 h " in out
    code, out, err = mxlab_cli("down", "--stack", "MxlabUpTest")
    assert code == 0, err
    assert not (home / "MxlabUpTest").exists()


@pytest.mark.slow
def test_two_labs_synthesized_at_once_by_an_installed_mxlab_each_have_their_own_cdk_out(monkeypatch, tmp_path,
                                                                                         capsys):
    """Two organisers on one machine (one ~/.mxlab, issue 18): `mxlab up` of one lab while `mxlab down` of
    another synthesizes. The CLI locks its cdk.out while the app runs; a shared one fails the second
    ("Another CLI ... is currently synthing")."""
    from cdk import cli as cdk_cli
    monkeypatch.setattr(cdk_cli, "in_checkout", lambda: False)  # installed: the app in a folder under ~/.mxlab
    monkeypatch.setenv(cdk_cli.CLI_VARIABLE, str(cdk_cli.REPO_ROOT / "node_modules" / ".bin" / "cdk"))
    own_home(monkeypatch, tmp_path)  # the CDK CLI's own caches
    home = statedir.home()
    codes = {}

    def synth(stack):
        argv = cdk_cli.cdk_argv("synth", context={"ssh_cidr": "127.0.0.1/32", "stack_name": stack},
                                extra=["--quiet"])
        codes[stack] = deploy._run(argv, "us-east-1", stack)

    first = threading.Thread(target=synth, args=("LabOne",))
    first.start()
    while first.is_alive() and not list(home.rglob("synth.lock")):  # the first app is running
        time.sleep(0.02)
    synth("LabTwo")
    first.join()
    err = capsys.readouterr().err
    assert codes == {"LabOne": 0, "LabTwo": 0}, err[-3000:]
    for stack in codes:
        assert (home / stack / "cdk-app" / "cdk.out" / ("%s.template.json" % stack)).is_file()
        assert json.loads((home / stack / "cdk-app" / "cdk.json").read_text())["app"].endswith("app.sh")


def test_bad_context_is_a_usage_error(mxlab_cli):
    code, out, err = mxlab_cli("up", "-c", "no-equals-sign")
    assert code == 2 and "expected key=value" in err


def test_shrinking_a_sharded_lab_is_refused_before_cdk_runs(monkeypatch, tmp_path, mxlab_cli):
    home = tmp_path / "mxlab-home"
    monkeypatch.setenv("MXLAB_HOME", str(home))
    (home / "Lab").mkdir(parents=True)
    (home / "Lab" / "outputs.json").write_text(json.dumps({
        "Lab": {"LabAttendees": "30", "LabStacks": "Lab,Lab-2"}, "Lab-2": {"LabAttendees": "30"}}))
    code, out, err = mxlab_cli("up", "--stack", "Lab", "-c", "ssh_cidr=127.0.0.1/32", "-c", "attendees=20")
    assert code == 2
    assert "deployed as 2 stacks (Lab, Lab-2)" in err and "mxlab down" in err


@pytest.mark.slow
@pytest.mark.aws_behaviour
def test_down_destroys_every_shard_even_without_the_saved_context(aws_emulator, monkeypatch, tmp_path, mxlab_cli):
    for k, v in aws_emulator.env({}).items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "mxlab-home"
    monkeypatch.setenv("MXLAB_HOME", str(home))
    own_home(monkeypatch, tmp_path)
    code, out, err = mxlab_cli("up", "--stack", "ShardUp", "-c", "ssh_cidr=127.0.0.1/32", "-c", "attendees=21",
                               "--timeout", "1")
    assert code == 0, err
    code, out, err = mxlab_cli("hosts", "--stack", "ShardUp")
    assert code == 0, err
    shard = json.loads((home / "ShardUp" / "outputs.json").read_text())["ShardUp-2"]
    assert shard["Attendee21InstanceId"] in out  # the second stack's host is listed too
    # As if deployed from another machine: only the outputs are known here, and no -c
    # ssh_cidr=... is needed to destroy it.
    (home / "ShardUp" / "context.json").unlink()
    code, out, err = mxlab_cli("down", "--stack", "ShardUp")
    assert code == 0, err
    cfn = aws_emulator.boto3_client("cloudformation")
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert not [name for name in live if name.startswith("ShardUp")]


@pytest.mark.aws_behaviour
def test_down_from_another_machine_needs_no_ssh_cidr(aws_emulator, monkeypatch, cdk_runs, mxlab_cli):
    for k, v in aws_emulator.env({}).items():  # DescribeStacks goes to the emulator
        monkeypatch.setenv(k, v)
    code, out, err = mxlab_cli("down", "--stack", "Lab")
    assert code == 0, err
    (argv,) = cdk_runs
    assert "destroy" in argv and "ssh_cidr=%s" % deploy.DESTROY_SSH_CIDR in argv


def test_down_takes_only_what_names_the_stacks_from_the_saved_context(cdk_runs, tmp_path, mxlab_cli):
    saved = tmp_path / "home" / "Lab"
    saved.mkdir(parents=True)
    # a context from before IPv6 and pre-Turing GPUs were refused at synth
    (saved / "context.json").write_text(json.dumps({
        "ssh_cidr": "2001:db8::/64", "instance_type": "p2.xlarge", "attendees": "30",
        "stack_name": "Lab"}))
    code, out, err = mxlab_cli("down", "--stack", "Lab")
    assert code == 0, err
    (argv,) = cdk_runs
    context = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert sorted(context) == sorted(["stack_name=Lab", "attendees=30",
                                      "ssh_cidr=%s" % deploy.DESTROY_SSH_CIDR])
    # the app really synthesizes with that (both stacks of 30 attendees)
    config = deploy.cdk_config.from_context(dict(c.split("=", 1) for c in context).get)
    assert [name for name, _ in config.shards] == ["Lab", "Lab-2"]


def test_the_deadline_is_told_in_local_time_and_utc():
    now = datetime.datetime(2030, 6, 1, 8, 0, tzinfo=datetime.timezone.utc)
    line = deploy.describe_deadline({"LabDeadline": "2030-06-01T18:30:00Z stop"}, now=now)
    local = datetime.datetime(2030, 6, 1, 18, 30, tzinfo=datetime.timezone.utc).astimezone()
    assert line.startswith("lab deadline: the instances stop at %s (2030-06-01 18:30 UTC), in 10 h 30 min"
                           % local.strftime("%Y-%m-%d %H:%M %Z"))
    assert "mxlab up` moves it" in line
    gone = deploy.describe_deadline({"LabDeadline": "2030-06-01T07:00:00Z terminate"}, now=now)
    assert "the instances are terminated at" in gone and "1 h 00 min ago" in gone
    assert "none" in deploy.describe_deadline({"LabAttendees": "1"})


def test_the_stack_name_default_is_spelled_once():
    from mxlab.lab import targets
    assert targets.DEFAULT_STACK == deploy.cdk_config.default("stack_name")


@pytest.mark.slow
@pytest.mark.aws_behaviour
def test_a_lab_deployed_with_c_region_is_found_there_by_the_later_commands(aws_emulator, monkeypatch, tmp_path,
                                                                          mxlab_cli):
    """`-c region=eu-west-2` from a session in us-east-1: the stack and its instances are in eu-west-2,
    and every later command must look there, not in the session's region."""
    import boto3
    for k, v in aws_emulator.env({}).items():
        monkeypatch.setenv(k, v)
    assert aws_emulator.region != "eu-west-2"
    home = tmp_path / "mxlab-home"
    monkeypatch.setenv("MXLAB_HOME", str(home))
    own_home(monkeypatch, tmp_path)
    code, out, err = mxlab_cli("up", "--stack", "Elsewhere", "-c", "ssh_cidr=127.0.0.1/32", "-c", "region=eu-west-2",
                               "--timeout", "1")
    assert code == 0, err
    assert "offered in eu-west-2a" in err
    instance_id = json.loads((home / "Elsewhere" / "outputs.json").read_text())["Elsewhere"]["Attendee1InstanceId"]
    there = boto3.client("ec2", region_name="eu-west-2", endpoint_url=aws_emulator.endpoint_url)
    (reservation,) = there.describe_instances(InstanceIds=[instance_id])["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] == "running"
    code, out, err = mxlab_cli("hosts", "--stack", "Elsewhere")
    assert code == 0, err
    assert instance_id in out and "running" in out and "unknown" not in out
    code, out, err = mxlab_cli("hosts", "--stack", "Elsewhere", "--region", aws_emulator.region)
    assert code == 2 and "--region %s: lab Elsewhere is deployed in eu-west-2" % aws_emulator.region in err
    code, out, err = mxlab_cli("up", "--stack", "Elsewhere", "-c", "region=%s" % aws_emulator.region, "--timeout", "5")
    assert code == 2 and "-c region=%s: lab Elsewhere is deployed in eu-west-2" % aws_emulator.region in err
    code, out, err = mxlab_cli("down", "--stack", "Elsewhere")
    assert code == 0, err
    cfn = boto3.client("cloudformation", region_name="eu-west-2", endpoint_url=aws_emulator.endpoint_url)
    assert [s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"]
            if s["StackName"] == "Elsewhere"] == ["DELETE_COMPLETE"]
