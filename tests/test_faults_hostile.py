"""Fault: hostile inputs on the surfaces a user or a stray program reaches: the warm agent's socket, `mxlab
report` over results with hostile names and labels, `mxlab handout` into awkward folders, and an
`--input-list` with 100 000 lines. Real processes, real sockets, a real browser-free HTML parse.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from agent import warm_client
from tests.checkpoints import json_lines
from tests.test_agent_warm import WarmAgent, classify, photos, warm_event  # noqa: F401 (photos: a fixture)

pytestmark = [pytest.mark.fault]


def exchange(path, data, timeout=30):
    """Send raw bytes on a new connection to the warm agent; its first answer (or None when it closed)."""
    sock = warm_client.connect(path, timeout)
    try:
        sender = threading.Thread(target=_send_ignoring_a_close, args=(sock, data), daemon=True)
        sender.start()
        for message in warm_client.messages(sock):
            return message
        return None
    except (ConnectionResetError, BrokenPipeError):
        return None
    finally:
        sock.close()


def _send_ignoring_a_close(sock, data):
    try:
        sock.sendall(data)
    except OSError:  # the server closed after it had read enough to refuse
        pass


@pytest.fixture
def open_folder():
    """A folder other users may traverse (0711), for a socket they can be let at."""
    folder = Path(tempfile.mkdtemp(prefix="mxlab-hostile-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(str(folder), ignore_errors=True)


def test_the_warm_agent_survives_hostile_clients(tiny_zoo, tmp_path, photos, open_folder):
    agent = WarmAgent(open_folder, tiny_zoo, tmp_path / "cache")
    try:
        agent.wait_listening()
        path = agent.socket
        # A client that connects and sends nothing, for the whole test: nobody waits for it.
        silent = warm_client.connect(path, 10)
        try:
            status = warm_client.ask(path, {"status": True})
            assert status and status["status"]["pid"] == agent.process.pid
            assert "not a JSON request" in exchange(path, b"this is not JSON\n")["declined"]
            assert "not a JSON request" in exchange(path, b"\xff\xfe\n")["declined"]
            assert "not a JSON object" in exchange(path, b"[1, 2]\n")["declined"]
            assert "malformed" in exchange(path, b"{}\n")["declined"]
            assert "malformed" in exchange(path, json.dumps({"argv": [1], "cwd": 5}).encode() + b"\n")["declined"]
            # 100 MB without a newline: refused once it passes the limit, not read to the end.
            answer = exchange(path, b"x" * (100 * 1024 * 1024))
            assert answer is None or "longer than" in answer["declined"], answer
            # Another user: the folder keeps them out; and were it open, the peer's uid does.
            if os.getuid() == 0 and shutil.which("setpriv"):
                probe = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                         "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(%r)\ntry:\n"
                         "    s.sendall(b'{\"status\": true}\\n'); print(repr(s.recv(100)))\n"
                         "except OSError as e:\n    print('closed', e)" % path]
                shut = subprocess.run(probe, capture_output=True, text=True, timeout=60)
                assert shut.returncode != 0 and "PermissionError" in shut.stderr, shut.stderr
                os.chmod(os.path.dirname(path), 0o711)
                os.chmod(path, 0o666)
                try:
                    let_in = subprocess.run(probe, capture_output=True, text=True, timeout=60)
                finally:
                    os.chmod(path, 0o600)
                    os.chmod(os.path.dirname(path), 0o700)
                said = let_in.stdout.strip()
                assert let_in.returncode == 0 and (said == "b''" or said.startswith("closed")), said + let_in.stderr
            # Through it all the same warm agent runs, and runs work in it.
            assert agent.process.poll() is None, agent.log.read_text()
            result = classify(tiny_zoo, tmp_path, path, "--model", "tiny-softmax", str(photos))
            assert result.returncode == 0, result.stderr
            assert warm_event(result)["used"] is True, warm_event(result)
            assert [r["top"][0]["label"] for r in json_lines(result.stdout)] == ["green", "red"]
        finally:
            silent.close()
    finally:
        agent.stop()
