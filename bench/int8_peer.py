"""The agent's INT8 (oneDNN, agent.int8_cache) against its peer, ONNX Runtime static quantization
(bench/ort_int8_worker.py): which is faster among those whose top-1 agrees with FP32 on >= 95 %
of the bench photos, the rule `classify --int8` applies to its own INT8.

The agent has no ONNX Runtime INT8 path: where the peer wins, the bench says MISS.
"""
from __future__ import print_function, division, absolute_import

MIN_AGREEMENT = 0.95  # agent.int8_cache.MIN_AGREEMENT; not imported: report.summary runs without mxnet too


def compare(r):
    """{"agent": {ips, agreement}, "ort": {...}, "winner": "agent"|"ort"|None, "met": bool|None} from one
    model's measurements (bench.cli.measure_model); None when the peer was not measured."""
    sides = {}
    for side, method in (("agent", "int8"), ("ort", "ort_int8")):
        x = r.get(method)
        if x:
            sides[side] = {"ips": round(x["ips"], 2), "agreement": x["top1_agreement"]}
    if "ort" not in sides:
        return None
    fit = dict((side, s["ips"]) for side, s in sides.items() if s["agreement"] >= MIN_AGREEMENT)
    winner = max(fit, key=fit.get) if fit else None
    # met: the agent's way is as fast as any INT8 at >= 95 % (the agent has no ORT INT8 path to switch to)
    return dict(sides, winner=winner, met=None if "agent" not in sides else winner in (None, "agent"))


def _side(s):
    return "-" if not s else "%.1f img/s, %.0f%% top-1" % (s["ips"], 100 * s["agreement"])


def lines(models):
    """The INT8 peer section of the table."""
    out = ["", "INT8: the agent's (MXNet oneDNN) vs the peer (ONNX Runtime static quantization, QDQ, per-channel); "
               "faster at >= 95% top-1 agreement with FP32:"]
    for name, m in models.items():
        peer = m.get("int8_peer")
        if not peer:
            continue
        verdict = {"agent": "the agent's", "ort": "ONNX Runtime's", None: "neither reaches 95%"}[peer["winner"]]
        out.append("  %-19s agent %-26s ORT %-26s -> %s%s" % (
            name, _side(peer.get("agent")), _side(peer["ort"]), verdict,
            "" if peer["met"] is None else ": %s" % ("PASS" if peer["met"] else "MISS")))
    return out if len(out) > 2 else []


def targets(models):
    """[(target, value text, met?)] for the models whose peer and agent INT8 were both measured."""
    rows = []
    for name, m in models.items():
        peer = m.get("int8_peer")
        if peer and peer["met"] is not None:
            rows.append(("%s agent INT8 >= ORT INT8 at >= 95%%" % name, "%.1f vs %.1f img/s" % (
                peer["agent"]["ips"], peer["ort"]["ips"]), peer["met"]))
    return rows
