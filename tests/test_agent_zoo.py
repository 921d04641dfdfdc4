"""Fetching models into the cache from a real HTTP zoo on 127.0.0.1 (and from folders)."""
import hashlib
import json
import os

from tests.checkpoints import run_agent, json_lines

PARAMS = "/tiny/tiny-prob-0000.params"
SYMBOL = "/tiny/tiny-prob-symbol.json"


def cache_files(cache):
    """Every file under the cache except the lock files, the kept zoo catalogue and the sha256 each file had
    when it was verified (CACHE/MODEL/.FILE.sha256)."""
    found = set()
    for folder, _, names in os.walk(str(cache)):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), str(cache))
            if name != ".lock" and not rel.startswith(".zoos") and not (name.startswith(".")
                                                                          and name.endswith(".sha256")):
                found.add(rel)
    return found


def fetch(server, cache, *extra, model="tiny-prob"):
    return run_agent("fetch", model, "--zoo", server.url, "--cache", cache, *extra)


def test_fetch_fills_cache_and_second_fetch_moves_no_bytes(tiny_zoo, serve_zoo, tmp_path):
    server = serve_zoo(tiny_zoo)
    cache = tmp_path / "cache"
    first = fetch(server, cache)
    assert first.returncode == 0, first.stderr
    [line] = json_lines(first.stdout)
    assert line["model"] == "tiny-prob"
    sources = {"symbol": "tiny/tiny-prob-symbol.json", "params": "tiny/tiny-prob-0000.params",
               "synset": "synset.txt"}
    for kind, rel in sources.items():
        with open(line["files"][kind], "rb") as got, open(os.path.join(tiny_zoo, rel), "rb") as want:
            assert got.read() == want.read()
    assert cache_files(cache) == {"tiny-prob/tiny-prob-symbol.json", "tiny-prob/tiny-prob-0000.params",
                                  "tiny-prob/synset.txt"}
    assert server.bytes_by_path[PARAMS] == os.path.getsize(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"))

    server.reset_counters()
    second = fetch(server, cache)
    assert second.returncode == 0, second.stderr
    assert server.bytes_sent == 0
    # The only request is the conditional one for the zoo catalogue, answered 304.
    assert [(path, status) for _, path, _, status in server.requests] == [("/catalogue.json", 304)]


def test_checksum_mismatch_names_file_and_both_hashes_and_leaves_cache_unchanged(tiny_zoo, serve_zoo, tmp_path):
    params = os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params")
    pinned = json.load(open(os.path.join(tiny_zoo, "catalogue.json")))["models"]["tiny-prob"]["sha256"]["params"]
    with open(params, "ab") as handle:
        handle.write(b"\0" * 16)  # the zoo now serves other bytes than the pin
    actual = hashlib.sha256(open(params, "rb").read()).hexdigest()
    server = serve_zoo(tiny_zoo)
    cache = tmp_path / "cache"
    result = fetch(server, cache)
    assert result.returncode == 1
    assert "tiny-prob-0000.params" in result.stderr
    assert pinned in result.stderr and actual in result.stderr
    assert result.stdout == ""
    assert "tiny-prob/tiny-prob-0000.params" not in cache_files(cache)
    assert not any(name.endswith(".params") for name in cache_files(cache))


def test_truncated_body_never_enters_cache(tiny_zoo, serve_zoo, tmp_path):
    server = serve_zoo(tiny_zoo)
    server.add_fault(PARAMS, "truncate", 10, 100)
    server.add_fault(PARAMS, "no_range", 10)  # no resume either: every attempt is cut short
    cache = tmp_path / "cache"
    result = fetch(server, cache, "--retries", "2")
    assert result.returncode == 1
    assert "truncated" in result.stderr and "tiny-prob-0000.params" in result.stderr
    assert "tiny-prob/tiny-prob-0000.params" not in cache_files(cache)
    statuses = [status for _, path, _, status in server.requests if path == PARAMS]
    assert len(statuses) == 3  # first attempt + 2 retries


def test_server_error_then_success_is_retried(tiny_zoo, serve_zoo, tmp_path):
    server = serve_zoo(tiny_zoo)
    server.add_fault(PARAMS, "status", 2, 500)
    cache = tmp_path / "cache"
    result = fetch(server, cache, "--retries", "3")
    assert result.returncode == 0, result.stderr
    assert [status for _, path, _, status in server.requests if path == PARAMS] == [500, 500, 200]
    assert "HTTP 500" in result.stderr
    assert "tiny-prob/tiny-prob-0000.params" in cache_files(cache)


def test_not_found_is_not_retried_and_is_fatal(tiny_zoo, serve_zoo, tmp_path):
    os.remove(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"))
    server = serve_zoo(tiny_zoo)
    result = fetch(server, tmp_path / "cache", "--retries", "3")
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and "tiny-prob-0000.params" in result.stderr
    assert [status for _, path, _, status in server.requests if path == PARAMS] == [404]


def test_stall_past_timeout_is_retried_then_gives_clear_error(tiny_zoo, serve_zoo, tmp_path):
    server = serve_zoo(tiny_zoo)
    server.add_fault(PARAMS, "stall", 2, 3.0)
    cache = tmp_path / "cache"
    result = fetch(server, cache, "--timeout", "0.5", "--retries", "1")
    assert result.returncode == 1
    assert "timed out" in result.stderr
    assert "cannot fetch {}tiny/tiny-prob-0000.params".format(server.url) in result.stderr
    assert "after 2 attempts" in result.stderr
    assert "tiny-prob/tiny-prob-0000.params" not in cache_files(cache)


def test_stall_once_then_success(tiny_zoo, serve_zoo, tmp_path):
    server = serve_zoo(tiny_zoo)
    server.add_fault(PARAMS, "stall", 1, 3.0)
    result = fetch(server, tmp_path / "cache", "--timeout", "0.5", "--retries", "2")
    assert result.returncode == 0, result.stderr
    assert "timed out" in result.stderr


def test_truncated_transfer_is_resumed_with_range(tiny_zoo, serve_zoo, tmp_path):
    server = serve_zoo(tiny_zoo)
    size = os.path.getsize(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"))
    keep = size // 3
    server.add_fault(PARAMS, "truncate", 1, keep)
    cache = tmp_path / "cache"
    result = fetch(server, cache, "--retries", "2")
    assert result.returncode == 0, result.stderr
    params_requests = [(rng, status) for _, path, rng, status in server.requests if path == PARAMS]
    assert params_requests == [(None, 200), ("bytes={}-".format(keep), 206)]
    assert server.bytes_by_path[PARAMS] == size  # nothing sent twice
    with open(os.path.join(str(cache), "tiny-prob", "tiny-prob-0000.params"), "rb") as got:
        assert got.read() == open(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"), "rb").read()


def test_partial_file_is_resumed_by_a_later_run_and_full_download_when_server_ignores_range(
        tiny_zoo, serve_zoo, tmp_path):
    server = serve_zoo(tiny_zoo)
    size = os.path.getsize(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"))
    server.add_fault(PARAMS, "truncate", 1, 200)
    cache = tmp_path / "cache"
    failed = fetch(server, cache, "--retries", "0")
    assert failed.returncode == 1 and "truncated" in failed.stderr
    assert "tiny-prob/tiny-prob-0000.params" not in cache_files(cache)

    server.reset_counters()
    server.add_fault(PARAMS, "no_range", 1)  # the server answers 200: start over, not append
    result = fetch(server, cache)
    assert result.returncode == 0, result.stderr
    assert [(rng, status) for _, path, rng, status in server.requests if path == PARAMS] == \
        [("bytes=200-", 200)]
    assert server.bytes_by_path[PARAMS] == size
    with open(os.path.join(str(cache), "tiny-prob", "tiny-prob-0000.params"), "rb") as got:
        assert got.read() == open(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"), "rb").read()


def test_unpinned_corrupt_params_are_refused_by_loading_them(tiny_zoo, serve_zoo, tmp_path):
    catalogue_path = os.path.join(tiny_zoo, "catalogue.json")
    catalogue = json.load(open(catalogue_path))
    catalogue["models"]["tiny-prob"]["sha256"] = {"symbol": None, "params": None, "synset": None}
    json.dump(catalogue, open(catalogue_path, "w"))
    params = os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params")
    data = open(params, "rb").read()
    open(params, "wb").write(data[: len(data) // 2])  # complete HTTP body, broken file
    server = serve_zoo(tiny_zoo)
    cache = tmp_path / "cache"
    result = fetch(server, cache)
    assert result.returncode == 1
    assert "tiny-prob-0000.params" in result.stderr and "not a usable params file" in result.stderr
    assert "tiny-prob/tiny-prob-0000.params" not in cache_files(cache)


def test_directory_and_file_url_zoos(tiny_zoo, tmp_path):
    for zoo in (tiny_zoo, "file://" + tiny_zoo):
        cache = tmp_path / ("cache-" + str(len(zoo)))
        result = run_agent("fetch", "tiny-softmax", "--zoo", zoo, "--cache", cache)
        assert result.returncode == 0, result.stderr
        assert "tiny-softmax/tiny-softmax-0000.params" in cache_files(cache)


def test_zoo_from_environment_variable(tiny_zoo, tmp_path):
    result = run_agent("fetch", "tiny-logits", "--cache", tmp_path / "cache", env={"MXLAB_ZOO": tiny_zoo})
    assert result.returncode == 0, result.stderr
    assert "tiny-logits/tiny-logits-0000.params" in cache_files(tmp_path / "cache")


def test_unknown_model_is_usage_error_listing_known_models(tiny_zoo, tmp_path):
    result = run_agent("fetch", "resnet-9000", "--zoo", tiny_zoo, "--cache", tmp_path / "cache")
    assert result.returncode == 2
    assert "resnet-9000" in result.stderr
    for known in ("resnet-50", "vgg16", "tiny-prob"):
        assert known in result.stderr
    assert not os.path.exists(str(tmp_path / "cache" / "resnet-9000"))


def test_local_zoo_only_model_needs_a_zoo(tmp_path):
    result = run_agent("fetch", "efficientnet-lite0", "--cache", tmp_path / "cache")
    assert result.returncode == 2
    assert "local zoo" in result.stderr and "--zoo" in result.stderr


def test_missing_zoo_directory_is_usage_error(tmp_path):
    result = run_agent("fetch", "resnet-50", "--zoo", tmp_path / "nowhere", "--cache", tmp_path / "cache")
    assert result.returncode == 2
    assert "nowhere" in result.stderr


def test_cached_file_not_matching_a_new_pin_is_fetched_again(tiny_zoo, serve_zoo, tmp_path):
    cache = tmp_path / "cache"
    server = serve_zoo(tiny_zoo)
    assert fetch(server, cache).returncode == 0
    cached = os.path.join(str(cache), "tiny-prob", "tiny-prob-0000.params")
    with open(cached, "ab") as handle:
        handle.write(b"tampered")
    server.reset_counters()
    result = fetch(server, cache)
    assert result.returncode == 0, result.stderr
    assert "is corrupted or changed since it was verified" in result.stderr and "not the pinned sha256" in result.stderr
    assert server.bytes_by_path[PARAMS] == os.path.getsize(cached)
    assert open(cached, "rb").read() == open(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"), "rb").read()


def test_zoo_server_runs_as_a_module_for_the_demo(tiny_zoo, tmp_path):
    import subprocess
    import sys
    from tests.paths import REPO
    server = subprocess.Popen([sys.executable, "-m", "mxlab.offline.zoo_server", tiny_zoo, "--port", "0"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("serving "), line
        url = line.split(" at ")[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        result = run_agent("fetch", "tiny-softmax", "--zoo", url, "--cache", tmp_path / "cache")
        assert result.returncode == 0, result.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_partial_file_longer_than_the_zoo_file_starts_over(tiny_zoo, serve_zoo, tmp_path):
    server = serve_zoo(tiny_zoo)
    cache = tmp_path / "cache"
    model_dir = cache / "tiny-prob"
    model_dir.mkdir(parents=True)
    size = os.path.getsize(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"))
    # A leftover partial download (documented layout: CACHE/MODEL/.FILE.part) from this zoo.
    (model_dir / ".tiny-prob-0000.params.part").write_bytes(b"x" * (size + 10))
    (model_dir / ".tiny-prob-0000.params.part.from").write_text(server.url + "tiny/tiny-prob-0000.params")
    result = fetch(server, cache)
    assert result.returncode == 0, result.stderr
    assert [(rng, status) for _, path, rng, status in server.requests if path == PARAMS] == \
        [("bytes={}-".format(size + 10), 416), (None, 200)]
    assert open(str(model_dir / "tiny-prob-0000.params"), "rb").read() == \
        open(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"), "rb").read()
    assert cache_files(cache) == {"tiny-prob/tiny-prob-symbol.json", "tiny-prob/tiny-prob-0000.params",
                                  "tiny-prob/synset.txt"}
