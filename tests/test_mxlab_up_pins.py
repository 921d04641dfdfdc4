"""`mxlab up` pins every instance's host keys before a stop can come (issue 22, finding 4).

cloud-init prints an instance's host keys on its first boot only. A lab deployed the evening before and
stopped by the idle alarm or the deadline before anyone connected was unreachable in the morning: nothing
had pinned its keys, and its console no longer shows them. Real parts: a `mxlab sandbox` (the emulator,
real sshds), `mxlab up` redeploying it, EC2 stop/start, SSM Run Command answered by the instance.
"""
from pathlib import Path

import pytest

from mxlab.offline import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.aws_behaviour]
PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")
SANDBOX_ATTENDEES = 2  # the box fixture (tests/fixtures_sandbox.py)


def _known_hosts(box):
    path = Path(box.variables["MXLAB_HOME"]) / "MxnetLab" / "known_hosts"
    return path.read_text() if path.is_file() else ""


def _restart(box, n):
    ec2 = box.client("ec2")
    iid = box.outputs()["Attendee%dInstanceId" % n]
    ec2.stop_instances(InstanceIds=[iid])
    ec2.start_instances(InstanceIds=[iid])
    assert "BEGIN SSH HOST KEY KEYS" not in ec2.get_console_output(InstanceId=iid)["Output"]
    return iid


def test_up_pins_every_instance_so_a_stop_before_the_first_run_loses_nothing(box):
    assert not _known_hosts(box)  # nothing has connected yet
    up = box.mxlab("up")
    assert up.returncode == 0, up.stdout + up.stderr
    pinned = _known_hosts(box)
    for n in (1, 2):
        iid = box.outputs()["Attendee%dInstanceId" % n]
        assert "attendee-%d (%s): host keys pinned" % (n, iid) in up.stderr
        assert iid + " ssh-ed25519 " in pinned
    _restart(box, 2)  # the idle stop overnight, started in the morning
    run = box.mxlab("run", "--attendee", "2", "--model", "efficientnet-lite0", "--timeout", "30", PHOTO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _known_hosts(box) == pinned


def test_keys_the_console_no_longer_shows_are_read_through_ssm_run_command(box):
    """An instance restarted before anything pinned it (pins lost, or an older mxlab's `up`): its
    keys come from /etc/ssh through SSM Run Command, and they are the ones its sshd offers."""
    iid = _restart(box, 1)
    path = Path(box.variables["MXLAB_HOME"]) / "MxnetLab" / "known_hosts"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()
                            if not line.startswith(iid + " ")))
    up = box.mxlab("up", "--timeout", "5")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "attendee-1 (%s): host keys pinned" % iid in up.stderr
    assert iid + " ssh-ed25519 " in _known_hosts(box)
    run = box.mxlab("run", "--attendee", "1", "--model", "efficientnet-lite0", "--timeout", "30", PHOTO)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_stopped_instance_cannot_answer_ssm_run_command(box):
    import botocore.exceptions

    ec2, ssm = box.client("ec2"), box.client("ssm")
    iid = box.outputs()["Attendee1InstanceId"]
    ec2.stop_instances(InstanceIds=[iid])
    try:
        with pytest.raises(botocore.exceptions.ClientError, match="InvalidInstanceId"):
            ssm.send_command(InstanceIds=[iid], DocumentName="AWS-RunShellScript",
                             Parameters={"commands": ["true"]})
    finally:
        ec2.start_instances(InstanceIds=[iid])
