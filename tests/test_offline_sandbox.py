"""`mxlab sandbox` end to end, as a user runs it: started as a command, its `export` lines used by the
plain commands (mxlab, boto3 as the AWS CLI would), stopped with Ctrl-C, swept after kill -9.

One flow (each sandbox deploys the real CDK app, about a minute here): a sandbox is killed with SIGKILL,
a second one (3 attendees) sweeps what it left and is used for everything else, then Ctrl-C'd.
"""
import json
import os
import pwd
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.contract import REMOTE_ROOT
from mxlab.offline import REPO_ROOT, sandbox
from mxlab.offline.sandbox import check_capacity, export_lines
from mxlab.offline.sandbox_process import SandboxProcess
from tests.fixtures_sandbox import pid_alive, port_open

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # the first test also waits for two sandboxes
PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")


def lab_artifacts(folder):
    """What the lab hosts leave in a home: the agent's folder (upload, runs, env) and the model cache."""
    return sorted(name for name in (REMOTE_ROOT, ".cache/mxlab", "mxnet-lab") if (Path(folder) / name).exists())


def instance(box, n):
    return box.outputs()["Attendee%dInstanceId" % n]


def describe(box, instance_id):
    (res,) = box.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return res["Instances"][0]


def run_on(box, n, results, *extra):
    """`mxlab run --attendee n` of one photo, its results in the test's folder (never the checkout's results/)."""
    return box.mxlab("run", "--attendee", n, "--model", "efficientnet-lite0", "--results", results, *extra, PHOTO)


def reached(box, n, results):
    """Attendee n run on once, as an organiser's first run does: its host keys pinned from the first boot's
    console, its address remembered. A test that needs that does it itself, whichever tests ran before."""
    run = run_on(box, n, results)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """The killed sandbox's records, and the live 3-attendee sandbox that swept them."""
    folder = tmp_path_factory.mktemp("sandbox")
    real_home = pwd.getpwuid(os.getuid()).pw_dir
    before = lab_artifacts(real_home)
    dead = SandboxProcess(folder / "dead", "--attendees", "1", "--stack", "DeadLab").wait_ready()
    dead_records = dead.records()
    dead.stop(signal.SIGKILL)
    box = SandboxProcess(folder / "live", "--attendees", "3")
    try:
        box.wait_ready()
        yield {"box": box, "dead": dead, "dead_records": dead_records, "real_home": real_home,
               "artifacts_before": before}
    finally:
        box.stop()


def test_a_killed_sandbox_is_swept_by_the_next(flow):
    records = flow["dead_records"]
    pids = [p for r in records for p in r["pids"]]
    paths = [p for r in records for p in r["paths"]]
    assert pids and paths, "the killed sandbox recorded its sshd and folders"
    assert not any(pid_alive(pid, ticks) for pid, ticks in pids), "its sshd processes are gone"
    assert not any(os.path.exists(p) for p in paths), "its folders are gone"
    assert "swept the leftovers of a dead" in flow["box"].err_file.read_text()


def test_exports_and_plain_commands(flow):
    box = flow["box"]
    for key in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "MXLAB_HOME", "MXLAB_ZOO", "MXLAB_SSH_PORT"):
        assert box.variables.get(key), key
    assert re.match(r"http://127\.0\.0\.1:\d+$", box.variables["AWS_ENDPOINT_URL"])
    hosts = box.mxlab("hosts")
    assert hosts.returncode == 0, hosts.stderr
    assert len(re.findall(r"\brunning\b", hosts.stdout)) == 3, hosts.stdout
    run = box.mxlab("run", "--all", "--model", "efficientnet-lite0", "--results", flow["box"].out_file.parent / "r",
                    PHOTO)
    assert run.returncode == 0, run.stdout + run.stderr
    for n in (1, 2, 3):
        assert re.search(r"attendee-%d .* ok " % n, run.stdout), run.stdout
    ssh = box.mxlab("ssh", "--attendee", "3", "--", "echo", "hello-from-3")
    assert ssh.returncode == 0 and "hello-from-3" in ssh.stdout, ssh.stderr


@pytest.mark.aws_behaviour
def test_a_remembered_address_now_another_instances_is_refused_by_the_pins(flow, tmp_path):
    """Runs reach a host at its remembered address without asking AWS. Real AWS hands a released public IP
    to another instance, so that address may now be another lab host: the keys pinned for the instance id
    refuse it, and the run asks AWS for the live address and goes on there."""
    box = flow["box"]
    book = Path(box.variables["MXLAB_HOME"]) / "addresses.json"
    reached(box, 2, tmp_path)
    first, second = (describe(box, instance(box, n))["PublicIpAddress"] for n in (1, 2))
    assert json.loads(book.read_text())[instance(box, 2)] == second, "the earlier run remembered it"
    book.write_text(json.dumps({instance(box, 2): first}))
    run = run_on(box, 2, tmp_path, "-v")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "not reachable at its last address %s" % first in run.stderr and "HOST KEY MISMATCH" in run.stderr
    assert re.search(r"attendee-2 .*%s.* ok " % re.escape(second), run.stdout), run.stdout
    assert json.loads(book.read_text())[instance(box, 2)] == second


def test_lab_hosts_keep_to_their_own_homes(flow, tmp_path):
    """Agent, runs and model cache land in each instance's throwaway home, never in the real one."""
    box = flow["box"]
    for n in (1, 2, 3):
        reached(box, n, tmp_path)
    homes = [Path(p) / "home" for r in box.records() for p in r["paths"] if "/instances/" in p]
    assert len(homes) == 3
    assert all(REMOTE_ROOT in lab_artifacts(home) for home in homes), "the run installed the agent in each home"
    assert lab_artifacts(flow["real_home"]) == flow["artifacts_before"]


@pytest.mark.aws_behaviour
def test_stop_ends_everything_start_comes_back_on_a_new_ip_with_the_same_keys(flow, tmp_path):
    """The lunch break: attendee 2 stopped and started. Its sshd, sessions and running processes end;
    it comes back on a new address, with the same host keys and no keys on the console; and
    `mxlab run --attendee 2` works at once, verified against the keys pinned at first boot."""
    box = flow["box"]
    ec2, iid = box.client("ec2"), instance(box, 2)
    port = int(box.variables["MXLAB_SSH_PORT"])
    reached(box, 2, tmp_path)
    old_ip = describe(box, iid)["PublicIpAddress"]
    pinned = (Path(box.variables["MXLAB_HOME"]) / "MxnetLab" / "known_hosts").read_text()
    assert iid in pinned and old_ip not in pinned, "keys are pinned by instance id"
    sleeper = box.mxlab("ssh", "--attendee", "2", "--", "setsid nohup sleep 600 >/dev/null 2>&1 & echo $!")
    pid = int(sleeper.stdout.split()[-1])
    assert pid_alive(pid)

    ec2.stop_instances(InstanceIds=[iid])
    assert describe(box, iid)["State"]["Name"] == "stopped"
    assert not pid_alive(pid), "a stop ends what ran on the instance"
    assert not port_open(old_ip, port)
    hosts = box.mxlab("hosts")
    assert re.search(r"\b2\b.*%s.*stopped" % iid, hosts.stdout), hosts.stdout
    refused = run_on(box, 2, tmp_path, "--timeout", "30")
    assert refused.returncode == 1 and "is stopped" in refused.stderr and "--start" in refused.stderr

    ec2.start_instances(InstanceIds=[iid])
    new_ip = describe(box, iid)["PublicIpAddress"]
    assert new_ip != old_ip and port_open(new_ip, port)
    assert "BEGIN SSH HOST KEY KEYS" not in ec2.get_console_output(InstanceId=iid)["Output"]
    again = run_on(box, 2, tmp_path, "--timeout", "30")
    assert again.returncode == 0, again.stdout + again.stderr
    assert new_ip in again.stdout
    assert (Path(box.variables["MXLAB_HOME"]) / "MxnetLab" / "known_hosts").read_text() == pinned


@pytest.mark.aws_behaviour
def test_run_start_starts_a_stopped_instance_and_goes_on(flow, tmp_path):
    box = flow["box"]
    ec2, iid = box.client("ec2"), instance(box, 3)
    reached(box, 3, tmp_path)  # its keys pinned at first boot: a restarted instance shows them no more
    ec2.stop_instances(InstanceIds=[iid])
    run = run_on(box, 3, tmp_path, "--start")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "starting stopped instance %s" % iid in run.stderr
    assert describe(box, iid)["State"]["Name"] == "running"


@pytest.mark.aws_behaviour
def test_the_cost_guard_alarm_stops_the_instance_and_what_runs_on_it(flow):
    box = flow["box"]
    iid = instance(box, 1)
    cloudwatch = box.client("cloudwatch")
    (alarm,) = [a for a in cloudwatch.describe_alarms()["MetricAlarms"]
                if {"Name": "InstanceId", "Value": iid} in a["Dimensions"]]
    assert any(a.endswith(":ec2:stop") for a in alarm["AlarmActions"])
    sleeper = box.mxlab("ssh", "--attendee", "1", "--", "setsid nohup sleep 600 >/dev/null 2>&1 & echo $!")
    pid = int(sleeper.stdout.split()[-1])
    cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason="idle (test)")
    assert describe(box, iid)["State"]["Name"] == "stopped"
    assert not pid_alive(pid)
    box.client("ec2").start_instances(InstanceIds=[iid])


def test_ctrl_c_leaves_nothing_running(flow):
    box = flow["box"]
    records = box.records()
    pids = [p for r in records for p in r["pids"]]
    paths = [p for r in records for p in r["paths"]]
    assert len(pids) >= 3
    assert box.stop(signal.SIGINT) == 0
    assert "everything the sandbox started is gone" in box.err_file.read_text()
    assert not any(pid_alive(pid, ticks) for pid, ticks in pids)
    assert not any(os.path.exists(p) for p in paths)
    assert box.records() == []
    assert not port_open("127.0.0.1", int(box.variables["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]))


def test_attendees_out_of_range_is_refused_naming_the_option():
    proc = subprocess.run([sys.executable, "-m", "mxlab", "sandbox", "--attendees", "101"], cwd=str(REPO_ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--attendees" in proc.stderr and "1..100" in proc.stderr


def test_export_lines_quote_what_a_shell_would_split():
    lines = export_lines({"MXLAB_HOME": "/tmp/a b", "AWS_REGION": "us-east-1"})
    assert lines == ["export AWS_REGION=us-east-1", "export MXLAB_HOME='/tmp/a b'"]


def test_capacity_names_the_cost_and_refuses_what_memory_cannot_hold(monkeypatch):
    ok, text = check_capacity(3)
    assert ok and "3 attendees" in text and "MB" in text
    monkeypatch.setattr(sandbox, "available_mb", lambda: 100)
    ok, text = check_capacity(3)
    assert not ok and "100 MB available" in text


def test_the_exports_a_sandbox_prints_read_back_as_a_shell_would():
    from mxlab.offline.sandbox_process import parse_exports
    values = {"MXLAB_HOME": "/tmp/it's here", "AWS_REGION": "us-east-1"}
    assert parse_exports(export_lines(values)) == values
    with pytest.raises(ValueError):
        parse_exports(["[sandbox] progress on stdout would break eval"])


@pytest.mark.aws_behaviour
def test_a_sandbox_of_ubuntu_24_04_like_instances_prepares_them_on_a_cpython_3_11_from_uv(sandbox_factory):
    """`mxlab sandbox --host-python3 PATH`: every instance's python3 is a real CPython 3.12 and it has no MXNet
    conda env, as on an Ubuntu 24.04 AMI; prepare makes each agent venv on uv's CPython 3.11 and a run classifies."""
    from tests.other_pythons import cpython

    refused = sandbox_factory("--attendees", "1", "--host-python3", "/nonexistent/python3")
    assert refused.proc.wait(120) == 2 and "--host-python3 /nonexistent/python3" in refused.err_file.read_text()
    box = sandbox_factory("--attendees", "1", "--host-python3", cpython("3.12")).wait_ready()
    prep = box.mxlab("prepare", "--attendee", "1", "--models", "efficientnet-lite0", "--no-warm")
    assert prep.returncode == 0 and "all 1 host(s) ready" in prep.stdout, prep.stdout + prep.stderr
    assert "installing JupyterLab" in prep.stderr, prep.stderr
    assert "is Python 3.12" in prep.stderr and "installing CPython 3.11 with uv" in prep.stderr, prep.stderr
    run = box.mxlab("run", "--model", "efficientnet-lite0", "--results", box.out_file.parent / "r", PHOTO)
    assert run.returncode == 0 and "installing CPython" not in run.stderr, run.stdout + run.stderr
    assert any(cat in run.stdout for cat in ("tabby", "tiger cat", "Egyptian cat")), run.stdout
