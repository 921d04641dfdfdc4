"""`mxlab demo` end to end, as `./scripts/demo` runs it: the lab stack deployed into the AWS
emulator, an sshd as its instance, the real models from the local zoo over HTTP, real photos.

The demo runs as a child process (the emulator's backends are process-global, and Ctrl-C is
part of what is tested); it reports what it started in a facts file, and every piece of it
must be gone afterwards.
"""
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mxlab.offline import leftovers
from tests.fixtures_sandbox import port_open
from tests.fixtures_zoo import DOMESTIC_CATS, ESPRESSO, SAMPLE_PHOTOS, ZOO_MODELS
from tests.paths import REPO
from tests.run_folders import records

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a whole demo (its own limit: 900 s)


class Demo:
    """`python -m mxlab.offline.demo` as a child; output to files (a full pipe would stall it)."""

    def __init__(self, tmp_path):
        env = dict(os.environ, COLUMNS="200")  # rich tables: whole model names in captured output
        env.pop("MXLAB_HOME", None)
        self.facts_file = tmp_path / "facts.json"
        self.out_file, self.err_file = tmp_path / "demo.out", tmp_path / "demo.err"
        with open(self.out_file, "w") as out, open(self.err_file, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mxlab.offline.demo", "--results", str(tmp_path / "results"),
                 "--facts", str(self.facts_file)], cwd=str(REPO), env=env, stdout=out, stderr=err)

    def facts(self):
        return json.loads(self.facts_file.read_text()) if self.facts_file.exists() else {}

    def err(self):
        return self.err_file.read_text()

    def finish(self, timeout=900):
        """(exit status, stdout, stderr) once it has ended."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("demo did not finish in %d s:\n%s" % (timeout, self.err()[-3000:]))
        return self.proc.returncode, self.out_file.read_text(), self.err()

    def stop(self):
        """Interrupt it if a failed test left it running (it then cleans up itself)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def demo(tmp_path):
    started = []

    def start():
        started.append(Demo(tmp_path))
        return started[-1]

    yield start
    for d in started:
        d.stop()


def assert_all_stopped(facts):
    """No process, port, record or folder the demo started is left (the lab host logs in as this user:
    there is no login user to remove)."""
    pid = facts["sshd_pid"]
    deadline = time.monotonic() + 10
    while Path("/proc/%d" % pid).exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # a zombie until its parent (the demo, now exited) is reaped by init
    assert not Path("/proc/%d" % pid).exists(), "sshd %d still running" % pid
    assert not port_open(facts["sshd_address"], facts["sshd_port"])
    assert not port_open("127.0.0.1", facts["emulator_port"])
    assert not port_open("127.0.0.1", facts["zoo_port"])
    assert facts["lab_user"] == pwd.getpwuid(os.getuid()).pw_name
    owned = [p for p in leftovers.records_dir().glob("*.json")
             if json.loads(p.read_text())["owner"] == facts["demo_pid"]]
    assert owned == [], "the demo forgot its leftover records"
    assert not Path(facts["state_dir"]).exists()
    assert not Path(facts["sshd_dir"]).exists()


def test_demo_classifies_on_the_emulated_lab_and_stops_everything(demo):
    run = demo()
    code, out, err = run.finish()
    assert code == 0, err[-3000:]
    facts = run.facts()

    # `mxlab run` with efficientnet-lite0: real predictions on real photos.
    lite0 = records(facts["run_dir"])
    assert {Path(r["image"]).name for r in lite0} == SAMPLE_PHOTOS
    assert {r["model"] for r in lite0} == {"efficientnet-lite0"}
    by_image = {Path(r["image"]).name: r for r in lite0}
    assert by_image["chelsea.jpg"]["top"][0]["index"] in DOMESTIC_CATS
    assert by_image["coffee.jpg"]["top"][0]["index"] == ESPRESSO
    assert all(len(r["top"]) == 3 for r in lite0)

    # `mxlab compare` across every model the local zoo has, each photo by each model.
    compare = records(facts["compare_dir"])
    assert {(Path(r["image"]).name, r["model"]) for r in compare} == {(p, m) for p in SAMPLE_PHOTOS for m in ZOO_MODELS}
    assert all("error" not in r for r in compare)
    assert "models side by side" in out and all(m in out for m in ZOO_MODELS)
    assert "espresso" in out

    # It says where the JSON lines are and how to do the same on AWS.
    assert str(Path(facts["compare_dir"]) / "attendee-1.jsonl") in out  # outside the repo: absolute
    assert "mxlab up -c ssh_cidr=" in out and "mxlab run " in out

    # mxlab found the conda env the DLAMI-like host has (and, rejecting unknown host keys, could
    # only have connected through the keys it pinned from the emulated console output).
    assert "conda env mxnet_p36" in err
    assert_all_stopped(facts)


def test_ctrl_c_mid_run_stops_everything(demo):
    run = demo()
    deadline = time.monotonic() + 600
    facts = {}
    # Interrupt once the lab instance is up: mid-way through `mxlab run`.
    while "sshd_pid" not in facts:
        assert run.proc.poll() is None, "demo ended before its lab instance was up: %s" % run.err()[-3000:]
        assert time.monotonic() < deadline, "the lab instance never came up"
        time.sleep(0.2)
        facts = run.facts()
    assert port_open(facts["sshd_address"], facts["sshd_port"])
    run.proc.send_signal(signal.SIGINT)
    code, out, err = run.finish(timeout=120)
    assert code == 130, err[-3000:]
    assert "interrupted" in err
    assert_all_stopped(facts)


def processes_mentioning(text):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path("/proc", entry, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append((int(entry), cmdline))
    return found


def test_ctrl_c_during_deploy_stops_the_cdk_cli_too(demo):
    run = demo()
    deadline = time.monotonic() + 300
    facts = {}
    # The login user is known just before `cdk deploy` starts; the CLI runs with --output in the state dir.
    while "lab_user" not in facts or not processes_mentioning(facts["state_dir"] + "/cdk.out"):
        assert run.proc.poll() is None, "demo ended early: %s" % run.err()[-3000:]
        assert time.monotonic() < deadline, "cdk deploy never started"
        time.sleep(0.2)
        facts = run.facts()
    assert "sshd_pid" not in facts
    run.proc.send_signal(signal.SIGINT)
    code, out, err = run.finish(timeout=120)
    assert code == 130, err[-3000:]
    assert processes_mentioning(facts["state_dir"]) == []
    assert not Path(facts["state_dir"]).exists()
    assert not port_open("127.0.0.1", facts["emulator_port"])
    assert not port_open("127.0.0.1", facts["zoo_port"])
