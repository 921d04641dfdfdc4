"""`python -m agent ... --events`: a real agent process through the fault-injecting HTTP zoo writes
nothing on stderr but JSON events (agent.contract), MXNet's own C++ log included."""
import os

from agent import contract
from tests.checkpoints import json_lines, run_agent

PARAMS = "/tiny/tiny-prob-0000.params"
SYMBOL = "/tiny/tiny-prob-symbol.json"


def events_of(stderr):
    events = [contract.parse(line) for line in stderr.splitlines()]
    assert None not in events, stderr  # every stderr line is an event
    return events


def test_classify_events_only_json_fetch_bytes_add_up_and_one_image_event_per_input(
        tiny_zoo, serve_zoo, sample_photos, tmp_path):
    server = serve_zoo(tiny_zoo)
    size = os.path.getsize(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"))
    server.add_fault(PARAMS, "truncate", 1, size // 3)  # cut short once, then resumed with Range
    server.add_fault(SYMBOL, "status", 1, 503)  # a transient error: one retry
    photos = [str(sample_photos / "chelsea.jpg"), str(tmp_path / "missing.jpg"), str(sample_photos / "coffee.jpg")]
    # MXNET_SUBGRAPH_VERBOSE=1: MXNet's C++ code writes a line to fd 2 itself; it must arrive as an event.
    result = run_agent("classify", "--events", "--zoo", server.url, "--cache", tmp_path / "cache",
                       "--model", "tiny-prob", "--retries", "2", *photos, env={"MXNET_SUBGRAPH_VERBOSE": "1"})
    assert result.returncode == 3, result.stderr
    assert len(json_lines(result.stdout)) == 3
    events = events_of(result.stderr)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert events[-1] == {"event": "done", "results": 3, "errors": 1, "exit": 3}
    assert any(e["event"] == "log" and "MKLDNN" in e["message"] for e in events)

    fetched = [e for e in events if e["event"] == "fetch"]
    sizes = {"tiny-prob-symbol.json": os.path.getsize(os.path.join(tiny_zoo, "tiny", "tiny-prob-symbol.json")),
             "tiny-prob-0000.params": size, "synset.txt": os.path.getsize(os.path.join(tiny_zoo, "synset.txt"))}
    for name, file_size in sizes.items():
        mine = [e for e in fetched if e["file"] == name]
        assert mine and all(e["model"] == "tiny-prob" and e["total"] == file_size for e in mine)
        assert mine[-1]["bytes"] == file_size  # the last one: the whole file
        assert all(0 <= e["bytes"] <= file_size for e in mine)
    [resume] = [e for e in events if e["event"] == "resume"]
    assert resume == {"event": "resume", "model": "tiny-prob", "file": "tiny-prob-0000.params", "offset": size // 3}
    retries = [e for e in events if e["event"] == "retry"]
    assert {e["url"] for e in retries} == {server.url + SYMBOL[1:], server.url + PARAMS[1:]}
    assert all(e["attempt"] == 1 and e["of"] == 2 for e in retries)
    assert any("HTTP 503" in e["error"] for e in retries) and any("truncated" in e["error"] for e in retries)
    assert [e["file"] for e in events if e["event"] == "verified"] == list(sizes)

    images = [e for e in events if e["event"] == "image"]
    assert [(e["done"], e["total"], e["input"]) for e in images] == [(i + 1, 3, p) for i, p in enumerate(photos)]


def test_fatal_and_usage_errors_are_events_too(tiny_zoo, tmp_path):
    usage = run_agent("classify", "--events", "--model", "tiny-prob")
    assert usage.returncode == 2
    [error, done] = events_of(usage.stderr)
    assert error["event"] == "error" and "INPUT" in error["message"]
    assert done == {"event": "done", "results": 0, "errors": 0, "exit": 2}

    os.remove(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"))
    fatal = run_agent("fetch", "tiny-prob", "--events", "--zoo", tiny_zoo, "--cache", tmp_path / "cache")
    assert fatal.returncode == 1
    events = events_of(fatal.stderr)
    [error] = [e for e in events if e["event"] == "error"]
    assert "tiny-prob-0000.params not found in zoo" in error["message"]
    assert events[-1]["exit"] == 1


def test_without_events_stderr_is_text_for_a_person(tiny_zoo, sample_photos, tmp_path):
    result = run_agent("classify", "--zoo", tiny_zoo, "--cache", tmp_path / "cache", "--model", "tiny-prob",
                       str(sample_photos / "coffee.jpg"))
    assert result.returncode == 0, result.stderr
    assert "device: cpu(0)" in result.stderr and "classified 1/1 inputs" in result.stderr
    assert "tiny-prob tiny-prob-0000.params:" in result.stderr and "(100%)" in result.stderr
    assert not any(line.startswith("{") for line in result.stderr.splitlines())


def test_a_directory_zoo_reports_its_copies_as_fetch_events_too(tiny_zoo, sample_photos, tmp_path):
    result = run_agent("classify", "--events", "--zoo", tiny_zoo, "--cache", tmp_path / "cache",
                       "--model", "tiny-softmax", str(sample_photos / "rocket.jpg"))
    assert result.returncode == 0, result.stderr
    events = events_of(result.stderr)
    params = os.path.getsize(os.path.join(tiny_zoo, "tiny", "tiny-softmax-0000.params"))
    last = [e for e in events if e["event"] == "fetch" and e["file"] == "tiny-softmax-0000.params"][-1]
    assert last["bytes"] == last["total"] == params
    assert [e["event"] for e in events if e["event"] in ("image", "done")] == ["image", "done"]


def test_terminated_with_events_says_so_and_ends_with_done(tiny_zoo, serve_zoo, sample_photos, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from tests.paths import REPO
    server = serve_zoo(sample_photos)
    server.add_fault("/coffee.jpg", "stall", 1, 60)  # the second input hangs until the run is stopped
    log = tmp_path / "agent.log"
    with open(str(log), "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", "classify", "--events", "--zoo", tiny_zoo, "--cache",
             str(tmp_path / "cache"), "--model", "tiny-prob", "--batch-size", "1", "--timeout", "120",
             str(sample_photos / "chelsea.jpg"), server.url + "coffee.jpg"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            for _ in range(600):  # bounded wait for the first image event
                if '"event": "image"' in log.read_text():
                    break
                assert process.poll() is None, log.read_text()
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    events = events_of(log.read_text())
    assert process.returncode == 128 + signal.SIGTERM
    assert any(e["event"] == "warning" and "terminated by signal 15" in e["message"] for e in events)
    assert events[-1] == {"event": "done", "results": 1, "errors": 0, "exit": 143}
