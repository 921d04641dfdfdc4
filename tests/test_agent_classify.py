"""`python -m agent classify` as a real process on tiny real checkpoints: records, exit codes, --out."""
import json
import os

import cv2
import pytest

from agent.results import ResultWriter, error_record
from tests.checkpoints import BLUE, GREEN, RED, json_lines, run_agent, run_classify, textured
from tests.checkpoints import png_claiming

@pytest.fixture
def images(tmp_path):
    """Good and bad inputs on disk: name -> path (str)."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = {}

    def put(name, data):
        paths[name] = str(folder / name)
        with open(paths[name], "wb") as handle:
            handle.write(data)

    put("red.png", cv2.imencode(".png", textured(RED, 1))[1].tobytes())
    put("green.jpg", cv2.imencode(".jpg", textured(GREEN, 2))[1].tobytes())
    put("blue.bmp", cv2.imencode(".bmp", textured(BLUE, 3))[1].tobytes())
    jpeg = cv2.imencode(".jpg", textured(RED, 4, 300, 400))[1].tobytes()
    put("truncated.jpg", jpeg[: len(jpeg) // 2])
    put("empty.png", b"")
    put("text.jpg", b"this is a text file, not a JPEG\n")
    put("huge.png", png_claiming(30000, 30000))
    return paths


def by_image(records):
    return {record["image"]: record for record in records}


def test_every_bad_input_gets_its_own_error_and_the_rest_are_classified(
        images, tiny_zoo, serve_zoo, closed_port, tmp_path):
    server = serve_zoo(os.path.dirname(images["red.png"]))  # also serve the photos over HTTP
    good_url = server.url + "green.jpg"
    missing_url = server.url + "missing.jpg"
    refused_url = "http://127.0.0.1:{}/red.png".format(closed_port)
    missing_path = str(tmp_path / "no-such.jpg")
    inputs = [images[name] for name in ("red.png", "truncated.jpg", "empty.png", "green.jpg", "text.jpg",
                                        "huge.png", "blue.bmp")] + [missing_path, good_url, missing_url, refused_url]
    result = run_classify(tiny_zoo, tmp_path / "cache", "--model", "tiny-prob", "--retries", "1",
                          "--timeout", "5", "--batch-size", "3", *inputs)
    assert result.returncode == 3, result.stderr
    records = json_lines(result.stdout)  # stdout holds JSON lines only
    assert [record["image"] for record in records] == inputs  # one record each, in input order
    found = by_image(records)
    assert found[images["red.png"]]["top"][0]["label"] == "red"
    assert found[images["green.jpg"]]["top"][0]["label"] == "green"
    assert found[images["blue.bmp"]]["top"][0]["label"] == "blue"
    assert found[good_url]["top"][0]["label"] == "green"
    expected_errors = {
        images["truncated.jpg"]: "truncated JPEG",
        images["empty.png"]: "empty file",
        images["text.jpg"]: "cannot decode image",
        images["huge.png"]: "30000x30000",
        missing_path: "no such file",
        missing_url: "HTTP 404",
        refused_url: "cannot connect",
    }
    for image, words in expected_errors.items():
        assert "top" not in found[image]
        assert words in found[image]["error"], found[image]
        assert found[image]["model"] == "tiny-prob"
    assert "7 of 11 results are errors" in result.stderr


def test_all_good_exits_zero_and_prob_label_model_needs_no_json_edit(images, tiny_zoo, tmp_path):
    cache = tmp_path / "cache"
    result = run_classify(tiny_zoo, cache, "--model", "tiny-prob", images["red.png"], images["blue.bmp"])
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["top"][0]["label"] for r in records] == ["red", "blue"]
    top = records[0]["top"]
    assert len(top) == 3  # fewer classes than the default top-k of 5
    assert [t["prob"] for t in top] == sorted((t["prob"] for t in top), reverse=True)
    assert top[0] == {"index": 0, "synset": "n00000001", "label": "red", "prob": top[0]["prob"]}
    assert 0.5 < top[0]["prob"] <= 1.0 and abs(sum(t["prob"] for t in top) - 1.0) < 1e-4
    assert records[0]["ms"] >= 0
    # The cached symbol still carries its prob_label variable: nothing was edited.
    symbol = json.load(open(os.path.join(str(cache), "tiny-prob", "tiny-prob-symbol.json")))
    assert "prob_label" in [node["name"] for node in symbol["nodes"]]


def test_batches_with_partial_last_batch_and_several_models(tiny_zoo, tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir()
    colours = [RED, GREEN, BLUE, BLUE, RED]
    names = ["a.png", "b.png", "c.jpg", "d.png", "e.png"]
    for name, rgb, seed in zip(names, colours, range(5)):
        cv2.imwrite(str(folder / name), textured(rgb, seed))
    (folder / "notes.txt").write_text("not an image, skipped by extension")
    result = run_classify(tiny_zoo, tmp_path / "cache", "--model", "tiny-softmax,tiny-logits,tiny-softmaxop",
                          "--batch-size", "2", "--top-k", "1", str(folder))
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert len(records) == 15
    expected = {str(folder / name): label for name, label in
                zip(names, ["red", "green", "blue", "blue", "red"])}
    for model in ("tiny-softmax", "tiny-logits", "tiny-softmaxop"):
        mine = [r for r in records if r["model"] == model]
        assert [r["image"] for r in mine] == sorted(expected)  # directory order: sorted
        assert {r["image"]: r["top"][0]["label"] for r in mine} == expected
        assert all(len(r["top"]) == 1 for r in mine)


def test_empty_directory_is_an_input_error(tiny_zoo, tmp_path, images):
    (tmp_path / "empty-dir").mkdir()
    result = run_classify(tiny_zoo, tmp_path / "cache", "--model", "tiny-prob",
                          str(tmp_path / "empty-dir"), images["red.png"])
    assert result.returncode == 3
    first, second = json_lines(result.stdout)
    assert "no image files" in first["error"] and second["top"][0]["label"] == "red"


@pytest.mark.parametrize("args, words", [
    (["--model", "tiny-prob", "--top-k", "0"], "--top-k"),
    (["--model", "tiny-prob", "--batch-size", "many"], "--batch-size"),
    (["--model", "tiny-prob"], "INPUT"),
    (["--model", "no-such-model"], "known models"),
])
def test_usage_errors_exit_two(tiny_zoo, tmp_path, images, args, words):
    extra = [images["red.png"]] if args[-1] == "no-such-model" else []
    result = run_classify(tiny_zoo, tmp_path / "cache", *(args + extra))
    assert result.returncode == 2
    assert words in result.stderr
    assert result.stdout == ""


def test_no_command_is_usage_error():
    result = run_agent()
    assert result.returncode == 2 and "command" in result.stderr


def test_model_that_cannot_be_fetched_is_fatal_and_out_is_still_written(
        tiny_zoo, tmp_path, images, serve_zoo):
    os.remove(os.path.join(tiny_zoo, "tiny", "tiny-prob-0000.params"))
    server = serve_zoo(tiny_zoo)
    out = tmp_path / "results" / "out.jsonl"
    out.parent.mkdir()
    result = run_classify(server.url, tmp_path / "cache", "--model", "tiny-prob", "--out", out, images["red.png"])
    assert result.returncode == 1
    assert "tiny-prob-0000.params" in result.stderr and "HTTP 404" in result.stderr
    assert out.read_text() == ""
    assert os.listdir(str(out.parent)) == ["out.jsonl"]  # no temp file left behind


def test_out_file_is_written_atomically_and_stdout_stays_empty(tiny_zoo, tmp_path, images):
    out = tmp_path / "results" / "out.jsonl"
    out.parent.mkdir()
    out.write_text("old content\n")
    result = run_classify(tiny_zoo, tmp_path / "cache", "--model", "tiny-prob", "--out", out,
                          images["red.png"], images["text.jpg"])
    assert result.returncode == 3
    assert result.stdout == ""
    records = json_lines(out.read_text())
    assert records[0]["top"][0]["label"] == "red" and "error" in records[1]
    assert os.listdir(str(out.parent)) == ["out.jsonl"]


def test_out_in_missing_folder_is_usage_error(tiny_zoo, tmp_path, images):
    result = run_classify(tiny_zoo, tmp_path / "cache", "--model", "tiny-prob", "--out",
                          tmp_path / "nowhere" / "out.jsonl", images["red.png"])
    assert result.returncode == 2 and "nowhere" in result.stderr


def test_result_writer_keeps_finished_records_when_the_run_dies(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with ResultWriter(str(out)) as writer:
            writer.write(error_record("a.jpg", "m", "first"))
            writer.write(error_record("b.jpg", "m", "second"))
            assert not out.exists()  # nothing at the final name until the end
            raise RuntimeError("fatal in the middle of a run")
    assert [r["error"] for r in json_lines(out.read_text())] == ["first", "second"]
    assert os.listdir(str(tmp_path)) == ["out.jsonl"]


def test_terminated_run_keeps_finished_results_in_out(tiny_zoo, tmp_path, images, serve_zoo):
    import signal
    import subprocess
    import sys
    import time
    from tests.paths import REPO
    server = serve_zoo(os.path.dirname(images["red.png"]))
    server.add_fault("/green.jpg", "stall", 1, 60)  # the second input hangs until we stop the run
    out = tmp_path / "results" / "out.jsonl"
    out.parent.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "classify", "--zoo", tiny_zoo, "--cache", str(tmp_path / "cache"),
         "--model", "tiny-prob", "--batch-size", "1", "--timeout", "120", "--out", str(out),
         images["red.png"], server.url + "green.jpg"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # wait (bounded) until the first result is in the temporary file
            temps = [p for p in out.parent.iterdir() if p.name.startswith(".out.jsonl.")]
            if temps and temps[0].read_text().count("\n") >= 1:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("no first result appeared")
        assert not out.exists()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    [record] = json_lines(out.read_text())
    assert record["image"] == images["red.png"] and record["top"][0]["label"] == "red"
    assert os.listdir(str(out.parent)) == ["out.jsonl"]


def test_a_short_batch_gives_the_probabilities_of_a_full_one(tiny_zoo, tmp_path):
    """A batch with fewer inputs than --batch-size runs on a reshaped executor (same weights), not padded."""
    folder = tmp_path / "four"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / ("%d.png" % i)), textured(GREEN, 7))
    full = run_classify(tiny_zoo, tmp_path / "cache", "--model", "tiny-softmax", "--batch-size", "4", str(folder))
    short = run_classify(tiny_zoo, tmp_path / "cache", "--model", "tiny-softmax", "--batch-size", "4",
                         str(folder / "0.png"))
    assert full.returncode == 0 and short.returncode == 0, full.stderr + short.stderr
    (alone,) = json_lines(short.stdout)
    in_full = json_lines(full.stdout)[0]
    assert alone["image"] == in_full["image"]
    assert alone["top"] == in_full["top"]
