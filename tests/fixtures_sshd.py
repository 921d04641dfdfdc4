"""Fixtures that start real OpenSSH lab hosts on loopback (see mxlab/offline/lab_host.py), what a test
reads of such a host, and an attendee's ssh client to them."""
import os
import subprocess
import time

import pytest

from mxlab.offline import leftovers
from mxlab.offline.lab_host import SshdHost, ensure_wheelhouse

INSTANCE = "i-0abc1234def567890"  # the instance id a handout sheet names (sheet_for)


@pytest.fixture
def sshd_factory():
    """Start SshdHost(**kw) on demand; every host started is stopped (sshd, user, processes) after the test."""
    started = []

    def make(**kw):
        host = SshdHost(**kw).start()
        started.append(host)
        return host

    yield make
    for host in started:
        host.stop()


@pytest.fixture(scope="module")
def conda_host():
    """A DLAMI-like host with conda env mxnet_p36 (real MXNet), shared by a test module."""
    host = SshdHost(conda_envs=("mxnet_p36",)).start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def wheelhouse():
    """The agent's pinned wheels, downloaded once through the package registry into build/wheelhouse."""
    return ensure_wheelhouse()


@pytest.fixture
def mxlab_home(tmp_path, monkeypatch):
    """An empty ~/.mxlab for the test (keys, pinned host keys, outputs)."""
    home = tmp_path / "mxlab-home"
    monkeypatch.setenv("MXLAB_HOME", str(home))
    return home


@pytest.fixture
def mxlab_cli(capsys, monkeypatch):
    """Run `mxlab ARGS...` in-process: returns (exit status, stdout, stderr)."""
    from mxlab.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no truncated names in captured output

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def direct_args(host):
    """`--host/--user/--identity/--known-hosts` for an SshdHost."""
    return ["--host", host.hostspec, "--user", host.user, "--identity", host.identity,
            "--known-hosts", host.known_hosts]


def host_commands(host, word, but_not=()):
    """Command lines of the processes running on `host` (its sessions' descendants) that contain `word`: not
    the guards around them, nor those with any of `but_not` (e.g. a `bash -c` that started the one sought)."""
    found = []
    for pid in leftovers.marked_processes(host.mark):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                line = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if word in line and not any(skip in line for skip in ("mxlab-guard",) + tuple(but_not)):
            found.append(line)
    return found


def wait_for(what, condition, timeout=300):
    """Poll `condition()` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "waited %d s for %s" % (timeout, what)
        time.sleep(0.1)


def sheet_for(host, label="attendee-1", readiness=None, instance_id=INSTANCE):
    """`mxlab handout`'s sheet for `host` as attendee LABEL, its host keys pinned under `instance_id`."""
    from mxlab.workshop import handout

    return handout.Sheet(label=label, attendee=int(label.rsplit("-", 1)[1]), instance_id=instance_id,
                         host=host.address, port=host.port, user=host.user, identity=host.identity,
                         state="running", pinned=["%s %s" % (instance_id, line) for line in host.host_key_lines()],
                         readiness=readiness)


def attendee_ssh(argv, cwd, tmp_path):
    """The real ssh client with nothing of this machine's: an empty HOME, no agent, no prompts."""
    home = tmp_path / "empty-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
    env["HOME"] = str(home)
    return subprocess.run(["ssh", "-o", "BatchMode=yes"] + argv, cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=60)
