"""Leftovers (mxlab/offline/leftovers.py): what a killed owner started is swept by the next start, and only
that: a live owner's processes and records are never touched."""
import json
import os
import signal
import subprocess
import sys
import time

from mxlab.offline import leftovers
from tests.fixtures_sandbox import pid_alive

# A lab host started by a process that then dies without any clean-up (as a SIGKILLed test run does),
# with a detached process running on it, as an agent run would.
_ORPHAN = r"""
import json, os, subprocess, sys
from mxlab.offline.lab_host import SshdHost
host = SshdHost(conda_envs=()).start()
ssh = ["ssh", "-i", str(host.identity), "-p", str(host.port), "-o", "BatchMode=yes",
       "-o", "UserKnownHostsFile=%s" % host.known_hosts, "%s@%s" % (host.user, host.address),
       "setsid nohup sleep 600 >/dev/null 2>&1 & echo $!"]
agent = int(subprocess.run(ssh, capture_output=True, text=True, check=True).stdout.split()[-1])
print(json.dumps({"mark": host.mark, "sshd": host.proc.pid, "agent": agent, "dir": str(host.dir)}), flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_killed_owners_lab_host_and_what_ran_on_it_are_swept(tmp_path):
    out = tmp_path / "orphan.out"
    with open(out, "w") as fh:  # a file, not a pipe: the orphaned sshd keeps its stdout open
        proc = subprocess.run([sys.executable, "-c", _ORPHAN], stdout=fh, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == -signal.SIGKILL, out.read_text()
    left = json.loads(out.read_text().splitlines()[-1])
    assert pid_alive(left["sshd"]) and pid_alive(left["agent"]) and os.path.isdir(left["dir"])

    swept = leftovers.sweep()
    assert any(killed >= 2 and left["dir"] in removed for what, killed, removed in swept), swept
    deadline = time.monotonic() + 10
    while (pid_alive(left["sshd"]) or pid_alive(left["agent"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(left["sshd"]) and not pid_alive(left["agent"])
    assert not os.path.exists(left["dir"])
    assert not (leftovers.records_dir() / (left["mark"] + ".json")).exists()


def test_a_live_owners_processes_are_never_swept():
    mark = leftovers.new_mark("test")
    leftovers.record(mark, [], "a live test owner")
    env = dict(os.environ, **{leftovers.MARK_VARIABLE: mark})
    child = subprocess.Popen(["sleep", "600"], env=env)
    try:
        leftovers.sweep()
        assert child.poll() is None, "this process is alive: its marked child stays"
        assert leftovers.marked_processes(mark) == [child.pid]
    finally:
        assert leftovers.kill_marked(mark) == 1
        child.wait(10)
        leftovers.forget(mark)


# An owner that records many marks (a folder and a marked process each) and dies without clean-up.
_MANY_DEAD = r"""
import json, os, subprocess, sys, tempfile
from mxlab.offline import leftovers
left = []
for n in range(int(sys.argv[1])):
    mark = leftovers.new_mark("dead")
    folder = tempfile.mkdtemp(prefix="mxlab-dead-", dir=sys.argv[2])
    leftovers.record(mark, [folder], "dead owner's part %d" % n)
    child = subprocess.Popen(["sleep", "600"], env=dict(os.environ, **{leftovers.MARK_VARIABLE: mark}))
    left.append({"mark": mark, "dir": folder, "pid": child.pid})
print(json.dumps(left), flush=True)
os.kill(os.getpid(), 9)
"""

# A sweep that starts when told (a file appears), as several starting sandboxes or test sessions do at once.
_SWEEPER = r"""
import json, os, sys, time
from mxlab.offline import leftovers
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
print(json.dumps([what for what, killed, removed in leftovers.sweep()]), flush=True)
"""


def test_sweeps_at_once_each_sweep_a_record_once_and_none_fails(tmp_path, monkeypatch):
    """Two sandboxes (or a test session and a demo) starting together both sweep the same dead owner's
    records: neither may fail on a record the other removed, and each record is swept exactly once."""
    records = tmp_path / "records"
    monkeypatch.setenv("MXLAB_OFFLINE_RECORDS", str(records))  # this test's own records, not the machine's
    out = tmp_path / "dead.out"
    with open(out, "w") as fh:
        proc = subprocess.run([sys.executable, "-c", _MANY_DEAD, "24", str(tmp_path)], stdout=fh,
                              stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == -signal.SIGKILL, out.read_text()
    left = json.loads(out.read_text().splitlines()[-1])
    assert len(list(records.glob("*.json"))) == 24 and all(pid_alive(part["pid"]) for part in left)

    go = tmp_path / "go"
    sweepers = [subprocess.Popen([sys.executable, "-c", _SWEEPER, str(go)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(1.0)  # all four are waiting
    go.touch()
    answers = [sweeper.communicate(timeout=120) for sweeper in sweepers]
    assert [s.returncode for s in sweepers] == [0] * 4, [err for _, err in answers]
    swept = [what for stdout, _ in answers for what in json.loads(stdout)]
    assert sorted(swept) == sorted("dead owner's part %d" % n for n in range(24)), "each record swept once"
    assert list(records.iterdir()) == []
    deadline = time.monotonic() + 10
    while any(pid_alive(part["pid"]) for part in left) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(part["pid"]) for part in left)
    assert not any(os.path.exists(part["dir"]) for part in left)


def test_a_record_claimed_by_a_sweep_that_died_is_swept_again(tmp_path, monkeypatch):
    records = tmp_path / "records"
    monkeypatch.setenv("MXLAB_OFFLINE_RECORDS", str(records))
    out = tmp_path / "dead.out"
    with open(out, "w") as fh:
        subprocess.run([sys.executable, "-c", _MANY_DEAD, "1", str(tmp_path)], stdout=fh, timeout=120)
    (part,) = json.loads(out.read_text().splitlines()[-1])
    dead_sweeper = subprocess.Popen(["true"])
    dead_sweeper.wait()
    record = records / (part["mark"] + ".json")
    # As a sweep leaves it when killed between claiming the record and sweeping it.
    record.rename(records / ("%s.sweeping-%d-1" % (part["mark"], dead_sweeper.pid)))
    assert [what for what, _, _ in leftovers.sweep()] == ["dead owner's part 0"]
    assert list(records.iterdir()) == []
    assert not os.path.exists(part["dir"])
