"""`classify --int8` that never loses: calibrate once, keep INT8 only where it wins, remember both.

The first --int8 run of a model calibrates (agent.quantize.quantize_int8) on up to 16
of its inputs, then runs the INT8 and the fused FP32 graph on those same inputs:
INT8 is used only if its top-1 agrees with FP32 on at least MIN_AGREEMENT of them
and its forward pass is at least MIN_SPEEDUP times as fast; otherwise the run goes
on in FP32 and a warning event says why. The calibrated graph and the decision are
cached beside the model (CACHE/<model>/<params name>.int8.{json,params,decision.json}),
so a later --int8 run neither calibrates nor reads any input twice.

Thresholds: $MXLAB_INT8_MIN_AGREEMENT (default 0.95) and $MXLAB_INT8_MIN_SPEEDUP
(default 1.0), applied on each run to the cached measurements (the calibrated graph is
kept either way, so other thresholds need no new calibration).
Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import

import json
import os
import time

from agent import reporter

CACHE_VERSION = 1  # bump when quantize_int8 changes what it produces
MIN_AGREEMENT = 0.95
MIN_SPEEDUP = 1.0


def thresholds(environ=None):
    environ = os.environ if environ is None else environ
    return (float(environ.get("MXLAB_INT8_MIN_AGREEMENT", MIN_AGREEMENT)),
            float(environ.get("MXLAB_INT8_MIN_SPEEDUP", MIN_SPEEDUP)))


def _stamp(path):
    info = os.stat(path)
    return [info.st_size, int(info.st_mtime)]


class Int8Cache(object):
    """The cached INT8 graph and decision of one model."""

    def __init__(self, files, input_name, size, batch_size):
        import mxnet as mx
        base = os.path.splitext(files["params"])[0] + ".int8"
        self.symbol_path = base + ".json"
        self.params_path = base + ".params"
        self.decision_path = base + ".measured.json"
        self.key = {"symbol": _stamp(files["symbol"]), "params": _stamp(files["params"]), "input": input_name,
                    "size": size, "batch_size": batch_size, "mxnet": mx.__version__, "version": CACHE_VERSION}
        self.decision = self._read()

    def _read(self):
        try:
            with open(self.decision_path) as handle:
                decision = json.load(handle)
        except (IOError, OSError, ValueError):
            return None
        if decision.get("key") != self.key or not (os.path.isfile(self.symbol_path)
                                                   and os.path.isfile(self.params_path)):
            return None
        return decision

    def load_graph(self):
        import mxnet as mx
        from agent.checkpoint import split_params
        symbol = mx.sym.load(self.symbol_path)
        args, aux = split_params(mx.nd.load(self.params_path), symbol)
        return symbol, args, aux

    def save(self, decision, graph=None):
        import mxnet as mx
        if graph is not None:
            symbol, args, aux = graph
            symbol.save(self.symbol_path + ".tmp")
            saved = dict(("arg:" + k, v) for k, v in args.items())
            saved.update(("aux:" + k, v) for k, v in aux.items())
            mx.nd.save(self.params_path + ".tmp", saved)
            os.rename(self.symbol_path + ".tmp", self.symbol_path)
            os.rename(self.params_path + ".tmp", self.params_path)
        decision = dict(decision, key=self.key)
        with open(self.decision_path + ".tmp", "w") as handle:
            json.dump(decision, handle, indent=1, sort_keys=True)
        os.rename(self.decision_path + ".tmp", self.decision_path)
        self.decision = decision


def _forward_all(engine, tensors):
    import numpy as np
    return np.concatenate([engine.forward(tensors[start:start + engine.batch_size])
                           for start in range(0, len(tensors), engine.batch_size)])


def _race(engines, batch, rounds=3):
    """Best forward seconds of each engine on ``batch`` (a warm-up first; rounds interleaved)."""
    for engine in engines:
        engine.forward(batch)
    best = [float("inf")] * len(engines)
    for _ in range(rounds):
        for index, engine in enumerate(engines):
            began = time.time()
            engine.forward(batch)
            best[index] = min(best[index], time.time() - began)
    return best


def verdict(measured, environ=None):
    """(use INT8?, reason) from the measurements of the calibration run and the thresholds."""
    min_agreement, min_speedup = thresholds(environ)
    agreement, speedup = measured["agreement"], measured["speedup"]
    facts = ("top-1 agreement with FP32 {0:.0%} on {1} calibration inputs, forward {2:.2f}x FP32's speed "
             "({3:.1f} vs {4:.1f} ms a batch of {5})".format(agreement, measured["calibration_inputs"], speedup,
                                                             measured["int8_ms"], measured["fp32_ms"],
                                                             measured["probe_inputs"]))
    why = []
    if agreement < min_agreement:
        why.append("agreement below {0:.0%}".format(min_agreement))
    if speedup < min_speedup:
        why.append("not {0:g}x faster".format(min_speedup))
    if not why:
        return True, "INT8 kept: " + facts
    return False, "{0}: {1}".format(" and ".join(why), facts)


def choose(model, symbol, args, aux, calibrate, input_name, size, batch_size, files, bind):
    """The engine an --int8 run uses: INT8 where it wins, else FP32 (with a warning event).

    calibrate(): float32 (n, 3, size, size) of the run's first inputs (read only when
    nothing is cached); bind(symbol, args, aux): an agent.pipeline.Engine.
    """
    from agent import quantize
    cache = Int8Cache(files, input_name, size, batch_size)
    measured = cache.decision
    cached = measured is not None
    if cached:
        int8 = None
    else:
        calibration = calibrate()
        int8_graph = quantize.quantize_int8(symbol, args, aux, calibration, input_name=input_name)
        int8 = bind(*int8_graph)
        fp32 = bind(*quantize.fuse_fp32(symbol, args, aux))
        same = _forward_all(int8, calibration).argmax(axis=1) == _forward_all(fp32, calibration).argmax(axis=1)
        probe = calibration[:batch_size]
        int8_s, fp32_s = _race([int8, fp32], probe)
        measured = {"agreement": float(same.mean()), "speedup": fp32_s / int8_s if int8_s > 0 else float("inf"),
                    "calibration_inputs": len(calibration), "probe_inputs": len(probe),
                    "int8_ms": int8_s * 1000, "fp32_ms": fp32_s * 1000}
        cache.save(measured, int8_graph)
    use_int8, reason = verdict(measured)
    note = " (cached)" if cached else ""
    if use_int8:
        reporter.emit("engine", model=model, engine="mxnet-int8", reason=reason + note)
        return int8 if int8 is not None else bind(*cache.load_graph())
    reporter.emit("warning", message="model {0}: --int8 declined ({1}){2}; running FP32".format(model, reason, note))
    reporter.emit("engine", model=model, engine="mxnet", reason="--int8 declined: " + reason + note)
    del int8
    return fp32 if not cached else bind(*quantize.fuse_fp32(symbol, args, aux))
