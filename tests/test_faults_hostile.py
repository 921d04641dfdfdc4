"""Fault: hostile inputs on the surfaces a user or a stray program reaches: the warm agent's socket, `mxlab
report` over results with hostile names and labels, `mxlab handout` into awkward folders, and an
`--input-list` with 100 000 lines. Real processes, real sockets, a real browser-free HTML parse.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from agent import warm_client
from tests.checkpoints import WarmAgent, classify_warm, json_lines, warm_event

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


def test_the_warm_agent_survives_hostile_clients(tiny_zoo, tmp_path, colour_photos, open_folder):
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
            result = classify_warm(tiny_zoo, tmp_path, path, "--model", "tiny-softmax", str(colour_photos))
            assert result.returncode == 0, result.stderr
            assert warm_event(result)["used"] is True, warm_event(result)
            assert [r["top"][0]["label"] for r in json_lines(result.stdout)] == ["blue", "green", "red"]
        finally:
            silent.close()
    finally:
        agent.stop()


# ---- mxlab report over hostile names and labels ------------------------------------------------------------

HOSTILE_NAMES = ['photos/<script>window.__pwned = 1</script>', "photos/\"quoted\" 'single' & <b>bold</b>",
                 "photos/ünïcødé 猫 🐈 \u202eRTL", "photos/<img src=x onerror=\"window.__pwned=2\">"]
HOSTILE_LABELS = ["</script><script>window.__pwned=3</script>", "\"tabby\" & 'cat' <i>", "猫 🐈", "<!--"]


def test_report_over_ten_thousand_hostile_results_is_inert_and_complete(tmp_path, browser_page):
    from tests.run_folders import failed, make_run, ok, open_report

    records = []
    for n in range(10000):
        name = "%s-%05d.jpg" % (HOSTILE_NAMES[n % len(HOSTILE_NAMES)], n)
        if n % 1000 == 999:
            records.append(failed(name, "m", "<b>cannot decode</b> %s" % HOSTILE_LABELS[n % 4]))
        else:
            records.append(ok(name, "m", HOSTILE_LABELS[n % 4], HOSTILE_LABELS[(n + 1) % 4]))
    run_dir = make_run(tmp_path, [("attendee-1", "partial", "<script>host error</script>", records)], models=["m"],
                       cwd=tmp_path)
    out = tmp_path / "hostile report.html"
    proc = subprocess.run([sys.executable, "-m", "mxlab", "report", str(run_dir), "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = out.read_text(encoding="utf-8")
    assert text.count("<script") == 2, "only the page's own data and script elements"
    seen = open_report(browser_page, out, tmp_path / "hostile.png")
    assert browser_page.evaluate("typeof window.__pwned") == "undefined"
    assert seen["hosts"][0]["rows"] == 10000 and seen["hosts"][0]["pages"] == 200
    assert "<script>host error</script>" in seen["hosts"][0]["summary"]  # shown as text
    assert set(HOSTILE_LABELS) <= set(seen["labels"])
    assert len(seen["errors"]) == 10 and all(e.startswith("error: <b>cannot decode</b>") for e in seen["errors"])
    assert len(seen["placeholders"]) == 10000  # no picture here for any of them, each says so


# ---- mxlab handout into awkward folders ---------------------------------------------------------------------

def test_handout_into_a_folder_with_spaces_quotes_and_percent_and_through_a_symlink(sshd_factory, tmp_path):
    from mxlab.workshop import handout
    from tests.fixtures_sshd import attendee_ssh, sheet_for

    host = sshd_factory(conda_envs=())
    awkward = tmp_path / "work shop" / "hand \"out\" it's 100%d $HOME"
    real = tmp_path / "elsewhere"
    real.mkdir()
    linked = tmp_path / "linked handout"
    linked.symlink_to(real, target_is_directory=True)
    for out in (awkward, linked):
        handout.write([sheet_for(host)], "MxnetLab", handout.check_out_dir(out, False))
        folder = out / "attendee-1"
        ssh = attendee_ssh(["-F", "ssh_config", "attendee-1", "echo", "connected"], folder, tmp_path)
        assert ssh.returncode == 0 and "connected" in ssh.stdout, (out, ssh.stderr)
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert (real / "attendee-1" / "attendee-1.pem").is_file(), "written through the link, where it points"

    # A link planted where an attendee's folder goes does not carry the key elsewhere (--force).
    planted = tmp_path / "planted"
    planted.mkdir()
    (awkward / "attendee-1").rename(tmp_path / "old-attendee-1")
    (awkward / "attendee-1").symlink_to(planted, target_is_directory=True)
    handout.write([sheet_for(host)], "MxnetLab", handout.check_out_dir(awkward, True))
    assert list(planted.iterdir()) == [] and not (awkward / "attendee-1").is_symlink()
    assert (awkward / "attendee-1" / "attendee-1.pem").is_file()


# ---- an --input-list of 100 000 lines ------------------------------------------------------------------------

@pytest.mark.slow
def test_an_input_list_of_100000_lines_names_every_missing_entry_and_classifies_each_input_once(
        conda_host, local_zoo, sample_photos, tmp_path):
    from tests.fixtures_sshd import direct_args

    photos = sorted(str(p) for p in sample_photos.glob("*.jpg"))
    lines = []
    for n in range(100000):
        lines.append("" if n % 7 == 0 else "# a comment" if n % 11 == 0 else photos[n % len(photos)])
    lines[500], lines[70000], lines[99999] = "photos/missing one.jpg", "  /nowhere/x.jpg  ", "gone.jpg"
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "mxlab", "run", *map(str, direct_args(conda_host)), "--zoo", str(local_zoo),
            "--model", "efficientnet-lite0", "--shard", "--results", str(tmp_path / "results"),
            "--input-list", str(listing)]
    env = dict(os.environ, MXLAB_HOME=str(tmp_path / "mxlab-home"), COLUMNS="250")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("3 of %d entries do not exist here: line 501: photos/missing one.jpg, line 70001: /nowhere/x.jpg, "
            "line 100000: gone.jpg" % sum(1 for l in lines if l.strip() and not l.startswith("#"))) in \
        " ".join(proc.stderr.split()), proc.stderr
    assert not (tmp_path / "results").exists(), "nothing started"

    lines[500] = lines[70000] = lines[99999] = ""
    listing.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (merged,) = list((tmp_path / "results").rglob("results.jsonl"))
    records = [json.loads(line) for line in merged.read_text().splitlines()]
    assert sorted(r["image"] for r in records) == photos, "each distinct input once"
    assert all(r.get("top") for r in records)
