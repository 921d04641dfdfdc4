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
