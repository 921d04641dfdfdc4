"""mxlab prepare on the offline lab (3 attendees: the real CDK app deployed into the emulator, a real sshd per
instance, the local zoo over HTTP), as the workshop day runs it: prepare, prepare again, the attendee's
workspace steps over SSH, a run that fetches nothing, a stopped host named, then the handout connecting
each attendee with the real ssh client.

The lab runs in this process (OfflineLab), so the tests read the zoo server's own request log; the
commands are plain `mxlab` child processes with the lab's variables, as an organiser types them.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from mxlab.workshop import prepare, workspace
from mxlab.offline import REPO_ROOT
from tests.fixtures_lab import mxlab, readiness_file
from tests.fixtures_sandbox import pid_alive

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # the first test also waits for the lab
MODELS = ("efficientnet-lite0", "efficientnet-lite1")
PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")
CATS = ("tabby", "tiger cat", "Egyptian cat")
LAB_ATTENDEES = 3  # the lab fixture (tests/fixtures_lab.py)
# Every prepare here: JupyterLab (a venv of its own on each host) is not what this module checks; prepare with it,
# the handout's tunnel and the notebook run are tests/test_mxlab_notebook.py's.
NO_NOTEBOOK = "--no-notebook"


def model_bytes(zoo):
    """Body bytes the zoo sent of model files (its catalogue.json is asked again with If-Modified-Since)."""
    return sum(n for path, n in zoo.bytes_by_path.items() if path != "/catalogue.json")


def model_requests(zoo):
    return [r for r in zoo.requests if r[1] != "/catalogue.json"]


def warm_agents(lab, attendees):
    """{attendee: its warm agent's pid}, after preparing those that have none running: a test that needs
    warm agents makes them itself, whichever tests ran before it (-m aws_behaviour, -k, one test alone)."""
    path = lab.mxlab_home / lab.stack / prepare.READINESS_FILE

    def running():
        hosts = readiness_file(lab) if path.exists() else {}
        found = {n: (hosts.get("attendee-%d" % n) or {}).get("warm_agent") for n in attendees}
        return {n: warm["pid"] for n, warm in found.items() if warm and pid_alive(warm["pid"])}

    missing = [n for n in attendees if n not in running()]
    if missing:
        proc = mxlab(lab, "prepare", NO_NOTEBOOK, "--attendee", ",".join(map(str, missing)),
                     "--models", ",".join(MODELS))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    pids = running()
    assert sorted(pids) == sorted(attendees), readiness_file(lab)
    return pids


def test_events_give_the_bytes_moved():
    events = [json.dumps(e) for e in (
        {"event": "fetch", "model": "m", "file": "a", "bytes": 0, "total": 100},
        {"event": "fetch", "model": "m", "file": "a", "bytes": 60, "total": 100},
        {"event": "retry", "url": "u", "attempt": 1, "of": 4, "error": "reset", "delay": 0.5},
        {"event": "resume", "model": "m", "file": "a", "offset": 60},
        {"event": "fetch", "model": "m", "file": "a", "bytes": 60, "total": 100},
        {"event": "fetch", "model": "m", "file": "a", "bytes": 100, "total": 100},
        {"event": "verified", "model": "m", "file": "a", "sha256": "x"},
        {"event": "resume", "model": "m", "file": "b", "offset": 30},  # kept from an interrupted prepare
        {"event": "fetch", "model": "m", "file": "b", "bytes": 50, "total": 50},
        {"event": "verified", "model": "m", "file": "b", "sha256": "y"})] + ["not an event"]
    assert prepare.bytes_moved(events) == (100 + 20, 2)
    assert prepare.bytes_moved([]) == (0, 0)


def test_prepare_makes_every_host_ready(lab):
    proc = mxlab(lab, "prepare", NO_NOTEBOOK, "--all", "--models", ",".join(MODELS), "--workspace")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for n in (1, 2, 3):
        row = re.search(r"attendee-%d .*" % n, proc.stdout).group(0)
        assert "conda:mxnet_p36" in row and "2/2" in row and row.rstrip(" │").endswith("ready"), row
    assert "all 3 host(s) ready" in proc.stdout
    assert model_bytes(lab.zoo) > 3 * 40_000_000, "each host fetched both models"
    hosts = readiness_file(lab)
    assert sorted(hosts) == ["attendee-1", "attendee-2", "attendee-3"]
    for entry in hosts.values():
        assert entry["ready"] and entry["models"] == list(MODELS) and entry["bytes_moved"] > 40_000_000
        assert all(any(cat in entry["smoke"][m] for cat in CATS) for m in MODELS), entry["smoke"]
        assert entry["activate"].endswith("mxnet_p36") and entry["workspace"].endswith("/mxnet-lab")
        # A warm agent per host, both models bound; the smoke classification ran in it.
        assert entry["warm_agent"]["models"] == sorted(MODELS) and entry["warm_error"] is None, entry
        assert pid_alive(entry["warm_agent"]["pid"])
        assert "pid %d" % entry["warm_agent"]["pid"] in proc.stdout


def test_a_second_prepare_moves_no_model_bytes_and_says_so(lab):
    lab.zoo.reset_counters()
    proc = mxlab(lab, "prepare", NO_NOTEBOOK, "--all", "--models", ",".join(MODELS), "--workspace")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no model bytes moved" in proc.stdout
    assert model_requests(lab.zoo) == [] and model_bytes(lab.zoo) == 0
    assert all(entry["bytes_moved"] == 0 and entry["ready"] for entry in readiness_file(lab).values())


def test_the_workspace_readme_steps_work_as_written_over_ssh(lab):
    home = lab.host(2).home
    folder = home / workspace.WORKSPACE_DIR
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["README.md", "synset.txt", "chelsea.jpg", "coffee.jpg", workspace.MODELS_FILE,
                            workspace.NOTEBOOK.name,
                            "efficientnet-lite0-symbol.json", "efficientnet-lite0-0000.params",
                            "efficientnet-lite1-symbol.json", "efficientnet-lite1-0000.params"])
    params = folder / "efficientnet-lite1-0000.params"
    assert params.is_symlink() and str(os.readlink(str(params))).startswith(str(home)), "a link into the cache"
    readme = (folder / "README.md").read_text()
    (activate,) = re.findall(r"```bash\n(.*?)\n", readme)
    (steps,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert activate == readiness_file(lab)["attendee-2"]["activate"]
    # As the attendee: log in, the README's activation command, the steps typed into python in ~/mxnet-lab.
    proc = subprocess.run(
        [sys.executable, "-m", "mxlab", "ssh", "--attendee", "2", "--", "%s && cd ~/%s && python -"
         % (activate, workspace.WORKSPACE_DIR)],
        input=steps, env=dict({k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MXLAB_"))},
                              **lab.variables()),
        cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    top5 = [line for line in proc.stdout.splitlines() if re.match(r"^\d\.\d{3} ", line)]
    assert len(top5) == 5, proc.stdout
    assert any(cat in top5[0] for cat in CATS), top5


def test_run_after_prepare_fetches_nothing_from_the_zoo(lab, tmp_path):
    lab.zoo.reset_counters()
    proc = mxlab(lab, "run", "--attendee", "1", "--model", ",".join(MODELS), "--results", tmp_path, PHOTO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert model_requests(lab.zoo) == [], model_requests(lab.zoo)
    assert model_bytes(lab.zoo) == 0


def summary_of(results):
    (path,) = results.rglob("summary.json")
    (entry,) = json.loads(path.read_text())
    return entry


def test_a_prepared_host_runs_in_its_warm_agent(lab, tmp_path):
    warm = readiness_file(lab)["attendee-2"]["warm_agent"]
    proc = mxlab(lab, "run", "--attendee", "2", "--model", MODELS[0], "--results", tmp_path, PHOTO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = summary_of(tmp_path)
    assert entry["warm_agent"] is True and "pid %d" % warm["pid"] in entry["warm_reason"], entry
    assert "(warm agent)" in proc.stdout
    (records,) = [f.read_text() for f in tmp_path.rglob("attendee-2.jsonl")]
    assert any(cat in json.loads(records)["top"][0]["label"] for cat in CATS)


@pytest.mark.aws_behaviour
def test_a_stop_ends_the_warm_agent_and_runs_go_on_fresh_until_prepare(lab, tmp_path):
    """The lunch break: the warm agent ends with the instance; the next run says so and classifies fresh;
    the next prepare leaves a warm agent again."""
    ec2 = lab.emulator.boto3_client("ec2")
    iid = lab.instance_id(1)
    pid = warm_agents(lab, [1])[1]
    ec2.stop_instances(InstanceIds=[iid])
    assert not pid_alive(pid)
    ec2.start_instances(InstanceIds=[iid])
    proc = mxlab(lab, "run", "--attendee", "1", "--model", MODELS[0], "--results", tmp_path / "fresh", PHOTO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = summary_of(tmp_path / "fresh")
    assert entry["warm_agent"] is False and "not running" in entry["warm_reason"], entry
    proc = mxlab(lab, "prepare", NO_NOTEBOOK, "--attendee", "1", "--models", ",".join(MODELS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = mxlab(lab, "run", "--attendee", "1", "--model", MODELS[0], "--results", tmp_path / "warm", PHOTO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary_of(tmp_path / "warm")["warm_agent"] is True


def test_prepare_no_warm_leaves_no_warm_agent(lab, tmp_path):
    before = readiness_file(lab)["attendee-2"]["warm_agent"]["pid"]
    proc = mxlab(lab, "prepare", NO_NOTEBOOK, "--attendee", "2", "--models", MODELS[0], "--no-warm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = readiness_file(lab)["attendee-2"]
    assert entry["warm_agent"] is None and entry["warm_error"] is None and entry["ready"]
    assert not pid_alive(before)
    run = mxlab(lab, "run", "--attendee", "2", "--model", MODELS[0], "--results", tmp_path, PHOTO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert summary_of(tmp_path)["warm_agent"] is False


def test_a_host_that_is_not_ready_is_named_with_why(lab, tmp_path):
    ec2 = lab.emulator.boto3_client("ec2")
    iid = lab.instance_id(3)
    ec2.stop_instances(InstanceIds=[iid])
    try:
        proc = mxlab(lab, "prepare", NO_NOTEBOOK, "--all", "--models", MODELS[0], "--timeout", "30")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "1 of 3 host(s) NOT READY: attendee-3" in proc.stderr
        assert re.search(r"attendee-3 not ready: .*is stopped.*--start", proc.stderr), proc.stderr
        assert re.search(r"attendee-1 .*ready", proc.stdout)
        assert not readiness_file(lab)["attendee-3"]["ready"]

        # A stopped instance's handout has no address (its old one is gone); --start starts it first.
        stopped = mxlab(lab, "handout", "--attendee", "3", "--out", tmp_path / "stopped")
        assert stopped.returncode == 0, stopped.stderr
        assert "is stopped, so its folder has no address" in stopped.stderr
        assert "HostName UNKNOWN" in (tmp_path / "stopped" / "attendee-3" / "ssh_config").read_text()
        started = mxlab(lab, "handout", "--attendee", "3", "--start", "--out", tmp_path / "started")
        assert started.returncode == 0, started.stderr
        assert "HostName %s" % lab.host(3).address in (tmp_path / "started" / "attendee-3" / "ssh_config").read_text()
    finally:
        state = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]
        if state == "stopped":
            ec2.start_instances(InstanceIds=[iid])


def test_handout_connects_each_attendee_with_strict_checking(lab, tmp_path):
    # attendee-3 is back on a new address: the handout has the live one, its keys pinned by instance id.
    proc = mxlab(lab, "prepare", NO_NOTEBOOK, "--attendee", "3", "--models", ",".join(MODELS), "--workspace")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "handout"
    proc = mxlab(lab, "handout", "--all", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    keys = [(lab.mxlab_home / lab.stack / ("attendee-%d.pem" % n)).read_text() for n in (1, 2, 3)]
    body_lines = [line for key in keys for line in key.splitlines() if len(line) > 20 and "---" not in line]
    assert not any(line in proc.stdout + proc.stderr for line in body_lines), "no key material printed"
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
    env["HOME"] = str(empty_home)
    for n in (1, 2, 3):
        folder = out / ("attendee-%d" % n)
        config = (folder / "ssh_config").read_text()
        assert "HostKeyAlias %s" % lab.instance_id(n) in config and "StrictHostKeyChecking yes" in config
        ssh = subprocess.run(["ssh", "-o", "BatchMode=yes", "-F", str(folder / "ssh_config"), "attendee-%d" % n,
                              "true"], env=env, capture_output=True, text=True, timeout=60)
        assert ssh.returncode == 0, ssh.stderr
        assert lab.outputs["Attendee%dPublicIp" % n] != lab.host(n).address or n != 3
        assert "HostName %s" % lab.host(n).address in config
    page = (out / "index.html").read_text()
    assert page.count("class=\"ok\">ready<") == 3, page
    for text in list(out.rglob("*.html")) + list(out.rglob("*.txt")):
        assert not any(line in text.read_text() for line in body_lines), text

    again = mxlab(lab, "handout", "--all", "--out", out)
    assert again.returncode == 2 and "not empty" in again.stderr and "--force" in again.stderr
    forced = mxlab(lab, "handout", "--attendee", "2", "--out", out, "--force")
    assert forced.returncode == 0, forced.stderr


@pytest.mark.aws_behaviour
def test_down_ends_every_warm_agent(lab):
    """Last in this module: `mxlab down` terminates the lab's instances, and the warm agents with them."""
    pids = list(warm_agents(lab, [1, 2, 3]).values())
    proc = mxlab(lab, "down")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not any(pid_alive(pid) for pid in pids)
