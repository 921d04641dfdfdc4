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
