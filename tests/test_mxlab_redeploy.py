"""`mxlab up` again on a deployed lab (mxlab/lab/redeploy.py): it starts from the context the lab was deployed
with, refuses what would destroy or replace hosts without --force, and `mxlab extend` moves only the deadline.

The sandbox flow: a 3-attendee `mxlab sandbox` (the real CDK app deployed into the emulator, an sshd per
instance), then the plain commands against it, as an organiser runs them on the day.
"""
import argparse
import datetime
import json
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.aws_behaviour]
SANDBOX_ATTENDEES = 3  # the box fixture (tests/fixtures_sandbox.py)


def _lab(box):
    """What must survive a redeploy: per attendee its instance, address and key pair, and the outputs."""
    outputs = box.outputs()
    ec2 = box.client("ec2")
    ids = [outputs["Attendee%dInstanceId" % n] for n in (1, 2, 3)]
    found = {i["InstanceId"]: i for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
             for i in r["Instances"]}
    return {"attendees": outputs["LabAttendees"], "deadline": outputs["LabDeadline"],
            "hosts": [(iid, found[iid]["State"]["Name"], found[iid]["PublicIpAddress"],
                       outputs["Attendee%dKeyPairId" % n], outputs["Attendee%dPublicIp" % n])
                      for n, iid in zip((1, 2, 3), ids)]}


def _stack_updated(box):
    (stack,) = box.client("cloudformation").describe_stacks(StackName="MxnetLab")["Stacks"]
    return stack.get("LastUpdatedTime"), stack["StackStatus"]


def _ssh_everyone(box):
    """`mxlab ssh` to each attendee: the first time pins the console's host keys, later ones check them."""
    for n in (1, 2, 3):
        ssh = box.mxlab("ssh", "--attendee", n, "--", "echo", "hello-from-%d" % n)
        assert ssh.returncode == 0 and "hello-from-%d" % n in ssh.stdout, ssh.stderr


@pytest.mark.slow
@pytest.mark.parametrize("change, destroyed", [
    ("attendees=1", "would destroy attendee-2, attendee-3 with their keys and disks (attendees 3 -> 1)"),
    ("volume_gb=200", "would replace every host: new instances, host keys, addresses and empty disks "
                      "(volume_gb 75 -> 200)"),
    ("ami_id=ami-0123456789abcdef0", "would replace every host"),
    ("instance_type=m5.4xlarge", "would stop and start every host: what runs on them ends, and each gets a "
                                 "new public address (instance_type m5.2xlarge -> m5.4xlarge)"),
])
def test_a_change_that_destroys_hosts_is_refused_naming_them(box, change, destroyed):
    before, updated = _lab(box), _stack_updated(box)
    refused = box.mxlab("up", "-c", change)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert destroyed in refused.stderr and "--force" in refused.stderr, refused.stderr
    assert "Nothing was changed" in refused.stderr
    assert _stack_updated(box) == updated, "no deploy ran"
    assert _lab(box) == before


@pytest.mark.slow
def test_up_with_only_a_longer_lifetime_keeps_every_host_its_keys_and_address(box):
    """The README's "a longer day": `mxlab up -c lifetime_hours=16` with nothing else given."""
    _ssh_everyone(box)  # host keys pinned from the console, as on the day
    before = _lab(box)
    assert before["attendees"] == "3" and all(h[1] == "running" for h in before["hosts"])
    started = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    up = box.mxlab("up", "-c", "lifetime_hours=16")
    assert up.returncode == 0, up.stdout + up.stderr
    after = _lab(box)
    assert after["attendees"] == "3"
    assert after["hosts"] == before["hosts"], "same instances, states, addresses and key pairs"
    moment = datetime.datetime.strptime(after["deadline"], "%Y-%m-%dT%H:%M:%SZ stop")
    assert moment >= started + datetime.timedelta(hours=16) - datetime.timedelta(seconds=1)
    assert moment > datetime.datetime.strptime(before["deadline"], "%Y-%m-%dT%H:%M:%SZ stop")
    saved = json.loads((Path(box.variables["MXLAB_HOME"]) / "MxnetLab" / "context.json").read_text())
    assert (saved["attendees"], saved["lifetime_hours"], saved["ssh_cidr"]) == ("3", "16", "127.0.0.1/32")
    _ssh_everyone(box)  # the pinned host keys still match: the same hosts


@pytest.mark.slow
def test_extend_moves_only_the_deadline(box):
    before = _lab(box)
    extended = box.mxlab("extend", "--hours", "2")
    assert extended.returncode == 0, extended.stdout + extended.stderr
    after = _lab(box)
    old = datetime.datetime.strptime(before["deadline"], "%Y-%m-%dT%H:%M:%SZ stop")
    assert after["deadline"] == (old + datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ stop")
    assert re.search(r"lab deadline: the instances stop at .*, in 1[78] h ", extended.stderr), extended.stderr
    assert after["hosts"] == before["hosts"] and after["attendees"] == "3"


# ---- without the sandbox: the argv `mxlab up` would run -----------------------------------------

def _deployed_here(tmp_path, context=None, attendees="3"):
    lab = tmp_path / "home" / "Lab"
    lab.mkdir(parents=True)
    (lab / "outputs.json").write_text(json.dumps({"Lab": {"LabAttendees": attendees, "LabStacks": "Lab"}}))
    if context is not None:
        (lab / "context.json").write_text(json.dumps(context))
    return lab


def _context(argv):
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-c")


def test_a_lab_deployed_elsewhere_is_not_redeployed_with_defaults_unless_forced(cdk_runs, tmp_path, mxlab_cli):
    _deployed_here(tmp_path)  # outputs, but no context.json: deployed from another machine
    code, out, err = mxlab_cli("up", "--stack", "Lab", "--skip-preflight", "-c", "ssh_cidr=127.0.0.1/32")
    assert code == 2 and "context it was deployed with is not saved here" in err and "--force" in err
    assert cdk_runs == []
    code, out, err = mxlab_cli("up", "--stack", "Lab", "--skip-preflight", "--force", "-c", "ssh_cidr=127.0.0.1/32")
    assert code == 0, err
    (argv,) = cdk_runs
    assert _context(argv)["attendees"] == "3", "never fewer hosts than deployed by default"


def test_keys_that_exclude_each_other_replace_the_saved_one(cdk_runs, tmp_path, mxlab_cli):
    _deployed_here(tmp_path, {"ssh_cidr": "127.0.0.1/32", "attendees": "3", "stack_name": "Lab",
                              "deadline": "2099-01-01T00:00:00", "volume_gb": "100"})
    code, out, err = mxlab_cli("up", "--stack", "Lab", "--skip-preflight", "-c", "lifetime_hours=16")
    assert code == 0, err
    (argv,) = cdk_runs
    context = _context(argv)
    assert "deadline" not in context and context["lifetime_hours"] == "16"
    assert (context["attendees"], context["volume_gb"]) == ("3", "100")


def test_a_saved_deadline_that_has_passed_gives_way_to_lifetime_hours(cdk_runs, tmp_path, mxlab_cli):
    _deployed_here(tmp_path, {"ssh_cidr": "127.0.0.1/32", "attendees": "3", "stack_name": "Lab",
                              "deadline": "2020-01-01T00:00:00"})
    code, out, err = mxlab_cli("up", "--stack", "Lab", "--skip-preflight")
    assert code == 0, err
    assert "the saved deadline 2020-01-01T00:00:00 UTC has passed" in err
    (argv,) = cdk_runs
    assert "deadline" not in _context(argv)


def test_extend_needs_a_deadline(cdk_runs, tmp_path, mxlab_cli):
    _deployed_here(tmp_path, {"ssh_cidr": "127.0.0.1/32", "attendees": "3", "stack_name": "Lab",
                              "lifetime_hours": "0"})
    code, out, err = mxlab_cli("extend", "--stack", "Lab", "--hours", "2", "--skip-preflight")
    assert code == 2 and "has no deadline" in err
    from mxlab import cli
    for bad in ("0", "-1", "nan", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a number of hours above 0"):
            cli._positive_hours(bad)


def test_dropping_an_ssh_range_is_told_not_refused(cdk_runs, tmp_path, mxlab_cli):
    _deployed_here(tmp_path, {"ssh_cidr": "127.0.0.1/32,198.51.100.0/24", "attendees": "3", "stack_name": "Lab"})
    code, out, err = mxlab_cli("up", "--stack", "Lab", "--skip-preflight", "-c", "ssh_cidr=127.0.0.1/32")
    assert code == 0, err
    assert "SSH from 198.51.100.0/24 stops working" in err
    (argv,) = cdk_runs
    assert _context(argv)["ssh_cidr"] == "127.0.0.1/32"
