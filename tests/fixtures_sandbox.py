"""`mxlab sandbox` as a user runs it: a child process whose `export` lines point the plain commands at it
(mxlab/offline/sandbox_process.py), started per test and always stopped."""
import socket

import pytest

from mxlab.offline import leftovers
from mxlab.offline.sandbox_process import SandboxProcess


def port_open(address, port):
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def pid_alive(pid, ticks=None):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and (ticks is None or int(fields[19]) == ticks)


@pytest.fixture
def sandbox_factory(tmp_path):
    """Start `mxlab sandbox ARGS` children; each is stopped (SIGINT, then SIGKILL) after the test."""
    started = []

    def make(*args):
        box = SandboxProcess(tmp_path / ("sandbox-%d" % len(started)), *args)
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()
    leftovers.sweep()  # what a SIGKILLed one left


@pytest.fixture(scope="module")
def box(request, tmp_path_factory):
    """One ready `mxlab sandbox` for the test module, of the module's SANDBOX_ATTENDEES attendees (a deploy
    costs a minute or two); stopped after the module."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    sandbox = SandboxProcess(tmp_path_factory.mktemp(name), "--attendees", str(request.module.SANDBOX_ATTENDEES))
    try:
        yield sandbox.wait_ready()
    finally:
        sandbox.stop()
