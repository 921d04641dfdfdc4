"""scripts/bench: seed vs agent vs ONNX Runtime vs INT8, side by side in one run.

Each (model, method) runs in its own process (bench.worker) so threading settings
and memory do not leak between them; methods of one model run back to back and,
with --repeat R, the whole sequence runs R times and each method keeps its best
(a shared machine only ever makes a run slower).
"""
from __future__ import print_function, division, absolute_import

import argparse
import json
import os
import subprocess
import sys
import time

from bench import process_group

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("seed", "agent", "agent_ort", "ort", "int8", "ort_int8", "whole")
# Photos per whole-process run (each way as the process a user starts; bench/whole_process.py).
WHOLE_PHOTOS = {"full": 224, "quick": 32}
# Attendees in --quick's room (bench/room.py; the targets' 30 in a full run).
QUICK_ROOM = 3
# (images timed, batch sizes tried) per model; quick keeps the whole run under 10 minutes.
PLAN = {
    "full": {"efficientnet-lite0": (144, [1, 2, 4, 8, 16]), "inception-bn": (96, [1, 2, 4, 8, 16]),
             "resnet-152": (24, [1, 2, 4, 8]), "vgg16": (24, [1, 2, 4, 8])},
    "quick": {"efficientnet-lite0": (48, [1, 8]), "inception-bn": (48, [1, 8]),
              "resnet-152": (12, [1, 4]), "vgg16": (12, [1, 4])},
}


def _say(message):
    sys.stderr.write("[bench] %s\n" % message)
    sys.stderr.flush()


def _worker(job, timeout):
    # its own process group: a timeout ends the worker's children too (agent classify, agent serve, ORT)
    proc = process_group.run([sys.executable, "-m", "bench.worker", json.dumps(job)], timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.strip().splitlines() if not l.startswith("[")]
        raise RuntimeError((lines or ["exit %d" % proc.returncode])[-1][:400])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_model(model, paths, methods, count, batches, build_dir, threads, timeout, whole_photos=32):
    out = {"real_weights": model["real_weights"], "errors": {}}
    out["flops"] = _worker({"method": "flops", "model": model}, timeout)["flops"]
    sweep_images = max(batches) * 3  # three rounds of at least one batch each
    for method in methods:
        began = time.time()
        try:
            result = _measure_method(method, model, paths, count, batches, sweep_images, build_dir, threads,
                                     timeout, whole_photos)
        except Exception as err:  # one failed method is reported; the others still run
            out["errors"][method] = str(err)
            _say("%s %s FAILED: %s" % (model["name"], method, err))
            continue
        out[method] = result
        if method == "whole":
            _say("%s whole process, %d photos: %s s; first result %s s (%s)" % (
                model["name"], result["photos"], json.dumps(result["whole_process_s"]), result["first_result_s"],
                result["first_result_engine"]))
            continue
        _say("%s %-9s %6.1f img/s (%.0fs)" % (model["name"], method, result["ips"], time.time() - began))
    return out


def _measure_method(method, model, paths, count, batches, sweep_images, build_dir, threads, timeout, whole_photos):
    """One method's measurement of one model, each in its own worker process."""
    if method in ("ort", "ort_int8"):  # ort_int8: ONNX Runtime static quantization, the INT8 peer
        from bench import ort_runner
        onnx_path = _worker({"method": "ort_export", "model": model,
                             "out_dir": os.path.join(build_dir, "onnx")}, timeout)["onnx"]
        worker = "bench.ort_int8_worker" if method == "ort_int8" else "bench.ort_worker"
        return ort_runner.run(model, onnx_path, paths, count, batches, sweep_images, threads, worker, timeout)
    if method in ("agent_ort", "whole"):
        return _worker({"method": method, "model": model, "paths": paths, "count": whole_photos
                        if method == "whole" else count, "batches": batches, "sweep_images": sweep_images,
                        "threads": threads, "out_dir": os.path.join(build_dir, "onnx"),
                        "build_dir": build_dir}, timeout)
    return _worker({"method": method, "model": model, "paths": paths, "count": count,
                    "batches": batches, "sweep_images": sweep_images}, timeout)


def _best(runs):
    """Per method, the run with the most images/s."""
    merged = dict(runs[0])
    for run in runs[1:]:
        for method in METHODS:
            if method == "whole":  # whole-process figures: the first complete measurement is kept
                if method in run and method not in merged:
                    merged[method] = run[method]
                continue
            if method in run and (method not in merged or run[method]["ips"] > merged[method]["ips"]):
                merged[method] = run[method]
                merged["errors"].pop(method, None)
    return merged


def build_parser():
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer images and batch sizes: under 10 minutes")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--models", default=None, help="comma-separated subset of: efficientnet-lite0, inception-bn, "
                                                  "vgg16, resnet-152 (default all)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated subset of " + ",".join(METHODS) + " (agent_ort: the agent on its ONNX "
                        "Runtime engine; ort_int8: ONNX Runtime static quantization, the INT8 peer; whole: "
                        "whole-process seconds for N photos and time to first result)")
    p.add_argument("--whole-photos", type=int, help="photos per whole-process run (default 224, quick 32)")
    p.add_argument("--images", type=int, help="images timed per method (default per model)")
    p.add_argument("--repeat", type=int, default=None, help="rounds, best kept (default 1 quick, 2 full)")
    p.add_argument("--zoo", default=os.path.join(ROOT, "build", "zoo"), help="local zoo (efficientnet-lite0)")
    p.add_argument("--photos", default=os.path.join(ROOT, "build", "photos"), help="sample photos folder")
    p.add_argument("--build", default=os.path.join(ROOT, "build", "bench"), help="cache folder")
    p.add_argument("--fanout", choices=("auto", "skip"), default="auto", help="measure mxlab run fan-out")
    p.add_argument("--one-photo", choices=("auto", "skip"), default="auto",
                   help="measure a one-photo `mxlab run` process, fresh and on a prepared (warm) host")
    p.add_argument("--round-trips", choices=("auto", "skip"), default="auto",
                   help="measure a one-photo `mxlab run` on a prepared host behind the sandbox's latency relay "
                        "at each --rtts round-trip time, with the round trips counted")
    p.add_argument("--rtts", default="0,20,50,150", help="round-trip times in ms for --round-trips "
                                                         "(default %(default)s)")
    p.add_argument("--room", choices=("auto", "skip"), default="auto",
                   help="measure `mxlab prepare --all` again and `mxlab run --all` of one photo over a sandbox "
                        "room behind the latency relay at 50 ms RTT (bench/room.py)")
    p.add_argument("--room-attendees", type=int, metavar="N",
                   help="attendees in that room (default 30; --quick %d: 30 hosts' first prepare alone takes "
                        "longer than --quick's 10 minutes)" % QUICK_ROOM)
    p.add_argument("--no-measure-peak", action="store_true", help="nominal peak only (no FMA loop, no sgemm)")
    p.add_argument("--agent-dir", help="time the agent/ inside this folder instead (e.g. a proposed patch)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per measurement process")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    sys.path.insert(0, ROOT)
    if args.agent_dir:
        os.environ["BENCH_AGENT_DIR"] = os.path.abspath(args.agent_dir)
    from bench import machine, models, photos, report
    names = [n.strip() for n in (args.models or ",".join(models.ORDER)).split(",") if n.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        rtts = [float(r) if "." in r else int(r) for r in args.rtts.split(",") if r.strip()]
    except ValueError:
        _say("--rtts: expected comma-separated round-trip times in ms, got %r" % args.rtts)
        return 2
    unknown = [n for n in names if n not in models.ORDER] + [m for m in methods if m not in METHODS]
    if unknown:
        _say("unknown model or method: %s" % ", ".join(unknown))
        return 2
    started = time.time()
    _say("machine and FP32 peak")
    info = machine.describe(args.build, measure=not args.no_measure_peak)
    if not os.path.isdir(args.photos) or not os.listdir(args.photos):
        subprocess.run([sys.executable, "-m", "localzoo.photos", args.photos], cwd=ROOT, check=True)
    paths = photos.photo_set(args.photos, os.path.join(args.build, "photos"))
    results = _measure_models(args, names, methods, paths, info["cores"])
    fan, one, far, hall = _measure_processes(args, paths, rtts)
    data = report.summary(results, info, fan, one, far, hall)
    data["quick"] = bool(args.quick)
    data["seconds"] = round(time.time() - started, 1)
    print(report.table(data))
    if args.json:
        report.write_json(args.json, data)
        _say("wrote %s" % args.json)
    return 0


def _measure_models(args, names, methods, paths, threads):
    """{model name: its methods' measurements, the best of --repeat rounds}; a model that cannot be
    resolved (no zoo, no weights) is skipped, said on stderr."""
    from bench import models
    plan = PLAN["quick" if args.quick else "full"]
    repeat = args.repeat or (1 if args.quick else 2)
    resolved = []
    for name in names:
        try:
            resolved.append(models.resolve(name, ROOT, args.zoo, args.build))
        except Exception as err:
            _say("%s skipped: %s" % (name, err))
    results = {}
    for model in resolved:
        count, batches = plan[model["name"]]
        count = args.images or count
        whole = args.whole_photos or WHOLE_PHOTOS["quick" if args.quick else "full"]
        runs = [measure_model(model, paths, [m for m in methods if m != "whole" or not round_], count, batches,
                              args.build, threads, args.timeout, whole)
                for round_ in range(repeat)]  # whole-process figures in the first round only
        results[model["name"]] = _best(runs)
    return results


def _measure_processes(args, paths, rtts):
    """The mxlab processes' measurements (fan-out, one photo, round trips, a room), each or its skip note."""
    from bench import fanout, one_photo, room, round_trips
    fan = fanout.measure(ROOT, args.build, paths) if args.fanout == "auto" else {"note": "skipped (--fanout skip)"}
    one = one_photo.measure(ROOT, args.build, paths[0], runs=3 if args.quick else 5) if args.one_photo == "auto" \
        else {"note": "skipped (--one-photo skip)"}
    far = round_trips.measure(ROOT, args.build, paths[0], rtts=rtts, runs=1 if args.quick else 3) \
        if args.round_trips == "auto" else {"note": "skipped (--round-trips skip)"}
    attendees = args.room_attendees or (QUICK_ROOM if args.quick else room.TARGET_ATTENDEES)
    hall = room.measure(attendees) if args.room == "auto" else {"note": "skipped (--room skip)"}
    return fan, one, far, hall
