"""A room at once: `mxlab prepare --all` and `mxlab run --all` of one photo over N sandbox attendees behind the
latency relay (`mxlab sandbox --attendees N --rtt MS`), wall clock of each command as a person runs it, and the
slowest host's own time.

    python -m bench.room [--attendees 30] [--rtt 50] [--parallel 8,16,30] [--json FILE]

After the sandbox is up: one untimed `prepare --all` (agent, environment, model, JupyterLab on every host),
then per --parallel value a timed `prepare --all` again (everything in place) and a timed `run --all` of one
photo. Per host: prepare's own seconds from its readiness file (~/.mxlab/<stack>/prepare.json); for the run,
from its run folder: when the host's results were saved (after the command started), and its own run, from
the first file of its remote run folder (the sandbox's hosts keep their homes on this machine) to its results
saved. Targets: run --all <= 3 s, prepare --all again <= 20 s, at 30 attendees and 50 ms RTT.
Note: the hosts' sshds and agents share this machine's cores with the organiser's side.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_ATTENDEES, TARGET_RTT_MS = 30, 50
RUN_MAX_S, PREPARE_MAX_S = 3.0, 20.0
# Lines of a failed command's stderr kept whole after its error lines (a traceback's end, the last message).
TAIL_LINES = 12


def _say(message):
    sys.stderr.write("[bench room] %s\n" % message)
    sys.stderr.flush()


def why_failed(stdout, stderr):
    """What a failed `mxlab` said, its error lines whole: mxlab's own `mxlab: ...` lines (each NOT READY or
    failed host and why) and any naming NOT READY, then the last TAIL_LINES lines, in the order printed; from
    stderr, or stdout when stderr is empty. (A tail of characters cut off which hosts failed in a 30-host room.)"""
    lines = (stderr or "").splitlines() or (stdout or "").splitlines()
    keep = set(range(max(0, len(lines) - TAIL_LINES), len(lines)))
    keep.update(i for i, line in enumerate(lines) if line.startswith("mxlab: ") or "NOT READY" in line)
    return "\n".join(lines[i] for i in sorted(keep))


def _timed(box, args, timeout=3600):
    began = time.time()
    proc = process_group.run([sys.executable, "-m", "mxlab"] + [str(a) for a in args], cwd=ROOT, env=box.env(),
                             timeout=timeout)
    wall = time.time() - began
    if proc.returncode != 0:
        raise RuntimeError("mxlab %s exited %d:\n%s" % (" ".join(str(a) for a in args[:2]), proc.returncode,
                                                         why_failed(proc.stdout, proc.stderr)))
    return began, wall


def _prepare(box, model, parallel):
    """(wall s, {host: its own seconds}) of one `prepare --all`."""
    _, wall = _timed(box, ["prepare", "--all", "--models", model] + (["--parallel", parallel] if parallel else []))
    path = os.path.join(box.variables["MXLAB_HOME"], box.variables.get("MXLAB_STACK", "MxnetLab"), "prepare.json")
    with open(path) as fh:
        hosts = json.load(fh)["hosts"]
    return wall, dict((label, round(h["seconds"], 2)) for label, h in hosts.items())


def _first_file_s(folder):
    """The earliest change time under a remote run folder: when the host's run began (a file's ctime is set
    as it is written, and a tar's kept mtime does not move it)."""
    times = [os.stat(os.path.join(d, n)).st_ctime for d, _, names in os.walk(folder) for n in names]
    return min(times) if times else None


def _run(box, model, photo, results, parallel):
    """(wall s, {host: {"done_s", "own_s"}}) of one `run --all` of one photo."""
    began, wall = _timed(box, ["run", "--all", "--model", model, "--results", results, photo]
                         + (["--parallel", parallel] if parallel else []))
    stack_dir = os.path.join(results, box.variables.get("MXLAB_STACK", "MxnetLab"))
    newest = max((os.path.join(stack_dir, d) for d in os.listdir(stack_dir)), key=os.path.getmtime)
    with open(os.path.join(newest, "summary.json")) as fh:
        summary = json.load(fh)
    hosts = {}
    for entry in summary:
        if entry["status"] != "ok":
            raise RuntimeError("run --all: %s %s: %s" % (entry["host"], entry["status"], entry.get("error")))
        saved = os.path.getmtime(os.path.join(newest, "%s.jsonl" % entry["host"]))
        first = _first_file_s(entry["remote_run_dir"]) if os.path.isdir(entry["remote_run_dir"]) else None
        hosts[entry["host"]] = {"done_s": round(saved - began, 2),
                                "own_s": round(saved - first, 2) if first else None}
    return wall, hosts


def measure(attendees=TARGET_ATTENDEES, rtt_ms=TARGET_RTT_MS, parallels=(None,), model="efficientnet-lite0",
            photo=None, work=None):
    """{"attendees", "rtt_ms", "by_parallel": {"8": {"prepare": {...}, "run": {...}}}, ...} or {"note": why not}.
    A parallel of None: the CLI's default, recorded under "default"."""
    try:
        from mxlab.offline.sandbox_process import SandboxProcess
        from mxlab.runs import DEFAULT_PARALLEL
    except Exception as err:
        return {"note": "not measured: mxlab not available (%s)" % err}
    photo = photo or os.path.join(ROOT, "build", "photos", sorted(
        n for n in os.listdir(os.path.join(ROOT, "build", "photos")) if n.lower().endswith(".jpg"))[0])
    own_work = work is None
    work = work or tempfile.mkdtemp(prefix="bench-room-")
    box = SandboxProcess(work, "--attendees", attendees, "--rtt", rtt_ms)
    out = {"attendees": attendees, "rtt_ms": rtt_ms, "model": model, "default_parallel": DEFAULT_PARALLEL,
           "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1), "by_parallel": {}}
    try:
        _say("sandbox with %d hosts at %s ms RTT starting (a CDK deploy into the emulator)" % (attendees, rtt_ms))
        began = time.time()
        box.wait_ready(timeout=1800)
        out["sandbox_s"] = round(time.time() - began, 1)
        _say("untimed: the first prepare --all (agent, environment, model, JupyterLab on every host)")
        out["first_prepare_s"] = round(_prepare(box, model, max(p or DEFAULT_PARALLEL for p in parallels))[0], 1)
        results = os.path.join(work, "results")
        for parallel in parallels:
            out["by_parallel"][str(parallel or DEFAULT_PARALLEL)] = _at_parallel(box, model, photo, results,
                                                                                 parallel, DEFAULT_PARALLEL)
        out["load_average_after"] = round(os.getloadavg()[0], 1)
        return out
    except Exception as err:
        out["note"] = "not measured: %s" % err  # whole: why_failed kept only the lines that say why
        return out
    finally:
        box.stop()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def _at_parallel(box, model, photo, results, parallel, default_parallel):
    """{"prepare": {...}, "run": {...}}: prepare --all again and run --all of one photo at `parallel`
    (None: the CLI's default), the room's wall time and its hosts' own."""
    key = str(parallel or default_parallel)
    p_wall, p_hosts = _prepare(box, model, parallel)
    r_wall, r_hosts = _run(box, model, photo, results, parallel)
    owns = [h["own_s"] for h in r_hosts.values() if h["own_s"] is not None]
    _say("--parallel %s: prepare again %.1f s (slowest host %.1f s), run --all %.1f s (slowest host %s s)"
         % (key, p_wall, max(p_hosts.values()), r_wall, max(owns) if owns else "-"))
    return {
        "prepare": {"wall_s": round(p_wall, 2), "slowest_host_s": max(p_hosts.values()), "hosts": len(p_hosts)},
        "run": {"wall_s": round(r_wall, 2), "last_host_done_s": max(h["done_s"] for h in r_hosts.values()),
                "first_host_done_s": min(h["done_s"] for h in r_hosts.values()),
                "slowest_host_s": max(owns) if owns else None, "hosts": len(r_hosts)}}


def goals(data):
    """[(target, value text, met?)] from the default parallel's figures. The targets are for 30 attendees at
    50 ms RTT; a room measured otherwise is judged on its own figures and says which room it was."""
    row = (data.get("by_parallel") or {}).get(str(data.get("default_parallel")))
    if not row:
        return []
    where = "%d hosts at %s ms" % (data["attendees"], data["rtt_ms"])
    if data["attendees"] != TARGET_ATTENDEES or data["rtt_ms"] != TARGET_RTT_MS:
        where += ", not the target's %d at %d" % (TARGET_ATTENDEES, TARGET_RTT_MS)
    run, prep = row["run"]["wall_s"], row["prepare"]["wall_s"]
    return [("room run --all of one photo <= %.0f s (%s)" % (RUN_MAX_S, where), "%.1fs" % run, run <= RUN_MAX_S),
            ("room prepare --all again <= %.0f s (%s)" % (PREPARE_MAX_S, where), "%.1fs" % prep,
             prep <= PREPARE_MAX_S)]


def lines(data):
    """The table's lines for these figures."""
    head = "a room at once (%s attendees, %s ms RTT, %s" % (data.get("attendees", "-"), data.get("rtt_ms", "-"),
                                                           data.get("model", "-"))
    if not data.get("by_parallel"):
        note = data.get("note", "not measured").splitlines() or ["not measured"]
        return [head + "): " + note[0]] + ["  " + line for line in note[1:]]
    out = [head + "; sandbox up in %s s, first prepare %s s; load average %s before, %s after)" % (
        data.get("sandbox_s"), data.get("first_prepare_s"), data.get("load_average"), data.get("load_average_after"))]
    if data["attendees"] < TARGET_ATTENDEES:
        out.append("  (a smaller room than the targets' %d: fewer hosts to fit the time this run has)"
                   % TARGET_ATTENDEES)
    out.append("  %9s %12s %14s %10s %14s %14s" % ("parallel", "prepare s", "slowest host s", "run s",
                                                    "last done s", "slowest host s"))
    for key, row in sorted(data["by_parallel"].items(), key=lambda kv: int(kv[0])):
        p, r = row["prepare"], row["run"]
        out.append("  %9s %12.1f %14.1f %10.1f %14.1f %14s" % (
            key + ("*" if key == str(data["default_parallel"]) else ""), p["wall_s"], p["slowest_host_s"],
            r["wall_s"], r["last_host_done_s"], "-" if r["slowest_host_s"] is None else "%.1f" % r["slowest_host_s"]))
    out.append("  (* the CLI's default --parallel; prepare's slowest host: its own seconds; run: when the last "
               "host's results were saved, and the slowest host's own run, start to results saved)")
    if data.get("note"):
        out += ["  " + line for line in data["note"].splitlines()]
    for what, value, met in goals(data):
        out.append("  goal: %s: %s (%s)" % (what, "PASS" if met else "MISS", value))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.room", description=__doc__.split("\n")[0])
    p.add_argument("--attendees", type=int, default=TARGET_ATTENDEES, help="hosts (default %(default)s)")
    p.add_argument("--rtt", type=int, default=TARGET_RTT_MS, help="round-trip time in ms (default %(default)s)")
    p.add_argument("--parallel", default=None, help="comma-separated --parallel values to time (default: the CLI's)")
    p.add_argument("--model", default="efficientnet-lite0", help="model (default %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    parallels = tuple(int(n) for n in args.parallel.split(",")) if args.parallel else (None,)
    data = measure(args.attendees, args.rtt, parallels, args.model)
    print("\n".join(lines(data)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(data, fh, indent=2)
    return 0 if data.get("by_parallel") else 1


if __name__ == "__main__":
    sys.exit(main())
