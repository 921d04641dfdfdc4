"""The kept connection (mxlab/hosts/keep.py, opt-in): a holder process keeps the SSH transport to a host, and the
next `mxlab run` goes through it with fewer round trips at the (real) latency relay and the same results; a
killed holder, or one whose host went away, means a direct connection; its socket is private; it exits when
idle. Every test ends the holders it started (by the pid they write)."""
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mxlab.hosts import keep
from mxlab.lab import targets
from mxlab.offline import REPO_ROOT
from mxlab.offline.lab_host import SshdHost, free_port
from mxlab.offline.latency_relay import LatencyNetwork
from tests.fixtures_sshd import direct_args

PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")
ZOO = str(REPO_ROOT / "build" / "zoo")


@pytest.fixture(scope="module")
def relayed_host():
    """A prepared loopback sshd host behind the latency relay (0 ms: the relay only counts)."""
    host = SshdHost(listen_port=free_port()).start()
    network = LatencyNetwork(0)
    network.add("host", (host.address, host.port), (host.address, host.listen_port))
    yield host, network
    network.close()
    host.stop()


@pytest.fixture
def organiser(tmp_path, monkeypatch):
    """An organiser's environment (its own ~/.mxlab, also this process's: keep.holders() reads it); every holder
    started under it is ended afterwards."""
    env = dict(os.environ, MXLAB_HOME=str(tmp_path / "home"), MXLAB_KEEP_CONNECTION="1", MXLAB_KEEP_IDLE="60",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    monkeypatch.setenv("MXLAB_HOME", env["MXLAB_HOME"])
    yield env
    for pid, _ in keep.holders():
        os.kill(pid, signal.SIGKILL)


def _run(host, env, results, *extra):
    done = subprocess.run([sys.executable, "-m", "mxlab", "run"] + [str(a) for a in direct_args(host)]
                          + ["-v", "--zoo", ZOO, "--model", "efficientnet-lite0", "--results", str(results), PHOTO]
                          + list(extra), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _labels(results):
    newest = max(Path(results).rglob("summary.json"), key=os.path.getmtime)
    (entry,) = json.loads(newest.read_text())
    return entry


def _wait_for_holder(timeout=30):
    """(pid, socket) of this home's one holder, once its socket is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = keep.holders()
        if found and found[0][1].exists():
            (held,) = found
            return held
        time.sleep(0.1)
    raise AssertionError("no holder started")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # a zombie until its parent (init) reaps it: count it gone
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def _target(host):
    return targets.direct_target(host.hostspec, host.user, host.identity, host.known_hosts)


def _trips(network, run):
    before = network.settled()["total"]
    done = run()
    after = network.settled()["total"]
    return done, after["round_trips"] - before["round_trips"], after["connections"] - before["connections"]


def test_a_second_run_goes_through_the_holder_with_fewer_round_trips(relayed_host, organiser, tmp_path):
    host, network = relayed_host
    direct_env = dict(organiser, MXLAB_KEEP_CONNECTION="0")
    _run(host, direct_env, tmp_path / "warm")  # the agent uploaded, the environment made: the host is prepared
    _, direct_trips, _ = _trips(network, lambda: _run(host, direct_env, tmp_path / "direct"))
    assert not keep.holders(), "no holder without being asked for one"

    _run(host, organiser, tmp_path / "first", "--keep-connection")  # connects directly, starts the holder
    pid, sock = _wait_for_holder()
    done, kept_trips, connections = _trips(network, lambda: _run(host, organiser, tmp_path / "kept"))
    assert "through the kept connection" in done.stderr
    assert connections == 0, "the run opened no connection of its own to the host"
    assert kept_trips <= 3 and kept_trips < direct_trips, (kept_trips, direct_trips)
    direct, kept = _labels(tmp_path / "direct"), _labels(tmp_path / "kept")
    assert kept["status"] == direct["status"] == "ok"
    assert json.dumps(kept.get("results", kept.get("top")), sort_keys=True) == json.dumps(
        direct.get("results", direct.get("top")), sort_keys=True)

    # The socket is this user's alone, in a folder of its own.
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_IMODE(sock.parent.stat().st_mode) == 0o700

    # (b) The holder killed: the next run connects directly and still works, and starts a new holder.
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _, _, connections = _trips(network, lambda: _run(host, organiser, tmp_path / "after-kill"))
    assert connections >= 1, "it went to the host directly"
    assert _labels(tmp_path / "after-kill")["status"] == "ok"


def test_a_holder_whose_host_went_away_means_a_direct_run(relayed_host, organiser, tmp_path):
    """(c) The held transport dies (the relay drops its connections, as for a stopped instance): the holder exits
    and the next run connects directly."""
    host, network = relayed_host
    _run(host, organiser, tmp_path / "first")
    pid, _ = _wait_for_holder()
    network.remove("host")
    network.add("host", (host.address, host.port), (host.address, host.listen_port))
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the holder noticed its transport died and exited"
    done = _run(host, organiser, tmp_path / "again")
    assert "through the kept connection" not in done.stderr
    assert _labels(tmp_path / "again")["status"] == "ok"


def test_an_idle_holder_exits_and_removes_its_socket(relayed_host, organiser, monkeypatch):
    host, _ = relayed_host
    monkeypatch.setenv("PYTHONPATH", organiser["PYTHONPATH"])
    monkeypatch.setenv(keep.IDLE_ENV, "2")
    keep.start_holder(_target(host))
    pid, sock = _wait_for_holder()
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid) and not sock.exists() and not keep.holders()


def test_two_holders_started_at_once_leave_one_and_stop_all_ends_it(relayed_host, organiser, monkeypatch):
    """Two first runs each start a holder: one keeps the host, the other exits at once (a lock, not a race over
    the socket's name); `mxlab down`'s stop_all ends it, and a stale pid file names nobody to signal."""
    host, _ = relayed_host
    monkeypatch.setenv("PYTHONPATH", organiser["PYTHONPATH"])
    keep.start_holder(_target(host))
    keep.start_holder(_target(host))
    pid, sock = _wait_for_holder()
    deadline = time.monotonic() + 30  # the second holder finds the lock taken and exits
    while len(_holder_processes(sock)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _holder_processes(sock) == [pid] and [p for p, _ in keep.holders()] == [pid]
    assert keep.stop_all() == 1
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and not keep.holders()
    pid_file = sock.with_suffix(".pid")
    pid_file.write_text("%d\n%s\n" % (os.getpid(), organiser["MXLAB_HOME"]))  # a dead holder's pid, now reused
    assert keep.stop_all() == 0  # and this process was not signalled
    pid_file.unlink()


def _holder_processes(sock):
    """The pids of live holder processes started for `sock`."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path("/proc/%s/cmdline" % name).read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mxlab.hosts.keep_holder" in argv and str(sock).encode() in argv and _alive(int(name)):
            found.append(int(name))
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root (the modes are checked above)")
def test_another_user_cannot_reach_the_holder(relayed_host, organiser, monkeypatch):
    """A second user of the laptop (uid 65534 here) cannot even open the socket: its 0700 folder keeps them out
    (and the holder drops a peer of another uid)."""
    host, _ = relayed_host
    monkeypatch.setenv("PYTHONPATH", organiser["PYTHONPATH"])
    keep.start_holder(_target(host))
    pid, sock = _wait_for_holder()
    probe = ("import os, socket, sys\nos.setgid(65534)\nos.setuid(65534)\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\n    print('connected')\nexcept OSError as e:\n    print(e.errno)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(sock)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "13", done.stdout + done.stderr  # EACCES
    assert _alive(pid)
