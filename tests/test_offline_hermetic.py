"""A used checkout: sandboxes stopped the way a user stops them leave nothing that changes a later sandbox.

The history, in one module fixture (three sandboxes with the same stack name, so the same attendee names
and loopback addresses): one SIGTERMed while `mxlab run` works on its host; one SIGKILLed after `mxlab
prepare` left a warm agent (its sshd and agent keep running, as after a real kill -9). A third sandbox
sweeps that, and the stop/start paths run on it as on a fresh machine, each test making the state it needs
itself (issue 23: stop/start tests that passed in a fresh clone failed in a used checkout).
"""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.contract import REMOTE_ROOT
from mxlab.offline import REPO_ROOT
from mxlab.offline.sandbox_process import SandboxProcess
from tests.fixtures_sandbox import pid_alive, port_open

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # the first test also waits for three sandboxes
PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")
MODEL = "efficientnet-lite0"


def instance(box, n):
    return box.outputs()["Attendee%dInstanceId" % n]


def address(box, n):
    (res,) = box.client("ec2").describe_instances(InstanceIds=[instance(box, n)])["Reservations"]
    return res["Instances"][0].get("PublicIpAddress")


def run_on(box, n, results, *extra):
    return box.mxlab("run", "--attendee", n, "--model", MODEL, "--results", results, *extra, PHOTO)


def host_homes(box):
    return [Path(p) / "home" for r in box.records() for p in r["paths"] if "/instances/" in p]


def sigterm_mid_run(folder):
    """A sandbox SIGTERMed while `mxlab run` classifies on its host (the agent is running there)."""
    box = SandboxProcess(folder, "--attendees", "1").wait_ready()
    (home,) = host_homes(box)
    # --timeout 30: once the sandbox is gone, the run's reconnect attempts give up soon.
    run = subprocess.Popen([sys.executable, "-m", "mxlab", "run", "--all", "--timeout", "30", "--model", MODEL,
                            "--results", str(folder / "results"), PHOTO], env=box.env(), cwd=str(REPO_ROOT),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not list((home / REMOTE_ROOT / "runs").glob("*/pid")) and run.poll() is None:
            assert time.monotonic() < deadline, "the run never started its agent on the host"
            time.sleep(0.2)
        records = box.records()
        code = box.stop(signal.SIGTERM)
    finally:
        # With its host gone the run would reconnect for minutes (a blip's allowance); the operator's Ctrl-C
        # ends it, as in a real room.
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait(60)
    return {"box": box, "code": code, "records": records}


def sigkill_after_prepare(folder):
    """A sandbox SIGKILLed while its host's warm agent (mxlab prepare) runs: both stay behind."""
    box = SandboxProcess(folder, "--attendees", "1").wait_ready()
    prep = box.mxlab("prepare", "--attendee", "1", "--models", MODEL)
    assert prep.returncode == 0, prep.stdout + prep.stderr
    readiness = json.loads((Path(box.variables["MXLAB_HOME"]) / "MxnetLab" / "prepare.json").read_text())
    warm = readiness["hosts"]["attendee-1"]["warm_agent"]["pid"]
    records = box.records()
    box.stop(signal.SIGKILL)
    assert pid_alive(warm), "a SIGKILLed sandbox leaves its host's warm agent running"
    return {"box": box, "warm_pid": warm, "records": records}


@pytest.fixture(scope="module")
def used(tmp_path_factory):
    folder = tmp_path_factory.mktemp("used")
    terminated = sigterm_mid_run(folder / "terminated")
    killed = sigkill_after_prepare(folder / "killed")
    box = SandboxProcess(folder / "live", "--attendees", "3")
    try:
        box.wait_ready()
        yield {"box": box, "terminated": terminated, "killed": killed}
    finally:
        box.stop()


def test_the_earlier_sandboxes_left_nothing_running(used):
    terminated, killed = used["terminated"], used["killed"]
    assert terminated["code"] == 0 and "everything the sandbox started is gone" in \
        terminated["box"].err_file.read_text()
    for history in (terminated, killed):
        pids = [p for r in history["records"] for p in r["pids"]]
        paths = [p for r in history["records"] for p in r["paths"]]
        assert pids and paths
        assert not any(pid_alive(pid, ticks) for pid, ticks in pids)
        assert not any(Path(p).exists() for p in paths)
        assert history["box"].records() == []
    assert not pid_alive(killed["warm_pid"]), "the killed sandbox's warm agent was swept"
    assert "swept the leftovers of a dead" in used["box"].err_file.read_text()


@pytest.mark.aws_behaviour
def test_stop_and_start_after_that_history(used, tmp_path):
    """The lunch break on the new sandbox: refused while stopped, then on a new address with the keys
    pinned at first boot; its address book and pins are its own (the earlier sandboxes' were the same
    instance names on the same addresses)."""
    box = used["box"]
    ec2, iid = box.client("ec2"), instance(box, 1)
    first = run_on(box, 1, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    home = Path(box.variables["MXLAB_HOME"])
    pinned = (home / "MxnetLab" / "known_hosts").read_text()
    old_ip = address(box, 1)
    assert json.loads((home / "addresses.json").read_text()) == {iid: old_ip}

    ec2.stop_instances(InstanceIds=[iid])
    assert not port_open(old_ip, int(box.variables["MXLAB_SSH_PORT"]))
    refused = run_on(box, 1, tmp_path, "--timeout", "30")
    assert refused.returncode == 1 and "is stopped" in refused.stderr and "--start" in refused.stderr
    again = run_on(box, 1, tmp_path, "--start")
    assert again.returncode == 0, again.stdout + again.stderr
    new_ip = address(box, 1)
    assert new_ip != old_ip and new_ip in again.stdout
    assert (home / "MxnetLab" / "known_hosts").read_text() == pinned
    assert json.loads((home / "addresses.json").read_text()) == {iid: new_ip}


@pytest.mark.aws_behaviour
def test_a_stop_ends_the_warm_agent_after_that_history(used, tmp_path):
    box = used["box"]
    ec2, iid = box.client("ec2"), instance(box, 2)
    prep = box.mxlab("prepare", "--attendee", "2", "--models", MODEL)
    assert prep.returncode == 0, prep.stdout + prep.stderr
    readiness = json.loads((Path(box.variables["MXLAB_HOME"]) / "MxnetLab" / "prepare.json").read_text())
    warm = readiness["hosts"]["attendee-2"]["warm_agent"]["pid"]
    assert pid_alive(warm)
    ec2.stop_instances(InstanceIds=[iid])
    assert not pid_alive(warm)
    ec2.start_instances(InstanceIds=[iid])
    run = run_on(box, 2, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    (summary,) = tmp_path.rglob("summary.json")
    (entry,) = json.loads(summary.read_text())
    assert entry["warm_agent"] is False and "not running" in entry["warm_reason"], entry


@pytest.mark.aws_behaviour
def test_an_instance_restarted_before_its_keys_were_pinned_is_pinned_through_ssm_at_once(used, tmp_path):
    """cloud-init prints host keys on the first boot only: attendee 3, never reached before its restart,
    shows none on its console. The run no longer waits out its timeout for them: it reads them through
    SSM Run Command (which the sandbox's instance answers) and goes on, verified against those keys.
    Where SSM cannot answer either, it is refused at once (tests/test_mxlab_readiness.py)."""
    box = used["box"]
    ec2, iid = box.client("ec2"), instance(box, 3)
    ec2.stop_instances(InstanceIds=[iid])
    run = run_on(box, 3, tmp_path, "--start")
    assert run.returncode == 0, run.stdout + run.stderr
    known = Path(box.variables["MXLAB_HOME"]) / "MxnetLab" / "known_hosts"
    assert iid + " ssh-ed25519 " in known.read_text()
