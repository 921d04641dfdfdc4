"""`mxlab run --all --shard` on the sandbox (real sshds, the emulator, real MXNet): 60 photos over 3 hosts,
each classified once; one host stopped partway (the stop ends everything on it) and its chunks moved to
the others; every host failing names the inputs without results; --resume does only what is missing.

One sandbox for the module (a deploy costs a minute or two here).
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mxlab.offline import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # the first test also waits for the sandbox
MODEL = "efficientnet-lite0"
PHOTOS = 60
SANDBOX_ATTENDEES = 3  # the box fixture (tests/fixtures_sandbox.py)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """60 distinct photo files: the sample photos copied, flipped and rotated."""
    import cv2
    folder = tmp_path_factory.mktemp("photos")
    sources = sorted((REPO_ROOT / "build" / "photos").glob("*.jpg"))
    variants = (lambda im: im, lambda im: cv2.flip(im, 1), lambda im: cv2.flip(im, 0),
                lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE), lambda im: cv2.flip(im, -1))
    n = 0
    while n < PHOTOS:
        src, variant = sources[n % len(sources)], variants[(n // len(sources)) % len(variants)]
        image = variant(cv2.imread(str(src)))
        if n >= len(sources) * len(variants):  # third round: a little smaller, still a different file
            image = cv2.resize(image, None, fx=0.9, fy=0.9)
        assert cv2.imwrite(str(folder / ("photo-%02d.jpg" % n)), image)
        n += 1
    return folder


def instance(box, n):
    return box.outputs()["Attendee%dInstanceId" % n]


def state(box, n):
    (res,) = box.client("ec2").describe_instances(InstanceIds=[instance(box, n)])["Reservations"]
    return res["Instances"][0]["State"]["Name"]


def run_dir_of(results):
    (found,) = [p for p in (Path(results) / "MxnetLab").iterdir() if p.is_dir()]
    return found


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def positions(span):
    """shard.span's text back to input positions: "1-3,6" -> [0, 1, 2, 5]."""
    out = []
    for part in span.split(","):
        first, _, last = part.partition("-")
        out.extend(range(int(first) - 1, int(last or first)))
    return out


def check_each_once(run_dir, photos):
    """results.jsonl: one record per photo, in input order; the host files hold the same, once."""
    merged = read_jsonl(run_dir / "results.jsonl")
    names = [r["image"] for r in merged]
    assert len(merged) == PHOTOS, "%d results" % len(merged)
    assert len(set(names)) == PHOTOS, "each image once"
    assert names == sorted(names), "in input order (the folder's files, sorted)"
    assert all("top" in r and "error" not in r for r in merged), [r for r in merged if "error" in r][:3]
    per_host = {p.stem: read_jsonl(p) for p in run_dir.glob("attendee-*.jsonl")}
    in_files = sorted(r["image"] for recs in per_host.values() for r in recs)
    assert in_files == sorted(names), "the host files together hold each result once"
    assert set(Path(n).name for n in names) == set(p.name for p in photos.iterdir())
    return merged, per_host


def test_sixty_photos_over_three_hosts_each_once_every_host_works(box, photos, tmp_path):
    results = tmp_path / "results"
    run = box.mxlab("run", "--all", "--shard", "--model", MODEL, "--results", results, str(photos), timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    run_dir = run_dir_of(results)
    _, per_host = check_each_once(run_dir, photos)
    assert sorted(per_host) == ["attendee-1", "attendee-2", "attendee-3"]
    summary = {e["host"]: e for e in json.loads((run_dir / "summary.json").read_text())}
    for host, entry in summary.items():
        assert entry["status"] == "ok" and entry["results"] > 0 and entry["chunks"], (host, entry)
        assert entry["moved_away"] == []
    plan = json.loads((run_dir / "shard.json").read_text())
    assert plan["moved"] == [] and plan["without_results"] == []
    assert all(c["host"] for c in plan["chunks"])
    assert (run_dir / "report.html").is_file() and "report.html" in run.stdout


@pytest.mark.aws_behaviour
def test_a_host_stopped_partway_its_chunks_move_and_nothing_is_lost(box, photos, tmp_path):
    """attendee-2 is stopped (as the idle auto-stop or a person would) once it has finished a chunk: the
    stop ends its sshd and agent; its unfinished chunk goes to the others; still 60 results, each once."""
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "mxlab", "run", "--all", "--shard", "--chunk-size", "2", "--model", MODEL,
           "--results", str(results), str(photos)]
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen(cmd, env=box.env(), cwd=str(REPO_ROOT), stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            done = list(results.glob("MxnetLab/*/attendee-2.jsonl"))
            if done and read_jsonl(done[0]):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before attendee-2 finished a chunk"
        box.client("ec2").stop_instances(InstanceIds=[instance(box, 2)])
        assert proc.wait(900) == 0, (tmp_path / "out").read_text()[-3000:] + (tmp_path / "err").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout, stderr = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    run_dir = run_dir_of(results)
    _, per_host = check_each_once(run_dir, photos)
    assert per_host["attendee-2"], "what attendee-2 finished before the stop is kept"
    summary = {e["host"]: e for e in json.loads((run_dir / "summary.json").read_text())}
    assert summary["attendee-2"]["status"] == "failed" and "stopped" in summary["attendee-2"]["error"]
    moved = summary["attendee-2"]["moved_away"]
    assert moved, summary["attendee-2"]
    plan = json.loads((run_dir / "shard.json").read_text())
    assert plan["moved"] == moved
    for move in moved:
        assert move["from"] == "attendee-2" and move["to"] in ("attendee-1", "attendee-3")
        chunk = [c for c in plan["chunks"] if c["id"] == move["chunk"]][0]
        assert chunk["host"] == move["to"] and chunk["failed_on"] == ["attendee-2"]
        assert "chunk %d (inputs %s) moved from attendee-2 to %s" % (move["chunk"], move["inputs"], move["to"]) \
            in stderr
    assert "moved away" in stdout
    box.client("ec2").start_instances(InstanceIds=[instance(box, 2)])


def test_every_host_failing_names_the_inputs_and_resume_does_them(box, photos, tmp_path):
    """attendee-3 stopped and the only host asked for: the run fails naming each input without a result;
    once it is started again, --resume with the same run id does them."""
    ec2 = box.client("ec2")
    ec2.stop_instances(InstanceIds=[instance(box, 3)])
    results = tmp_path / "results"
    few = sorted(photos.iterdir())[:6]
    args = ["run", "--attendee", "3", "--shard", "--model", MODEL, "--results", results, "--timeout", "30"]
    failed = box.mxlab(*(args + few))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "every host failed: 6 of 6 input(s) without results" in failed.stderr
    assert all(str(p) in failed.stderr for p in few)
    run_dir = run_dir_of(results)
    assert json.loads((run_dir / "shard.json").read_text())["without_results"] == [str(p) for p in few]
    ec2.start_instances(InstanceIds=[instance(box, 3)])
    resumed = box.mxlab(*(args + ["--resume", run_dir.name] + few))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    merged = read_jsonl(run_dir / "results.jsonl")
    assert [r["image"] for r in merged] == [str(p) for p in few]


def test_resume_does_only_the_inputs_without_results(box, photos, tmp_path):
    """A run whose host files lost some results (as if it were cut short): --resume RUN_ID classifies only
    those (the others are not run again) and the merged file has all 60 once."""
    results = tmp_path / "results"
    listing = tmp_path / "inputs.txt"
    listing.write_text("".join("%s\n" % p for p in sorted(photos.iterdir())))
    first = box.mxlab("run", "--attendee", "1,2", "--shard", "--model", MODEL, "--results", results,
                      "--input-list", listing, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    run_dir = run_dir_of(results)
    dropped = set()
    for path in run_dir.glob("attendee-*.jsonl"):
        recs = read_jsonl(path)
        dropped.update(r["image"] for r in recs[:3])
        path.write_text("".join(json.dumps(r) + "\n" for r in recs[3:]))
    (run_dir / "results.jsonl").unlink()
    again = box.mxlab("run", "--attendee", "1,2", "--shard", "--model", MODEL, "--results", results,
                      "--input-list", listing, "--resume", run_dir.name, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resumed run %s: %d input(s) already had results; %d done now" % (
        run_dir.name, PHOTOS - len(dropped), len(dropped)) in again.stderr
    plan = json.loads((run_dir / "shard.json").read_text())
    order = [str(p) for p in sorted(photos.iterdir())]
    redone = sorted(i for chunk in plan["chunks"] for i in positions(chunk["inputs"]))
    assert redone == sorted(order.index(d) for d in dropped), "only the inputs without results were run"
    check_each_once(run_dir, photos)
    unknown = box.mxlab("run", "--all", "--shard", "--model", MODEL, "--results", results, "--resume", "nope",
                        str(photos))
    assert unknown.returncode == 2 and "--resume nope: no run folder" in unknown.stderr
