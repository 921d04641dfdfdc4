"""The warm agent (`agent serve`) and `agent classify --warm`, as real processes over a real unix socket."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

from agent import warm_client
from tests.checkpoints import WarmAgent, classify_warm, json_lines, run_agent, warm_event
from tests.paths import REPO


@pytest.fixture
def serve(tmp_path, tiny_zoo):
    started = []

    def start(*extra, cwd=REPO):
        folder = tmp_path / ("serve%d" % len(started))
        folder.mkdir()
        agent = WarmAgent(folder, tiny_zoo, tmp_path / "cache", *extra, cwd=cwd)
        started.append(agent)
        return agent
    yield start
    for agent in started:
        agent.stop()


def events(result):
    return [e for e in map(json.loads, result.stderr.splitlines())]


def last_word(agent):
    """Why the warm agent says it stopped."""
    return [e for e in agent.events() if e["event"] == "warm"][-1]["reason"]


def without_ms(records):
    return [dict((k, v) for k, v in r.items() if k != "ms") for r in records]


def test_a_warm_run_gives_what_a_fresh_run_gives(serve, tiny_zoo, tmp_path, colour_photos):
    agent = serve("--preload", "tiny-softmax").wait_listening()
    fresh = run_agent("classify", "--zoo", tiny_zoo, "--cache", tmp_path / "cache", "--model", "tiny-softmax",
                      str(colour_photos))
    warm = classify_warm(tiny_zoo, tmp_path, agent.socket, "--model", "tiny-softmax", str(colour_photos))
    assert warm.returncode == 0, warm.stderr
    assert warm_event(warm)["used"] is True
    assert "pid %d" % agent.process.pid in warm_event(warm)["reason"]
    assert without_ms(json_lines(warm.stdout)) == without_ms(json_lines(fresh.stdout))
    assert [r["top"][0]["label"] for r in json_lines(warm.stdout)] == ["blue", "green", "red"]
    kinds = [e["event"] for e in events(warm)]
    assert kinds[:3] == ["start", "warm", "classify"] and kinds[-1] == "done"
    assert "timing" in kinds and kinds.count("image") == 3
    assert events(warm)[-1] == {"event": "done", "results": 3, "errors": 0, "exit": 0}
    # --out from another folder: the server writes it where the client meant, and it is still alive.
    out = tmp_path / "r.jsonl"
    result = subprocess.run([sys.executable, "-m", "agent", "classify", "--warm", "--warm-socket", agent.socket,
                             "--zoo", tiny_zoo, "--cache", str(tmp_path / "cache"), "--model", "tiny-softmax",
                             "--out", "r.jsonl", "photos/red.png"], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "warm: warm agent pid" in result.stderr  # the text form of the event
    assert [r["image"] for r in json_lines(out.read_text())] == ["photos/red.png"]
    assert agent.process.poll() is None


def test_the_socket_is_the_users_alone(serve, tmp_path):
    agent = serve().wait_listening()
    assert stat.S_IMODE(os.stat(agent.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(agent.socket)).st_mode) == 0o700
    # As another user (the system Python: this checkout may sit in a folder only root enters): refused.
    if os.getuid() == 0 and shutil.which("setpriv") and os.path.exists("/usr/bin/python3"):
        probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                                "import socket; s = socket.socket(socket.AF_UNIX); s.connect(%r)" % agent.socket],
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "PermissionError" in probe.stderr


def test_no_warm_agent_means_a_fresh_run_that_says_why(tiny_zoo, tmp_path, colour_photos):
    socket = str(tmp_path / "nobody" / "agent.sock")
    result = classify_warm(tiny_zoo, tmp_path, socket, "--model", "tiny-softmax", str(colour_photos / "red.png"))
    assert result.returncode == 0, result.stderr
    warm = warm_event(result)
    assert warm["used"] is False and "no warm agent" in warm["reason"] and socket in warm["reason"]
    assert json_lines(result.stdout)[0]["top"][0]["label"] == "red"


def test_a_socket_left_by_a_dead_agent_means_a_fresh_run(serve, tiny_zoo, tmp_path, colour_photos):
    agent = serve().wait_listening()
    os.kill(agent.process.pid, signal.SIGKILL)  # as when the instance stops: no clean-up
    agent.wait_exit()
    assert os.path.exists(agent.socket)
    result = classify_warm(tiny_zoo, tmp_path, agent.socket, "--model", "tiny-softmax", str(colour_photos / "red.png"))
    assert result.returncode == 0, result.stderr
    assert warm_event(result)["used"] is False and "not running" in warm_event(result)["reason"]


def test_other_agent_code_finds_it_stale_and_it_exits(serve, tiny_zoo, tmp_path, colour_photos):
    agent = serve("--preload", "tiny-softmax").wait_listening()
    changed = tmp_path / "changed"
    shutil.copytree(os.path.join(REPO, "agent"), str(changed / "agent"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(str(changed / "agent" / "errors.py"), "a") as handle:
        handle.write("\n# a newer agent\n")
    result = subprocess.run([sys.executable, "-m", "agent", "classify", "--events", "--warm", "--warm-socket",
                             agent.socket, "--zoo", tiny_zoo, "--cache", str(tmp_path / "cache"), "--model",
                             "tiny-softmax", str(colour_photos / "red.png")], cwd=str(changed), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    warm = warm_event(result)
    assert warm["used"] is False and "fingerprint" in warm["reason"]
    assert json_lines(result.stdout)[0]["top"][0]["label"] == "red"  # classified fresh
    assert agent.wait_exit() == 0
    assert not os.path.exists(agent.socket)
    assert "stale" in last_word(agent)


def test_status_stop_and_idle(serve, tmp_path):
    agent = serve("--preload", "tiny-softmax").wait_listening()
    status = run_agent("serve", "--status", "--socket", agent.socket)
    assert status.returncode == 0, status.stderr
    facts = json.loads(status.stdout)
    assert facts["pid"] == agent.process.pid and facts["models"] == ["tiny-softmax"]
    assert facts["fingerprint"] == warm_client.agent_fingerprint()
    stopped = run_agent("serve", "--stop", "--socket", agent.socket)
    assert stopped.returncode == 0, stopped.stderr
    assert agent.wait_exit() == 0 and not os.path.exists(agent.socket)
    assert run_agent("serve", "--status", "--socket", agent.socket).returncode == 1
    idle = serve("--idle-timeout", "0.5").wait_listening()
    assert idle.wait_exit(timeout=60) == 0  # nobody asked: it left by itself
    assert "idle" in last_word(idle) and not os.path.exists(idle.socket)
    assert agent.events()[-1] == {"event": "done", "results": 0, "errors": 0, "exit": 0}


def test_a_second_serve_replaces_the_first(serve, tmp_path):
    first = serve().wait_listening()
    # Started on the same socket (as a second `mxlab prepare` does): the running one is asked to stop.
    second = subprocess.Popen([sys.executable, "-m", "agent", "serve", "--socket", first.socket], cwd=REPO,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert first.wait_exit() == 0
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            answer = warm_client.ask(first.socket, {"status": True})
            if answer and answer["status"]["pid"] == second.pid:
                break
            time.sleep(0.1)
        assert answer and answer["status"]["pid"] == second.pid
    finally:
        second.terminate()
        second.wait(30)


def test_inputs_after_a_double_dash_reach_the_warm_agent_whatever_their_names(serve, tiny_zoo, tmp_path, colour_photos):
    agent = serve("--preload", "tiny-softmax").wait_listening()
    odd = colour_photos / "--warm"
    (colour_photos / "red.png").rename(odd)
    result = subprocess.run([sys.executable, "-m", "agent", "classify", "--events", "--warm", "--warm-socket",
                             agent.socket, "--zoo", tiny_zoo, "--cache", str(tmp_path / "cache"), "--model",
                             "tiny-softmax", "--", "--warm"], cwd=str(colour_photos), capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert result.returncode == 0, result.stderr
    assert warm_event(result)["used"] is True
    (record,) = json_lines(result.stdout)
    assert record["image"] == "--warm" and record["top"][0]["label"] == "red"
