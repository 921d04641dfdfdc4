"""The bench's table (stdout) and JSON (--json FILE)."""
from __future__ import print_function, division, absolute_import

import json
import os
import tempfile

from bench import int8_peer

LARGE = ("vgg16", "resnet-152")


def _ratio(a, b):
    return a / b if a and b else None


def _int8_verdict(r):
    """(declined?, reason) as `agent classify --int8` decides (agent.int8_cache.verdict), from the
    bench's INT8 and FP32 agent measurements; (None, None) when either is missing."""
    int8, fp32 = r.get("int8"), r.get("agent")
    if not int8 or not fp32:
        return None, None
    from agent.int8_cache import verdict
    use, reason = verdict({"agreement": int8["top1_agreement"], "speedup": int8["ips"] / fp32["ips"],
                           "calibration_inputs": int8.get("agreement_photos", 0), "probe_inputs": int8["batch"],
                           "int8_ms": int8.get("forward_ms", 0.0), "fp32_ms": fp32.get("forward_ms", 0.0)})
    return not use, reason


def _model_summary(r):
    """One model's entry in the JSON: the best engine's throughput, whole-process and first-result seconds,
    INT8 (used or declined, and its peer), each method's figures."""
    gflop = r["flops"] / 1e9
    agent = r.get("agent", {}).get("ips")
    engines = dict((engine, r[method]["ips"])
                   for engine, method in (("mxnet", "agent"), ("onnxruntime", "agent_ort")) if method in r)
    best_engine = max(engines, key=engines.get) if engines else None
    whole = r.get("whole") or {}
    declined, why = _int8_verdict(r)
    return {
        "engine_ips": engines.get(best_engine), "engine": best_engine, "engine_ips_by_engine": engines,
        "agent_ort_ips": engines.get("onnxruntime"),
        "engine_gflops": round(gflop * engines[best_engine], 1) if best_engine else None,
        "whole_process_s": whole.get("whole_process_s"), "whole_process_photos": whole.get("photos"),
        "whole_process_agent_engine": whole.get("agent_engine"), "whole_process_warm_used": whole.get("warm_used"),
        "first_result_s": whole.get("first_result_s"), "first_result_engine": whole.get("first_result_engine"),
        "first_result_stages": whole.get("first_result_stages"),
        "int8_declined": declined, "int8_reason": why,
        "int8_ort_ips": r.get("ort_int8", {}).get("ips"),  # the INT8 peer: ONNX Runtime static quantization
        "int8_ort_top1_agreement": r.get("ort_int8", {}).get("top1_agreement"),
        "int8_peer": int8_peer.compare(r),

        "seed_ips": r.get("seed", {}).get("ips"), "agent_ips": agent, "ort_ips": r.get("ort", {}).get("ips"),
        "int8_ips": r.get("int8", {}).get("ips"),
        "int8_top1_agreement": r.get("int8", {}).get("top1_agreement"),
        "gflops_per_image": round(gflop, 3),
        "agent_gflops": round(gflop * agent, 1) if agent else None,
        "real_weights": r["real_weights"],
        "details": dict((m, r[m]) for m in ("seed", "agent", "agent_ort", "ort", "int8", "ort_int8") if m in r),
        "errors": r.get("errors", {}),
    }


def summary(results, machine, fanout, one_photo=None, round_trips=None, room=None):
    """The issue's JSON shape, with per-method details under "details"."""
    models = dict((name, _model_summary(r)) for name, r in results.items())
    parallel, sequential = fanout.get("parallel", {}), fanout.get("sequential", {})
    return {"machine": machine, "models": models, "peak_gflops": machine["peak_gflops"],
            "fanout": {"sequential_8_s": sequential.get("8"), "parallel_8_s": parallel.get("8"),
                       "host_cores": machine["cores"]},
            "fanout_s": fanout.get("parallel", {}), "fanout_sequential_s": fanout.get("sequential", {}),
            "fanout_note": fanout.get("note"),
            "one_photo_run_s": one_photo or {"note": "not measured"},
            "one_photo_rtt": round_trips or {"note": "not measured"},
            "room": room or {"note": "not measured"},
            "note": "timings from a shared 2-core machine: compare within one run"}


def _fmt(value, pattern="%.1f"):
    return "-" if value is None else pattern % value


def targets(data):
    """[(target, value text, met?)] for the issue's targets."""
    rows = []
    for name, m in data["models"].items():
        rows += _model_targets(name, m, data["peak_gflops"])
    rows += int8_peer.targets(data["models"])
    return rows + _process_targets(data)


def _model_targets(name, m, peak):
    """[(target, value text, met?)] of one model: throughput, whole process, INT8, share of peak."""
    rows = []
    a_s = _ratio(m["agent_ips"], m["seed_ips"])
    a_o = _ratio(m["agent_ips"], m["ort_ips"])
    i_a = _ratio(m["int8_ips"], m["agent_ips"])
    rows.append(("%s agent >= 1.3x seed" % name, _fmt(a_s, "%.2fx"), a_s is not None and a_s >= 1.3))
    e_o = _ratio(m.get("engine_ips"), m["ort_ips"])
    rows.append(("%s best engine >= 1.0x ORT" % name, _fmt(e_o, "%.2fx"), e_o is not None and e_o >= 1.0))
    wp = m.get("whole_process_s") or {}
    w_o, w_s = _ratio(wp.get("ort"), wp.get("agent")), _ratio(wp.get("seed"), wp.get("agent"))
    rows.append(("%s whole process >= 1.0x ORT script" % name, _fmt(w_o, "%.2fx"), w_o is not None and w_o >= 1.0))
    rows.append(("%s whole process >= 1.5x seed" % name, _fmt(w_s, "%.2fx"), w_s is not None and w_s >= 1.5))
    if wp.get("agent_warm") and wp.get("ort") and wp.get("seed"):  # fresh and warm agent vs both yardsticks
        lead = max(wp["agent"], wp["agent_warm"])
        rows.append(("%s agent keeps its lead (fresh, warm <= ORT script, seed)" % name,
                     "%.2f / %.2f s vs %.2f / %.2f s" % (wp["agent"], wp["agent_warm"], wp["ort"], wp["seed"]),
                     lead <= min(wp["ort"], wp["seed"]) and bool(m.get("whole_process_warm_used"))))
    rows.append(("%s agent >= 1.0x ORT" % name, _fmt(a_o, "%.2fx"), a_o is not None and a_o >= 1.0))
    if not m.get("int8_declined"):  # where the agent would use it
        rows.append(("%s int8 >= 2x agent" % name, _fmt(i_a, "%.2fx"), i_a is not None and i_a >= 2.0))
    agree = m["int8_top1_agreement"]
    rows.append(("%s int8 top-1 agreement >= 95%%" % name, _fmt(agree and 100 * agree, "%.0f%%"),
                 agree is not None and agree >= 0.95))
    if name in LARGE and m["agent_gflops"]:
        share = m["agent_gflops"] / peak
        rows.append(("%s agent >= 70%% of FP32 peak" % name, "%.0f%%" % (100 * share), share >= 0.70))
    return rows


def _process_targets(data):
    """[(target, value text, met?)] of the mxlab processes: fan-out, one photo (warm, far), the room, the fleet."""
    rows = []
    fan = data.get("fanout_s") or {}
    if fan.get("1") and fan.get("8"):
        ratio = fan["8"] / fan["1"]
        rows.append(("8-host fan-out <= 2x 1-host", "%.2fx" % ratio, ratio <= 2.0))
    one = data.get("one_photo_run_s") or {}
    if one.get("warm"):
        rows.append(("one-photo mxlab run on a prepared host <= 1 s", "%.2fs" % one["warm"],
                     one["warm"] <= 1.0 and one.get("warm_used")))
    goal = (data.get("one_photo_rtt") or {}).get("goal") or {}
    if goal.get("wall_s") is not None:
        rows.append(("one-photo mxlab run at %d ms RTT <= %.0f s" % (goal["rtt_ms"], goal["max_s"]),
                     "%.2fs" % goal["wall_s"], goal["met"]))
    if goal.get("kept_wall_s") is not None:
        rows.append(("  the same with --keep-connection", "%.2fs" % goal["kept_wall_s"], goal["met_kept"]))
    from bench.room import goals as room_goals
    rows += room_goals(data.get("room") or {})
    f = data.get("fanout") or {}
    speedup = _ratio(f.get("sequential_8_s"), f.get("parallel_8_s"))
    if speedup:
        want = 0.9 * min(8, f["host_cores"])
        rows.append(("fleet parallel speed-up >= 0.9 x min(8, cores)", "%.2fx (want %.1fx)" % (speedup, want),
                     speedup >= want))
    return rows


def table(data):
    """The benchmark as text: the machine, a section per concern, the targets."""
    return "\n".join(_machine_and_models(data) + _where_time_goes(data) + _engines(data)
                     + int8_peer.lines(data["models"]) + _fleet_and_one_photo(data) + _targets(data))


def _machine_and_models(data):
    """The machine (its peak, how it was found) and each model's throughput by method."""
    m = data["machine"]
    lines = [
        "machine: %s, %d cores, %s; FP32 peak %.0f GFLOP/s = %s (%s; %s); nominal at lscpu %.0f MHz: %.0f GFLOP/s;"
        " numpy sgemm %s GFLOP/s" % (
            m.get("model"), m["cores"], m.get("hypervisor") or "bare metal", data["peak_gflops"], m["peak_formula"],
            m["flop_per_cycle_why"], m["peak_source"] + (", %s MHz" % m["clock_mhz_measured"]
                                                        if m.get("clock_mhz_measured") else ""),
            m["clock_mhz_lscpu"], m["peak_gflops_nominal"], m.get("sgemm_gflops_numpy", "-")),
        "",
        "%-19s %7s | %-13s %-19s %-13s %-13s | %6s %6s %6s %6s | %8s %6s" % (
            "model", "GFLOP", "seed img/s", "agent img/s(batch)", "ort img/s", "int8 img/s",
            "a/seed", "a/ort", "i8/a", "i8agr", "a GFLOP/s", "%peak"),
    ]
    lines += [_model_line(name, r, data["peak_gflops"]) for name, r in data["models"].items()]
    lines.append("(* random weights, same architecture as the seed's zoo model; img/s over the whole path: "
                 "file read, decode, preprocess, forward)")
    return lines


def _model_line(name, r, peak):
    """One model's row of that table: images/s by method, the ratios, GFLOP/s and share of the peak."""
    d = r["details"]

    def cell(method):
        x = d.get(method)
        return "-" if not x else "%.1f (%.0fms)" % (x["ips"], x["ms_per_image"])
    agent = d.get("agent")
    agent_cell = "-" if not agent else "%.1f (%.0fms) b%d" % (agent["ips"], agent["ms_per_image"], agent["batch"])
    return "%-19s %7.2f | %-13s %-19s %-13s %-13s | %6s %6s %6s %6s | %8s %6s" % (
        name + ("" if r["real_weights"] else "*"), r["gflops_per_image"], cell("seed"), agent_cell, cell("ort"),
        cell("int8"), _fmt(_ratio(r["agent_ips"], r["seed_ips"]), "%.2f"),
        _fmt(_ratio(r["agent_ips"], r["ort_ips"]), "%.2f"), _fmt(_ratio(r["int8_ips"], r["agent_ips"]), "%.2f"),
        _fmt(r["int8_top1_agreement"] and 100 * r["int8_top1_agreement"], "%.0f%%"),
        _fmt(r["agent_gflops"]), _fmt(r["agent_gflops"] and 100 * r["agent_gflops"] / peak, "%.0f%%"))


def _where_time_goes(data):
    """Milliseconds per image by stage, per model and method; the failed methods."""
    lines = ["", "where the time goes (ms per image; seed: sequential stages; others: forward alone at the chosen "
              "batch, decode/preprocess measured alone, overlapped in the pipeline):",
              "%-19s %-6s %8s %10s %8s %8s  %s" % ("model", "method", "decode", "preprocess", "forward", "total",
                                                   "forward ms/img by batch")]
    for name, r in data["models"].items():
        d = r["details"]
        for method in ("seed", "agent", "ort", "int8", "ort_int8"):
            x = d.get(method)
            if not x:
                continue
            lines.append("%-19s %-6s %8s %10s %8s %8.1f  %s" % (
                name, method, _fmt(x.get("decode_ms")), _fmt(x.get("preprocess_ms")), _fmt(x.get("forward_ms")),
                x["ms_per_image"], json.dumps(x.get("forward_ms_by_batch", {}))))
        for method, error in sorted(r.get("errors", {}).items()):
            lines.append("%-19s %-6s FAILED: %s" % (name, method, error))
    return lines


def _engines(data):
    """The engine each model got, whole-process and first-result seconds, INT8 used or declined."""
    lines = ["", "engines, whole process and start-up (seconds for N photos as a process; first result: one photo):",
              "%-19s %-12s %9s %9s | %6s %8s %8s %8s | %8s %s" % (
                  "model", "best engine", "img/s", "ort-eng", "N", "seed s", "agent s", "ort s", "1st res",
                  "int8")]
    for name, r in data["models"].items():
        wp = r.get("whole_process_s") or {}
        lines.append("%-19s %-12s %9s %9s | %6s %8s %8s %8s | %8s %s" % (
            name, r.get("engine") or "-", _fmt(r.get("engine_ips")), _fmt(r.get("agent_ort_ips")),
            r.get("whole_process_photos") or "-", _fmt(wp.get("seed"), "%.2f"), _fmt(wp.get("agent"), "%.2f"),
            _fmt(wp.get("ort"), "%.2f"), _fmt(r.get("first_result_s"), "%.2f"),
            "-" if r.get("int8_declined") is None else ("declined: " if r["int8_declined"] else "used: ")
            + (r.get("int8_reason") or "")))
    return lines


def _fleet_and_one_photo(data):
    """Fleet fan-out, the one-photo `mxlab run` fresh and warm, at a round trip, and a room at once."""
    lines = []
    fan = data.get("fanout_s") or {}
    lines += ["", "fleet fan-out (mxlab run, loopback sshd): " + (
        ", ".join("%s hosts %.1fs" % (k, v) for k, v in sorted(fan.items(), key=lambda kv: int(kv[0])))
        + "; sequential 8 hosts: %s" % _fmt((data.get("fanout_sequential_s") or {}).get("8"), "%.1fs")
        if fan else "not measured: %s" % (data.get("fanout_note") or "skipped"))]
    one = data.get("one_photo_run_s") or {}
    lines += ["", "one photo, whole `mxlab run` process (loopback sshd host): " + (
        "fresh agent %.2fs, warm agent %.2fs (median of %d; warm agent used: %s)" % (
            one["fresh"], one["warm"], one["runs"], one["warm_used"]) if "warm" in one
        else one.get("note", "not measured"))]
    from bench.round_trips import lines as rtt_lines
    lines += [""] + rtt_lines(data.get("one_photo_rtt") or {})
    from bench.room import lines as room_lines
    lines += [""] + room_lines(data.get("room") or {})
    return lines


def _targets(data):
    """Each target, met or missed."""
    lines = ["", "targets:"]
    for what, value, met in targets(data):
        lines.append("  [%s] %-42s %s" % ("met " if met else "MISS", what, value))
    return lines


def write_json(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench-", dir=folder)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
