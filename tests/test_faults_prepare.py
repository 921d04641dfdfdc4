"""Fault: `mxlab prepare` killed (SIGKILL: the laptop's lid, a kill -9) while it installs MXNet or fetches a
model. The next `prepare` finishes the job with no clean-up by hand: nothing of the killed one runs on, no
half-made venv is taken as ready, no partial model is trusted.

Real parts: an sshd host without conda (the venv fallback, pip from the pinned wheelhouse), the local zoo
over HTTP slowed down (a slow link: the fetch is still running when the kill comes), `mxlab prepare` as a
child process killed with SIGKILL.
"""
import hashlib
import os
import signal
import subprocess
import sys

import pytest

from mxlab.offline import REPO_ROOT
from mxlab.remote.python_env import VENV_READY
from tests.fixtures_sshd import direct_args, host_commands, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.slow]
MODEL = "efficientnet-lite0"
PARAMS = "efficientnet-lite0-0000.params"


def prepare_command(host, zoo, home):
    env = dict(os.environ, MXLAB_HOME=str(home), COLUMNS="250")
    # --no-warm --no-notebook: the warm agent and JupyterLab (a venv of its own) are not what is killed here.
    argv = [sys.executable, "-m", "mxlab", "prepare", *map(str, direct_args(host)), "--zoo", zoo.url,
            "--models", MODEL, "--no-warm", "--no-notebook"]
    return argv, env


def kill_prepare_when(host, zoo, home, log, condition, what):
    """Start `mxlab prepare`, SIGKILL it once `condition()` holds; return what it printed."""
    argv, env = prepare_command(host, zoo, home)
    with open(str(log), "w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=str(REPO_ROOT), stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(what, lambda: condition() or proc.poll() is not None, 600)
            assert proc.poll() is None, "prepare ended before %s: %s" % (what, log.read_text())
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    return log.read_text()


def prepare_again(host, zoo, home):
    argv, env = prepare_command(host, zoo, home)
    return subprocess.run(argv, env=env, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=1800)


# A laptop's mxlab in miniature: one Session, one long remote command, then SIGKILL of that process.
_LONG_COMMAND = """
import sys
from mxlab.hosts.session import Session
from mxlab.lab.targets import direct_target
session = Session(direct_target(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])).connect(wait_cloud_init=False)
print("connected", flush=True)
session.exec("sleep 600; : mxlab-fault-long-command")
"""


def test_a_remote_command_ends_when_the_mxlab_that_started_it_is_killed(sshd_factory, tmp_path):
    """What makes the rest hold: sshd leaves a command without a terminal running when its client is gone."""
    host = sshd_factory(conda_envs=())
    proc = subprocess.Popen([sys.executable, "-c", _LONG_COMMAND, host.hostspec, host.user, str(host.identity),
                             str(host.known_hosts)], cwd=str(REPO_ROOT), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "connected"
        wait_for("the command to run", lambda: host_commands(host, "sleep 600"), 60)
    finally:
        proc.kill()
        proc.wait()
    wait_for("the command to end with its connection", lambda: not host_commands(host, "sleep 600"), 60)


def test_a_prepare_killed_during_the_mxnet_install_and_then_a_model_fetch_is_finished_by_the_next(
        sshd_factory, wheelhouse, local_zoo, serve_zoo, tmp_path):
    host = sshd_factory(conda_envs=(), wheelhouse=wheelhouse)
    zoo = serve_zoo(local_zoo)
    home = tmp_path / "mxlab-home"
    venv = host.home / ".mxlab-agent" / "venv"

    # 1. Killed while pip installs MXNet into the new venv.
    kill_prepare_when(host, zoo, home, tmp_path / "install.log",
                      lambda: (host_commands(host, "pip install")
                               and list(venv.glob("lib/python3*/site-packages/numpy"))),
                      "pip to be installing")
    wait_for("the killed prepare's pip to end on the host", lambda: not host_commands(host, "pip install"), 60)
    assert not (venv / VENV_READY).exists() and not (host.home / ".mxlab-agent" / "env.sh").exists()

    # 2. The next prepare: the half venv is made again, not trusted; it is killed in turn during the fetch.
    zoo.add_fault("/%s/%s" % (MODEL, PARAMS), "slow", 1, 2 * 10**6)
    part = host.home / ".mxlab" / "models" / MODEL / (".%s.part" % PARAMS)
    said = kill_prepare_when(host, zoo, home, tmp_path / "fetch.log",
                             lambda: part.exists() and part.stat().st_size > 10**6, "the model fetch to be under way")
    assert "did not finish): making it again from scratch" in said, said
    assert (venv / VENV_READY).exists(), "the venv was finished before the fetch began"
    wait_for("the killed prepare's fetch to end on the host", lambda: not host_commands(host, "agent fetch"), 60)
    kept = part.stat().st_size
    assert not (host.home / ".mxlab" / "models" / MODEL / PARAMS).exists(), "no partial model under its name"

    # 3. The next prepare resumes the fetch where the killed one stopped and the host is ready.
    zoo.reset_counters()
    proc = prepare_again(host, zoo, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 1 host(s) ready" in proc.stdout
    resumed = [r for r in zoo.requests if r[1].endswith(PARAMS)]
    assert [r[2] for r in resumed] == ["bytes=%d-" % kept], resumed
    cached = host.home / ".mxlab" / "models" / MODEL / PARAMS
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == \
        hashlib.sha256((local_zoo / MODEL / PARAMS).read_bytes()).hexdigest()
