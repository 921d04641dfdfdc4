"""Sharded runs: images/s of `mxlab run --shard` over 1, 2 and 4 sandbox hosts on the same photo set.

    scripts/bench shard [--photos N] [--hosts 1,2,4] [--model M] [--json FILE]

Starts `mxlab sandbox --attendees 4` (real sshds, the AWS emulator, the local zoo), makes N distinct
photos from build/photos (flipped, rotated, resized copies), runs one untimed sharded run over every
host (agent upload, environment, model cache), then times `mxlab run --shard` as a person runs it,
wall clock from command start to exit (so it includes SSH, uploads, the agent's start per chunk and the
merged results). Note: the sandbox hosts share this machine's cores, so more hosts add SSH and agent
processes on the same CPUs: beyond the core count the CPU, not the sharding, bounds images/s here.
"""
from __future__ import print_function, division, absolute_import

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from bench import process_group
from mxlab.offline.sandbox_process import SandboxProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _say(message):
    sys.stderr.write("[bench shard] %s\n" % message)
    sys.stderr.flush()


def make_photos(folder, count):
    """`count` distinct JPEG files from build/photos: flips, rotations and, past those, smaller copies."""
    import cv2
    sources = sorted(os.path.join(ROOT, "build", "photos", n) for n in os.listdir(os.path.join(ROOT, "build", "photos"))
                     if n.lower().endswith(".jpg"))
    if not sources:
        raise RuntimeError("no photos in build/photos (scripts/build-local-zoo --photos build/photos)")
    variants = (lambda im: im, lambda im: cv2.flip(im, 1), lambda im: cv2.flip(im, 0),
                lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE), lambda im: cv2.flip(im, -1))
    per_round = len(sources) * len(variants)
    for n in range(count):
        image = variants[(n // len(sources)) % len(variants)](cv2.imread(sources[n % len(sources)]))
        if n >= per_round:
            scale = 0.95 ** (n // per_round)
            image = cv2.resize(image, None, fx=scale, fy=scale)
        cv2.imwrite(os.path.join(folder, "photo-%03d.jpg" % n), image)
    return folder


def sharded_run(box, hosts, model, photos, results, chunk_size=None):
    """(seconds, facts) of one `mxlab run --shard` over attendees 1..hosts: results per host, chunks,
    and the model's own time (the agent's ms per image, summed over the hosts)."""
    attendees = ",".join(str(n) for n in range(1, hosts + 1))
    began = time.time()
    proc = process_group.run([sys.executable, "-m", "mxlab", "run", "--attendee", attendees, "--shard",
                              "--model", model, "--results", results, photos]
                             + (["--chunk-size", str(chunk_size)] if chunk_size else []), cwd=ROOT, env=box.env(),
                             timeout=1800)
    wall = time.time() - began
    if proc.returncode != 0:
        raise RuntimeError("mxlab run --shard over %d host(s) exited %d: %s"
                           % (hosts, proc.returncode, (proc.stderr or proc.stdout)[-800:]))
    stack_dir = os.path.join(results, "MxnetLab")
    newest = max((os.path.join(stack_dir, d) for d in os.listdir(stack_dir)), key=os.path.getmtime)
    with open(os.path.join(newest, "summary.json")) as fh:
        summary = json.load(fh)
    per_host = {e["host"]: e["results"] for e in summary}
    prepare_s = max(e.get("prepare_s") or 0 for e in summary)
    runs_s = sum(sum((e.get("chunk_s") or {}).values()) for e in summary)
    with open(os.path.join(newest, "shard.json")) as fh:
        chunks = len(json.load(fh)["chunks"])
    with open(os.path.join(newest, "results.jsonl")) as fh:
        model_s = sum(json.loads(line).get("ms", 0) for line in fh if line.strip()) / 1000.0
    return wall, {"per_host": per_host, "chunks": chunks, "model_s": round(model_s, 2),
                  "prepare_s": round(prepare_s, 2), "agent_runs_s": round(runs_s, 2)}


def measure(photos_count=48, counts=(1, 2, 4), model="efficientnet-lite0", fixed=12):
    work = tempfile.mkdtemp(prefix="bench-shard-")
    box = SandboxProcess(work, "--attendees", max(counts))
    try:
        photos = os.path.join(work, "photos")
        os.mkdir(photos)
        make_photos(photos, photos_count)
        _say("sandbox with %d hosts starting (a CDK deploy into the emulator: a minute or two)" % max(counts))
        box.wait_ready()
        results = os.path.join(work, "results")
        _say("warm-up: one sharded run over all %d hosts (agent, environment, model cache)" % max(counts))
        sharded_run(box, max(counts), model, photos, results)
        out = {"photos": photos_count, "model": model, "cpus": os.cpu_count(), "runs": {},
               "load_average": round(os.getloadavg()[0], 1)}
        for n in counts:
            wall, facts = sharded_run(box, n, model, photos, results)
            out["runs"][str(n)] = dict(facts, seconds=round(wall, 2), images_per_s=round(photos_count / wall, 2))
            _say("%d host(s): %.1f s, %.2f images/s, %d chunks, model time %.1f s, per host %s"
                 % (n, wall, photos_count / wall, facts["chunks"], facts["model_s"], facts["per_host"]))
        if fixed:  # what adaptive sizing saves: one host, fixed chunks (the agent starts once per chunk)
            wall, facts = sharded_run(box, 1, model, photos, results, chunk_size=fixed)
            out["fixed"] = dict(facts, chunk_size=fixed, seconds=round(wall, 2),
                                images_per_s=round(photos_count / wall, 2))
            _say("1 host, --chunk-size %d: %.1f s, %.2f images/s" % (fixed, wall, photos_count / wall))
        out["load_average_after"] = round(os.getloadavg()[0], 1)
        return out
    finally:
        box.stop()
        shutil.rmtree(work, ignore_errors=True)


def table(data):
    lines = ["sharded run: %d photos, %s, sandbox hosts on this machine's %d CPU(s) (load average %s before, "
             "%s after)" % (data["photos"], data["model"], data["cpus"], data.get("load_average"),
                            data.get("load_average_after")),
             "%6s %9s %9s %9s %7s %9s %8s %8s  %s" % ("hosts", "seconds", "images/s", "speed-up", "chunks",
                                                      "prepare s", "agent s", "model s", "results per host")]
    base = data["runs"][min(data["runs"], key=int)]["images_per_s"]
    for n in sorted(data["runs"], key=int):
        run = data["runs"][n]
        per_host = ", ".join("%s %d" % kv for kv in sorted(run["per_host"].items()))
        lines.append("%6s %9.1f %9.2f %8.2fx %7d %9.1f %8.1f %8.1f  %s" % (
            n, run["seconds"], run["images_per_s"], run["images_per_s"] / base, run["chunks"],
            run.get("prepare_s", 0), run.get("agent_runs_s", 0), run["model_s"], per_host))
    if data.get("fixed"):
        f = data["fixed"]
        lines.append("%6s %9.1f %9.2f %8.2fx %7d %9.1f %8.1f %8.1f  (--chunk-size %d instead of adaptive)"
                     % (1, f["seconds"], f["images_per_s"], f["images_per_s"] / base, f["chunks"],
                        f.get("prepare_s", 0), f.get("agent_runs_s", 0), f["model_s"], f["chunk_size"]))
    lines.append("prepare s: the slowest host's readiness, connection, agent check and environment; agent s: "
                 "the chunks' agent runs (upload, start, classify, collect) summed over the hosts; model s: the "
                 "agent's own time per image, summed. The rest of the wall time is mxlab's own start and the "
                 "report. All hosts share this machine's CPUs.")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/bench shard", description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=int, default=48, help="photos in the set (default %(default)s)")
    p.add_argument("--hosts", default="1,2,4", help="host counts to time (default %(default)s)")
    p.add_argument("--model", default="efficientnet-lite0", help="model (default %(default)s)")
    p.add_argument("--fixed-chunk", type=int, default=12, metavar="N",
                   help="also time one host with --chunk-size N, against adaptive sizes (0: skip; default %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    data = measure(args.photos, tuple(int(n) for n in args.hosts.split(",")), args.model, args.fixed_chunk)
    print(table(data))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(data, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
