"""Faults of a lab day, made in the sandbox: a host's disk fills up, two organisers work at once, the operator's
laptop goes away mid-run.

The lab (2 attendees: the real CDK app in the emulator, a real sshd per instance, the local zoo over HTTP)
runs in this process, so the tests can read the zoo's request log and reach into a host's home; the commands
are plain `mxlab` child processes with the lab's variables, killed and signalled as a laptop would be.
"""
import json
import re
import signal
import time

import pytest

from mxlab.offline import REPO_ROOT
from mxlab.offline.small_disk import SmallDisk, SmallDiskUnavailable
from tests.fixtures_lab import mxlab, mxlab_started
from tests.fixtures_sshd import host_commands, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.slow]
MODEL = "efficientnet-lite0"
PARAMS = "efficientnet-lite0-0000.params"
PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")
CATS = ("tabby", "tiger cat", "Egyptian cat")
LAB_ATTENDEES = 2  # the lab fixture (tests/fixtures_lab.py)


def params_gets(zoo):
    return [r for r in zoo.requests if r[0] == "GET" and r[1].endswith("/" + PARAMS)]


def cache_dir(host):
    return host.home / ".mxlab" / "models" / MODEL


@pytest.fixture
def small_disk(lab):
    """attendee-1's home on a 64 MB tmpfs (as root; skipped with the reason otherwise), put back after."""
    disk = SmallDisk(lab.host(1), 64)
    try:
        disk.mount()
    except SmallDiskUnavailable as exc:
        pytest.skip("no small filesystem for a host's home here: %s" % exc)
    yield disk
    disk.unmount()


# ---- 1. a full disk on a host ------------------------------------------------------------------------------

def test_a_full_disk_is_named_with_what_is_needed_and_leaves_nothing_half_written(lab, small_disk, tmp_path):
    host = lab.host(1)
    # Before fetching: prepare checks the catalogue's sizes against the free space, and moves no model byte.
    small_disk.fill(leave_bytes=5 * 10**6)
    lab.zoo.reset_counters()
    proc = mxlab(lab, "prepare", "--all", "--models", MODEL, "--no-warm")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"attendee-1 not ready: disk full on attendee-1: need 18\.9 MB, [45]\.\d MB free", proc.stderr), \
        proc.stderr
    assert re.search(r"attendee-2 .*ready", proc.stdout), proc.stdout
    assert len(params_gets(lab.zoo)) == 1, "only attendee-2 fetched: %s" % lab.zoo.requests
    assert not cache_dir(host).exists() or not [p for p in cache_dir(host).iterdir() if "params" in p.name]

    # While fetching: the disk fills up under a download (a slow link, something else writing): the partial
    # file goes, the error says so, the other host's results are saved.
    small_disk.release()
    lab.zoo.add_fault("/%s/%s" % (MODEL, PARAMS), "slow", 1, 4 * 10**6)
    part = cache_dir(host) / (".%s.part" % PARAMS)
    run = mxlab_started(lab, "run", "--all", "--model", MODEL, "--results", tmp_path / "full", PHOTO,
                        log=tmp_path / "full.log")
    try:
        wait_for("the download to start", lambda: part.exists() and part.stat().st_size > 2 * 10**6)
        small_disk.fill(leave_bytes=0)
        assert run.wait(600) == 1
    finally:
        run.kill()
        run.wait()
    out = (tmp_path / "full.log").read_text()
    assert re.search(r"disk full on attendee-1: need 18\.8 MB, \d+\.\d MB free in \S+ \(efficientnet-lite0 %s; "
                     r"the partial file was removed\)" % re.escape(PARAMS), out), out
    assert sorted(p.name for p in cache_dir(host).iterdir() if PARAMS in p.name) == [], "nothing half-written"
    (saved,) = list((tmp_path / "full").rglob("attendee-2.jsonl"))
    assert any(cat in json.loads(saved.read_text())["top"][0]["label"] for cat in CATS)
    summary = {e["host"]: e for e in json.loads(next((tmp_path / "full").rglob("summary.json")).read_text())}
    assert summary["attendee-2"]["status"] == "ok" and "disk full on attendee-1" in summary["attendee-1"]["error"]

    # Room again: the next run fetches the whole file afresh and classifies.
    small_disk.release()
    proc = mxlab(lab, "run", "--attendee", "1", "--model", MODEL, "--results", tmp_path / "room", PHOTO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (cache_dir(host) / PARAMS).stat().st_size == 18793983


# ---- 2. two organisers at once -----------------------------------------------------------------------------


def zoo_file_sha(lab, model):
    import hashlib
    return hashlib.sha256((REPO_ROOT / "build" / "zoo" / model / ("%s-0000.params" % model)).read_bytes()).hexdigest()


def test_two_organisers_at_once_wait_for_each_other_and_corrupt_nothing(lab, tmp_path):
    import hashlib
    host = lab.host(2)
    model = "efficientnet-lite1"
    params = "/%s/%s-0000.params" % (model, model)
    holder = host.home / ".mxlab-agent" / "prepare.lock.holder"
    lab.zoo.reset_counters()
    lab.zoo.add_fault(params, "slow", 1, 2 * 10**6)
    first = mxlab_started(lab, "prepare", "--attendee", "2", "--models", model, log=tmp_path / "first.log")
    second = None
    try:
        wait_for("the first prepare to hold the host's lock", holder.exists)
        assert "pid %d" % first.pid in holder.read_text()
        second = mxlab_started(lab, "prepare", "--attendee", "2", "--models", model, log=tmp_path / "second.log")
        # Meanwhile a run on the same host (its environment is set up: it needs no lock) goes its own way.
        run = mxlab(lab, "run", "--attendee", "2", "--model", MODEL, "--results", tmp_path / "run", PHOTO)
        assert run.returncode == 0, run.stdout + run.stderr
        assert first.wait(600) == 0, (tmp_path / "first.log").read_text()
        assert second.wait(600) == 0, (tmp_path / "second.log").read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    said = (tmp_path / "second.log").read_text()
    assert re.search(r"attendee-2: waiting for another mxlab that is setting this host up \(\S+@\S+ pid %d since "
                     % first.pid, said), said
    # One fetch of the model (the second found it cached), verified; one warm agent; the run's answer.
    assert len([r for r in lab.zoo.requests if r[0] == "GET" and r[1] == params]) == 1, lab.zoo.requests
    cached = host.home / ".mxlab" / "models" / model / ("%s-0000.params" % model)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == zoo_file_sha(lab, model)
    serving = host_commands(host, "agent serve", but_not=("bash -c",))
    assert len(serving) == 1, serving
    (saved,) = list((tmp_path / "run").rglob("attendee-2.jsonl"))
    assert any(cat in json.loads(saved.read_text())["top"][0]["label"] for cat in CATS)
    assert not holder.exists(), "the lock's holder file goes with the lock"


def test_a_suspended_organisers_lock_is_taken_over_and_it_stops_cleanly_when_it_wakes(lab, tmp_path):
    """SIGSTOP of a prepare (a laptop closed mid-prepare, its connection still up): the next organiser waits
    until the lock is stale (MXLAB_LOCK_STALE_S, 120 s by default, 3 s here: what happens does not depend on
    its length), takes it over and finishes; SIGCONT: the first one finds its lock gone and stops that host."""
    host = lab.host(2)
    model = "efficientnet-lite2"
    part = host.home / ".mxlab" / "models" / model / (".%s-0000.params.part" % model)
    lab.zoo.add_fault("/%s/%s-0000.params" % (model, model), "slow", 1, 2 * 10**6)
    stale = {"MXLAB_LOCK_STALE_S": "3"}
    sleeper = mxlab_started(lab, "prepare", "--attendee", "2", "--models", model, log=tmp_path / "sleeper.log",
                            env=stale)
    try:
        try:
            wait_for("the first prepare to be fetching", lambda: part.exists() and part.stat().st_size > 10**6)
            sleeper.send_signal(signal.SIGSTOP)
            second = mxlab(lab, "prepare", "--attendee", "2", "--models", model, env=stale)
            assert second.returncode == 0, second.stdout + second.stderr
            assert re.search(r"attendee-2: took over the set-up lock of \S+@\S+ pid %d .*not heard for \d+ s\): it was "
                             r"stale" % sleeper.pid, second.stdout + second.stderr), second.stdout + second.stderr
        finally:
            sleeper.send_signal(signal.SIGCONT)
        assert sleeper.wait(600) == 1
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    said = (tmp_path / "sleeper.log").read_text()
    lost = "attendee-2 not ready: attendee-2: this mxlab's set-up lock on the host was lost"
    assert lost in " ".join(said.split()), said
    cached = host.home / ".mxlab" / "models" / model / ("%s-0000.params" % model)
    import hashlib
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == zoo_file_sha(lab, model)
    assert len(host_commands(host, "agent serve", but_not=("bash -c",))) == 1


# ---- 3. the operator's laptop goes away mid-run --------------------------------------------------------------

@pytest.fixture(scope="module")
def many_photos(tmp_path_factory):
    import shutil
    folder = tmp_path_factory.mktemp("many-photos")
    for i in range(8):
        for photo in (REPO_ROOT / "build" / "photos").glob("*.jpg"):
            shutil.copy(str(photo), str(folder / ("%02d-%s" % (i, photo.name))))
    return folder


def run_folder(results):
    found = [p for p in results.glob("*/*") if p.is_dir()]
    return found[0] if len(found) == 1 else None


def test_a_sharded_run_killed_partway_is_finished_by_resume_each_input_once(lab, many_photos, tmp_path):
    results = tmp_path / "results"
    common = ["--all", "--shard", "--chunk-size", "4", "--model", MODEL, "--results", results, many_photos]
    run = mxlab_started(lab, "run", *common, log=tmp_path / "killed.log")
    try:
        wait_for("a chunk's results to be saved",
                 lambda: run_folder(results) is not None and list(run_folder(results).glob("attendee-*.jsonl")))
        assert run.poll() is None, "the run ended before it could be killed: %s" % (tmp_path / "killed.log").read_text()
        run.send_signal(signal.SIGKILL)  # the laptop's battery
        run.wait()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    folder = run_folder(results)
    saved = sum(len(p.read_text().splitlines()) for p in folder.glob("attendee-*.jsonl"))
    assert 0 < saved < 32
    proc = mxlab(lab, "run", *common[:-1], "--resume", folder.name, many_photos)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    merged = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    names = sorted(r["image"] for r in merged)
    assert names == sorted(str(p) for p in many_photos.iterdir()), "every input exactly once"
    assert all(r.get("top") for r in merged)


def test_ctrl_c_keeps_what_was_fetched_says_how_to_resume_and_resume_collects_the_rest(lab, many_photos, tmp_path):
    model = "efficientnet-lite1"  # cached on attendee-2, fetched by attendee-1 over a slow link: one host done first
    proc = mxlab(lab, "run", "--attendee", "2", "--model", model, "--results", tmp_path / "warm-up", PHOTO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for p in (lab.host(1).home / ".mxlab" / "models" / model).glob("*"):
        p.unlink()
    lab.zoo.add_fault("/%s/%s-0000.params" % (model, model), "slow", 1, 10**6)
    results = tmp_path / "results"
    common = ["--all", "--model", model, "--results", results, many_photos]
    run = mxlab_started(lab, "run", *common, log=tmp_path / "interrupted.log")
    try:
        wait_for("attendee-2's results to be saved and attendee-1's agent to be running",
                 lambda: run_folder(results) is not None and (run_folder(results) / "attendee-2.jsonl").exists()
                 and list(lab.host(1).home.glob(".mxlab-agent/runs/%s/pid" % run_folder(results).name)))
        run.send_signal(signal.SIGINT)
        assert run.wait(60) == 130
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    folder = run_folder(results)
    said = " ".join((tmp_path / "interrupted.log").read_text().split())
    assert ("mxlab: interrupted: the results of attendee-2 are saved in %s; attendee-1 had not finished. The same "
            "command with --resume %s keeps what is saved" % (folder, folder.name)) in said, said
    assert len((folder / "attendee-2.jsonl").read_text().splitlines()) == 32
    summary = {e["host"]: e for e in json.loads((folder / "summary.json").read_text())}
    assert summary["attendee-2"]["status"] == "ok" and summary["attendee-1"]["status"] == "interrupted"
    remote = lab.host(1).home / ".mxlab-agent" / "runs" / folder.name
    pid = (remote / "pid").read_text()

    proc = mxlab(lab, "run", *common[:-1], "--resume", folder.name, many_photos)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (remote / "pid").read_text() == pid, "it followed the agent the interrupted run had started"
    for n in (1, 2):
        records = [json.loads(line) for line in (folder / ("attendee-%d.jsonl" % n)).read_text().splitlines()]
        assert sorted(r["image"] for r in records) == sorted(str(p) for p in many_photos.iterdir())
    summary = {e["host"]: e for e in json.loads((folder / "summary.json").read_text())}
    assert [summary[h]["status"] for h in ("attendee-1", "attendee-2")] == ["ok", "ok"]


def test_a_suspended_operator_picks_up_where_it_was(lab, many_photos, tmp_path):
    """SIGSTOP while both hosts classify, SIGCONT once both agents have finished (not after a fixed 90 s: the
    agents are detached and the sandbox's sshd, like Ubuntu's, has no ClientAliveInterval, so what happens does not
    depend on how long; a host whose sshd drops the idle connection is the reconnect that test_mxlab_run covers)."""
    results = tmp_path / "results"
    run = mxlab_started(lab, "run", "--all", "--model", MODEL, "--results", results, many_photos,
                        log=tmp_path / "suspended.log")
    try:
        def remote(n):
            folder = run_folder(results)
            return lab.host(n).home / ".mxlab-agent" / "runs" / folder.name if folder else None

        wait_for("both agents to run", lambda: all(remote(n) and (remote(n) / "pid").exists() for n in (1, 2)))
        run.send_signal(signal.SIGSTOP)  # the lid closes
        wait_for("both agents to finish meanwhile", lambda: all((remote(n) / "exit_code").exists() for n in (1, 2)))
        time.sleep(5)  # asleep a while longer: nothing depends on it
        run.send_signal(signal.SIGCONT)
        assert run.wait(300) == 0, (tmp_path / "suspended.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    for n in (1, 2):
        records = [json.loads(line) for line in (run_folder(results) / ("attendee-%d.jsonl" % n)).read_text()
                   .splitlines()]
        assert len(records) == 32 and all(r.get("top") for r in records)


# ---- 4. an instance stopped (the idle auto-stop, the deadline, by hand) ------------------------------------

SLOW_MODEL = "efficientnet-lite1"  # fetched over a slow link: its agent is still busy when the stop comes


def stopped_text(lab, n):
    """readiness.not_running()'s text: the one every command gives for a stopped instance."""
    iid = lab.instance_id(n)
    return ("attendee-%d: instance %s is stopped (the idle auto-stop, the lab's deadline, or by hand): run again "
            "with --start to start it and go on, or `aws ec2 start-instances --instance-ids %s`" % (n, iid, iid))


def instance_state(lab, n):
    (res,) = lab.emulator.boto3_client("ec2").describe_instances(InstanceIds=[lab.instance_id(n)])["Reservations"]
    return res["Instances"][0]["State"]["Name"]


def stop_while_fetching(lab, n, run, log):
    """Stop attendee-n's instance once its agent is fetching SLOW_MODEL (its agent busy, its connection up)."""
    host = lab.host(n)
    for p in (host.home / ".mxlab" / "models" / SLOW_MODEL).glob("*"):
        p.unlink()
    lab.zoo.add_fault("/%s/%s-0000.params" % (SLOW_MODEL, SLOW_MODEL), "slow", 1, 10**6)
    proc = mxlab_started(lab, *run, log=log)
    part = host.home / ".mxlab" / "models" / SLOW_MODEL / (".%s-0000.params.part" % SLOW_MODEL)
    try:
        wait_for("attendee-%d's agent to be fetching" % n, lambda: part.exists() and part.stat().st_size > 10**5)
        lab.emulator.boto3_client("ec2").stop_instances(InstanceIds=[lab.instance_id(n)])
        assert proc.wait(300) == 1, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return " ".join(log.read_text().split())


@pytest.fixture
def stopped_later(lab):
    """attendee-1 running again after the test (the test stops it)."""
    yield
    if instance_state(lab, 1) != "running":
        lab.emulator.boto3_client("ec2").start_instances(InstanceIds=[lab.instance_id(1)])


def test_a_plain_run_gives_up_at_once_on_an_instance_stopped_mid_run(lab, stopped_later, tmp_path):
    """The stop ends the agent and the SSH server: no reconnecting for minutes (what a sharded run already
    did), the same text as a stop found before connecting, and nothing started the instance again."""
    results = tmp_path / "results"
    said = stop_while_fetching(lab, 1, ["run", "--attendee", "1", "--model", SLOW_MODEL, "--results", results, PHOTO],
                               tmp_path / "run.log")
    assert stopped_text(lab, 1) in said, said
    assert "reconnecting" not in said and "gave up" not in said, said
    (entry,) = json.loads(next(results.rglob("summary.json")).read_text())
    assert entry["status"] == "failed" and entry["error"] == stopped_text(lab, 1), entry
    assert instance_state(lab, 1) == "stopped"


def test_a_stopped_instance_reads_the_same_in_run_shard_and_prepare(lab, stopped_later, tmp_path):
    """Stopped mid-run under a sharded run, then met before connecting by a plain run and by prepare: one text."""
    results = tmp_path / "shard"
    said = stop_while_fetching(lab, 1, ["run", "--attendee", "1", "--shard", "--model", SLOW_MODEL, "--results",
                                        results, PHOTO], tmp_path / "shard.log")
    assert "mxlab: attendee-1 failed: %s; chunk 1 (inputs 1) handed back" % stopped_text(lab, 1) in said, said
    summary = json.loads(next(results.rglob("summary.json")).read_text())
    assert summary[0]["error"].startswith(stopped_text(lab, 1) + "; chunk 1"), summary

    run = mxlab(lab, "run", "--attendee", "1", "--model", MODEL, "--results", tmp_path / "run", PHOTO)
    assert run.returncode == 1, run.stdout + run.stderr
    (entry,) = json.loads(next((tmp_path / "run").rglob("summary.json")).read_text())
    assert entry["error"] == stopped_text(lab, 1), entry

    prepare = mxlab(lab, "prepare", "--attendee", "1", "--models", MODEL, "--no-warm", "--no-notebook")
    assert prepare.returncode == 1, prepare.stdout + prepare.stderr
    assert "mxlab: attendee-1 not ready: %s" % stopped_text(lab, 1) in " ".join(prepare.stderr.split()), \
        prepare.stderr
    assert instance_state(lab, 1) == "stopped"
