"""`mxlab up` / `mxlab down` with the pinned CDK CLI against the AWS emulator."""
import json
import stat

import pytest

pytestmark = pytest.mark.slow


def test_up_hosts_down_against_the_emulator(aws_emulator, monkeypatch, tmp_path, mxlab_cli):
    for k, v in aws_emulator.env({}).items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "mxlab-home"
    monkeypatch.setenv("MXLAB_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path))  # the CDK CLI's own caches
    code, out, err = mxlab_cli("up", "--stack", "MxlabUpTest", "-c", "ssh_cidr=127.0.0.1/32")
    assert code == 0, err
    outputs = json.loads((home / "MxlabUpTest" / "outputs.json").read_text())["MxlabUpTest"]
    assert outputs["Attendee1InstanceId"].startswith("i-")
    assert stat.S_IMODE((home / "MxlabUpTest").stat().st_mode) == 0o700
    code, out, err = mxlab_cli("hosts", "--stack", "MxlabUpTest")
    assert code == 0, err
    assert outputs["Attendee1InstanceId"] in out and "running" in out
    code, out, err = mxlab_cli("down", "--stack", "MxlabUpTest")
    assert code == 0, err
    assert not (home / "MxlabUpTest").exists()


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


def test_down_destroys_every_shard_even_without_the_saved_context(aws_emulator, monkeypatch, tmp_path, mxlab_cli):
    for k, v in aws_emulator.env({}).items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "mxlab-home"
    monkeypatch.setenv("MXLAB_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, err = mxlab_cli("up", "--stack", "ShardUp", "-c", "ssh_cidr=127.0.0.1/32", "-c", "attendees=21")
    assert code == 0, err
    code, out, err = mxlab_cli("hosts", "--stack", "ShardUp")
    assert code == 0, err
    shard = json.loads((home / "ShardUp" / "outputs.json").read_text())["ShardUp-2"]
    assert shard["Attendee21InstanceId"] in out  # the second stack's host is listed too
    # As if deployed from another machine: only the outputs are known here.
    (home / "ShardUp" / "context.json").unlink()
    code, out, err = mxlab_cli("down", "--stack", "ShardUp", "-c", "ssh_cidr=127.0.0.1/32")
    assert code == 0, err
    cfn = aws_emulator.boto3_client("cloudformation")
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert not [name for name in live if name.startswith("ShardUp")]
