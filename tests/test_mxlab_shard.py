"""mxlab/runs/shard.py's pure pieces: inputs expanded and listed, chunks planned, handed out and handed back,
records merged in input order, and what a resumed run does. (Sharded runs on real hosts:
tests/test_mxlab_shard_sandbox.py.)"""
import json
import re
import threading

import pytest

from mxlab.runs import shard
from mxlab.errors import UsageError
from mxlab.results.rundir import ResultStore


def rec(image, model="m", **kw):
    r = {"image": image, "model": model, "top": [{"label": "x", "prob": 0.5}]}
    r.update(kw)
    return r


# ---- inputs ----------------------------------------------------------------------------------

def test_expand_inputs_takes_a_folder_as_the_agent_does_and_each_input_once(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("b.jpg", "a.PNG", "notes.txt", ".hidden.jpg"):
        (photos / name).write_bytes(b"x")
    (photos / "sub").mkdir()
    (photos / "sub" / "c.jpg").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    single = str(photos / "b.jpg")
    url = "http://127.0.0.1:1/x.jpg"
    got = shard.expand_inputs([str(photos), url, single, str(empty), url])
    assert got == [str(photos / "a.PNG"), single, url, str(empty)]


def test_input_list_skips_blanks_and_comments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative entries are taken from the current folder, as typed
    (tmp_path / "a.jpg").write_bytes(b"")
    path = tmp_path / "list.txt"
    path.write_text("# photos\na.jpg\n\n  http://127.0.0.1:1/b.jpg  \n")
    assert shard.read_input_list(path) == ["a.jpg", "http://127.0.0.1:1/b.jpg"]


@pytest.mark.parametrize("content", [None, "# nothing\n\n", b"\xff\xfe\x00bad"])
def test_input_list_errors_name_the_file(tmp_path, content):
    path = tmp_path / "list.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as exc:
        shard.read_input_list(path)
    assert "--input-list %s" % path in str(exc.value)


# ---- chunks ----------------------------------------------------------------------------------

def test_first_chunks_are_small_so_every_host_is_measured_early():
    assert shard.first_chunk_size(60, 3) == 5  # 4 a host
    assert shard.first_chunk_size(3, 4) == 1
    assert shard.first_chunk_size(0, 2) == 1
    assert shard.first_chunk_size(100000, 2) == shard.FIRST_CHUNK_MAX


def test_next_chunk_size_unmeasured_is_the_first_size():
    assert shard.next_chunk_size(50, 3, first=5, even=20) == 5
    assert shard.next_chunk_size(3, 3, first=5, even=20) == 3, "never more than is left"


def test_next_chunk_size_is_the_fair_share_when_starts_are_cheap():
    # 0.5 s start, 0.1 s an image: 6 images pay for a start; fair share of 90 over 3 hosts is 30.
    assert shard.next_chunk_size(90, 3, first=5, even=40, start_s=0.5, image_s=0.1) == 30


def test_next_chunk_size_is_not_cut_below_what_a_start_costs_in_images():
    # A 6 s start and 0.05 s an image (the sandbox): a chunk of 9 would spend 6 s to classify 0.45 s worth.
    assert shard.next_chunk_size(27, 3, first=5, even=20, start_s=6.0, image_s=0.05) == 20
    assert shard.next_chunk_size(12, 3, first=5, even=20, start_s=6.0, image_s=0.05) == 12


def test_next_chunk_size_leaves_work_for_every_host_and_caps_a_chunk_at_about_a_minute():
    # A 10 s start, 0.01 s an image (a GPU): one start is worth 1001 images, but 20 hosts share 10,000.
    assert shard.next_chunk_size(9840, 20, first=8, even=500, start_s=10.0, image_s=0.01) == 500
    # A slow host: 0.5 s an image: at most 60 s of images.
    assert shard.next_chunk_size(5000, 2, first=8, even=2500, start_s=10.0, image_s=0.5) == 120
    assert shard.next_chunk_size(10 ** 6, 1, first=8, even=10 ** 6, start_s=1.0, image_s=0.001) == shard.MAX_CHUNK


def test_plan_chunks_covers_every_input_once_in_order():
    chunks = shard.plan_chunks([0, 1, 2, 4, 7, 8, 9], 3)
    assert [c.id for c in chunks] == [1, 2, 3]
    assert [c.indexes for c in chunks] == [[0, 1, 2], [4, 7, 8], [9]]


def test_span_counts_from_one_and_compacts_runs():
    assert shard.span([0, 1, 2, 5, 7, 8]) == "1-3,6,8-9"
    assert shard.span([]) == ""


def test_queue_hands_out_in_order_and_ends_when_nothing_is_out():
    q = shard.ChunkQueue(shard.plan_chunks(list(range(4)), 2))
    a = q.take("h1")
    b = q.take("h2")
    assert (a.id, b.id) == (1, 2)
    q.done(a)
    q.done(b)
    assert q.take("h1") is None


def test_a_chunk_given_back_goes_first_to_another_host_and_the_move_is_named():
    q = shard.ChunkQueue(shard.plan_chunks(list(range(6)), 2))
    first = q.take("h1")
    q.give_back(first, [1], "h1", "instance stopped")  # input 0 finished on h1: only input 1 moves
    again = q.take("h2")
    assert (again.id, again.indexes, again.failed_on) == (1, [1], ["h1"])
    assert q.moves == [{"chunk": 1, "inputs": "2", "from": "h1", "to": "h2", "reason": "instance stopped"}]


def test_a_host_waits_for_chunks_still_out_and_takes_one_that_comes_back():
    """h2 finds the queue empty while h1 holds the last chunk; when h1 fails it, h2 gets it (not None)."""
    q = shard.ChunkQueue(shard.plan_chunks([0, 1], 2))
    held = q.take("h1")
    got = []
    waiter = threading.Thread(target=lambda: got.append(q.take("h2")))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "h2 waits: the chunk h1 holds may come back"
    q.give_back(held, held.indexes, "h1", "connection lost")
    waiter.join(10)
    assert got and got[0].indexes == [0, 1]
    q.done(got[0])
    assert q.take("h2") is None


def test_chunks_are_cut_at_the_size_each_host_asks_for():
    q = shard.ChunkQueue(rest=list(range(10)))
    a, b = q.take("h1", 3), q.take("h2", 5)
    assert (a.id, a.indexes, b.id, b.indexes) == (1, [0, 1, 2], 2, [3, 4, 5, 6, 7])
    assert q.remaining() == 2
    q.give_back(a, [1, 2], "h1", "stopped")
    assert q.remaining() == 4
    again = q.take("h2", 100)
    assert (again.id, again.indexes) == (1, [1, 2]), "a chunk given back goes whole, before new ones are cut"
    assert [(c.id, c.indexes) for c in q.left()] == [(3, [8, 9])]


def test_chunks_left_when_every_host_failed():
    q = shard.ChunkQueue(shard.plan_chunks(list(range(4)), 2))
    c = q.take("h1")
    q.give_back(c, c.indexes, "h1", "boom")
    assert [x.indexes for x in q.left()] == [[0, 1], [2, 3]]
    assert q.moves[0]["to"] is None


def test_a_closed_queue_hands_out_nothing():
    q = shard.ChunkQueue(shard.plan_chunks(list(range(4)), 2))
    q.close()
    assert q.take("h1") is None


# ---- merge and resume ------------------------------------------------------------------------

def test_merge_is_in_input_order_then_model_order_each_once():
    inputs = ["a", "b", "c"]
    host1 = [rec("c", "m2"), rec("c", "m1")]
    host2 = [rec("b", "m1"), rec("a", "m2"), rec("a", "m1"), rec("b", "m2"), rec("a", "m1", ms=9)]
    merged = shard.merge_records(inputs, host1 + host2 + [rec("stray")], ["m1", "m2"])
    assert [(r["image"], r["model"]) for r in merged] == [
        ("a", "m1"), ("a", "m2"), ("b", "m1"), ("b", "m2"), ("c", "m1"), ("c", "m2"), ("stray", "m")]
    assert "ms" not in merged[0], "the first record of a pair wins"


def test_resume_does_inputs_without_a_record_for_every_model():
    inputs = ["a", "b", "c", "d"]
    saved = [rec("a", "m1"), rec("a", "m2"), rec("b", "m1"), {"image": "c", "model": "m1", "error": "bad"},
             {"image": "c", "model": "m2", "error": "bad"}]
    assert shard.todo_indexes(inputs, saved, ["m1", "m2"]) == [1, 3], "an error is a result; b lacks m2"
    assert shard.todo_indexes(inputs, [], ["m1"]) == [0, 1, 2, 3]


def test_load_saved_reads_host_files_not_the_merged_one(tmp_path):
    store = ResultStore(tmp_path, "lab", "run1")
    (store.dir / "attendee-1.jsonl").write_text(json.dumps(rec("a")) + "\n" + '{"image": "cut sh')
    store.save_merged([rec("a"), rec("b")])
    (store.dir / "summary.json").write_text(json.dumps([{"host": "attendee-1", "status": "failed"}]))
    per_host, summary = shard.load_saved(store.dir)
    assert per_host == {"attendee-1": [rec("a")]}
    assert summary == [{"host": "attendee-1", "status": "failed"}]


def test_a_sharded_summary_carries_the_chunks_in_the_host_entries_the_report_reads(tmp_path):
    from mxlab.remote.run import HostResult
    store = ResultStore(tmp_path, "lab", "run1")
    store.save_summary([HostResult(label="attendee-1", address="a", status="ok", records=[rec("a")])],
                       {"attendee-1": {"chunks": [1, 3], "moved_away": []}})
    (entry,) = json.loads((store.dir / "summary.json").read_text())
    assert entry["host"] == "attendee-1" and entry["results"] == 1 and entry["chunks"] == [1, 3]


# ---- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--shard"], "no inputs: give INPUT"),
    (["--shard", "--input-list", "missing.txt"], "--input-list missing.txt: cannot read it"),
    (["--chunk-size", "3", "PHOTO"], "--chunk-size: only with --shard"),
    (["--shard", "--chunk-size", "0", "PHOTO"], "--chunk-size: expected a positive integer"),
])
def test_bad_shard_options_are_usage_errors_naming_the_option(args, says, capsys, tmp_path, monkeypatch):
    from mxlab import cli
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--host", "127.0.0.1:1", "--user", "u", "--identity", str(tmp_path / "key"), "--model",
            "efficientnet-lite0"] + [str(photo) if a == "PHOTO" else a for a in args]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    assert says in capsys.readouterr().err


# ---- one real host (loopback sshd, real MXNet): what every sharded run does ---------------------

def test_sharded_compare_on_a_direct_host_merges_in_input_order_and_resume_has_nothing_left(
        conda_host, mxlab_cli, local_zoo, sample_photos, tmp_path):
    from tests.fixtures_sshd import direct_args
    bad = tmp_path / "not-an-image.jpg"
    bad.write_text("plain text")
    results = tmp_path / "results"
    args = ["compare", *direct_args(conda_host), "--zoo", local_zoo, "--models",
            "efficientnet-lite0,efficientnet-lite1", "--shard", "--chunk-size", "2", "--results", results,
            sample_photos, bad]
    code, out, err = mxlab_cli(*args)
    assert code == 3, out + err  # one input is not an image: its result is the error
    (host_dir,) = results.iterdir()
    (run_dir,) = host_dir.iterdir()
    merged = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    photos = sorted(str(sample_photos / n) for n in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"))
    expected = [(image, model) for image in photos + [str(bad)]
                for model in ("efficientnet-lite0", "efficientnet-lite1")]
    assert [(r["image"], r["model"]) for r in merged] == expected
    assert all("error" in r for r in merged[-2:]) and all("top" in r for r in merged[:-2])
    host_file = [json.loads(line) for line in (run_dir / ("%s.jsonl" % host_dir.name)).read_text().splitlines()]
    assert sorted(map(shard.record_key, host_file)) == sorted(expected)
    plan = json.loads((run_dir / "shard.json").read_text())
    assert [c["inputs"] for c in plan["chunks"]] == ["1-2", "3-4", "5"]
    assert (run_dir / "report.html").is_file()

    code, out, err = mxlab_cli(*args, "--resume", run_dir.name)
    assert code == 3, out + err
    assert "resumed run %s: 5 input(s) already had results; 0 done now" % run_dir.name in err
    assert json.loads((run_dir / "shard.json").read_text())["chunks"] == []
    assert [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()] == merged


def test_ctrl_c_keeps_finished_chunks_and_resume_does_the_rest(conda_host, mxlab_cli, local_zoo, sample_photos,
                                                               tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from mxlab.offline import REPO_ROOT
    from tests.fixtures_sshd import direct_args
    results = tmp_path / "results"
    args = ["run", *direct_args(conda_host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--shard",
            "--chunk-size", "1", "--results", results, sample_photos]
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mxlab"] + [str(a) for a in args], cwd=str(REPO_ROOT),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            files = [p for p in results.glob("*/*/*.jsonl") if p.name != "results.jsonl"]
            if files and files[0].read_text().strip():
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before its first chunk was saved"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    (run_dir,) = results.glob("*/*")
    said = (tmp_path / "err").read_text()
    assert "--resume %s" % run_dir.name in said, said[-2000:]
    code, out, err = mxlab_cli(*(args + ["--resume", run_dir.name]))
    assert code == 0, out + err
    done_before = re.search(r"resumed run \S+: (\d) input\(s\) already had results; (\d) done now", err)
    assert done_before and int(done_before.group(1)) >= 1 and sum(map(int, done_before.groups())) == 4, err
    merged = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["image"] for r in merged] == sorted(str(p) for p in sample_photos.glob("*.jpg"))
