"""ONNX Runtime as the agent's engine (`classify --engine onnxruntime|auto`), MXNet the reference.

The model's probability graph is exported once with mx.onnx (dynamic batch, weights
as initializers so ONNX Runtime folds BatchNorm into Conv) to
CACHE/<model>/<params name>.onnx, with a sidecar <...>.onnx.json holding what it was
exported from and whether it was verified. An export is verified on the run's first
real batch against MXNet (top-1 equal on every input, probabilities within
MAX_PROB_DIFF); only then is it kept, so a cached export is always a verified one
and a later run on it needs no MXNet bind at all. A mismatch fails closed: the run
goes on with MXNet, says so in a warning event, and the export is not kept.

onnxruntime and onnx are optional (agent/requirements-onnx.txt): imported here
lazily, never by the rest of the agent, so the agent runs without them.
Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import

import json
import os
import time

from agent import reporter
from agent.errors import AgentError

REQUIREMENTS = "requirements-onnx.txt"  # beside this file; mxlab installs it when --engine asks
EXPORT_VERSION = 1  # bump when the export changes: older cached exports are redone
MAX_PROB_DIFF = 1e-3  # FP32 against FP32, other kernels: measured differences are ~1e-6
ENGINES = ("mxnet", "onnxruntime", "auto")


class EngineUnavailable(AgentError):
    """onnxruntime (or onnx, for the export) is not installed in this Python."""


def import_runtime():
    """The onnxruntime module, or EngineUnavailable naming what to install."""
    try:
        import onnxruntime  # optional engine: agent/requirements-onnx.txt
    except ImportError as err:
        raise EngineUnavailable("--engine onnxruntime needs onnxruntime ({0}); install agent/{1} "
                                "(mxlab run --engine does)".format(err, REQUIREMENTS))
    return onnxruntime


def session_options(ort, threads):
    """Options for batched CNN inference beside the decode thread: one intra-op thread per
    core, every graph optimization, sequential execution, the memory arena and memory
    patterns on (the batch shape repeats, so buffers are planned once), and idle
    intra-op threads that sleep instead of spinning, as OMP_WAIT_POLICY=PASSIVE does for
    MXNet (measured on 2 busy cores, EfficientNet-Lite0 batch 8 beside a decode thread:
    175 ms a forward without spinning, 563 ms with)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = True
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _host_tag(ort):
    """ONNX Runtime's version and this CPU (model name, feature flags): what an optimized graph
    is specific to (its NCHWc layouts and kernels are chosen for the instruction set)."""
    import hashlib
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = "".join(line for line in handle.read().splitlines(True)[:40]
                          if line.startswith(("model name", "flags")))
    except (IOError, OSError):
        import platform
        cpu = platform.processor()
    return hashlib.sha1((ort.__version__ + "\n" + cpu).encode("utf-8")).hexdigest()[:12]


def open_session(ort, path, threads):
    """An ONNX Runtime session for ``path``, from its optimized form when one is cached.

    Graph optimization takes ~0.3 s of a 0.6 s one-photo run (EfficientNet-Lite0), so the
    optimized graph is saved once per ORT version and CPU beside the export, and kept only
    after it answers as the plain session does on a fixed random batch."""
    import numpy as np
    options = session_options(ort, threads)
    if path.endswith(".unverified"):  # an export on trial (ChoosingEngine): nothing of it is kept yet
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    optimized = "{0}.ort-{1}.onnx".format(os.path.splitext(path)[0], _host_tag(ort))
    if os.path.isfile(optimized):
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(optimized, options, providers=["CPUExecutionProvider"])
        except Exception:  # damaged: made again from the export below
            _remove(optimized)
            options = session_options(ort, threads)
    pending = optimized + ".unverified"
    options.optimized_model_filepath = pending
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    try:
        shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        probe = np.random.RandomState(0).rand(*shape).astype(np.float32)
        name = session.get_inputs()[0].name
        reload_options = session_options(ort, threads)
        reload_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        saved = ort.InferenceSession(pending, reload_options, providers=["CPUExecutionProvider"])
        if np.max(np.abs(saved.run(None, {name: probe})[0] - session.run(None, {name: probe})[0])) <= 1e-5:
            os.rename(pending, optimized)
    except Exception:  # the optimized form is only a start-up saving: without it, the plain session runs
        pass
    _remove(pending)
    return session


class OrtEngine(object):
    """agent.pipeline.Engine's interface (batch_size, forward) over an ONNX Runtime session."""

    name = "onnxruntime"

    def __init__(self, path, batch_size, threads):
        ort = import_runtime()
        self.batch_size = batch_size
        self.session = open_session(ort, path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.version = ort.__version__

    def forward(self, batch):
        """Probabilities (n, classes): the graph has a dynamic batch, so a short batch needs no padding."""
        return self.session.run(None, {self.input_name: batch})[0]


# ---- the cached export ------------------------------------------------------------


def _stamp(path):
    info = os.stat(path)
    return [info.st_size, int(info.st_mtime)]


class Export(object):
    """The cached ONNX file of one model and its sidecar record."""

    def __init__(self, files, size):
        base = os.path.splitext(files["params"])[0]
        self.path = base + ".onnx"
        self.record_path = self.path + ".json"
        self.key = {"symbol": _stamp(files["symbol"]), "params": _stamp(files["params"]), "size": size,
                    "version": EXPORT_VERSION}
        self.record = self._read_record()

    def _read_record(self):
        try:
            with open(self.record_path) as handle:
                record = json.load(handle)
        except (IOError, OSError, ValueError):
            return {}
        if record.get("key") != self.key or not os.path.isfile(self.path):
            return {}
        return record

    @property
    def verified(self):
        return bool(self.record.get("verified"))

    def pending_path(self):
        return self.path + ".unverified"

    def write(self, symbol, params, input_name, size):
        """Export to pending_path(); raises AgentError when mx.onnx or onnx cannot."""
        import numpy as np
        try:
            import onnx  # optional: agent/requirements-onnx.txt
            from mxnet import onnx as mx_onnx
        except ImportError as err:
            raise EngineUnavailable("exporting to ONNX needs the onnx package ({0}); install agent/{1}"
                                    .format(err, REQUIREMENTS))
        pending = self.pending_path()
        try:
            mx_onnx.export_model(symbol, params, in_shapes=[(1, 3, size, size)], in_types=[np.float32],
                                 onnx_file_path=pending, dynamic=True, dynamic_input_shapes=[(None, 3, size, size)])
            graph = onnx.load(pending)
            initializers = set(init.name for init in graph.graph.initializer)
            for value in [v for v in graph.graph.input if v.name in initializers]:
                graph.graph.input.remove(value)  # weights as constants: ORT may fold them
            onnx.save(graph, pending)
        except Exception as err:  # mx.onnx raises plain exceptions for unsupported ops
            _remove(pending)
            raise AgentError("cannot export to ONNX: {0}: {1}".format(type(err).__name__, err))
        return pending

    def keep(self, pending, verification, classes):
        """Put a verified export in place, with its record."""
        os.rename(pending, self.path)
        self.record = {"key": self.key, "verified": verification, "classes": classes,
                       "auto": self.record.get("auto", {})}
        self.save()

    def remember_choice(self, setting, choice):
        if not self.verified:
            return
        self.record.setdefault("auto", {})[setting] = choice
        self.save()

    def save(self):
        temp = self.record_path + ".tmp"
        with open(temp, "w") as handle:
            json.dump(self.record, handle, indent=1, sort_keys=True)
        os.rename(temp, self.record_path)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def compare(reference, candidate):
    """(agrees, max probability difference, top-1 agreement fraction) of two (n, classes) arrays."""
    import numpy as np
    reference = np.asarray(reference)
    candidate = np.asarray(candidate)
    if reference.shape != candidate.shape:
        return False, float("inf"), 0.0
    diff = float(np.max(np.abs(reference - candidate))) if reference.size else 0.0
    same = reference.argmax(axis=1) == candidate.argmax(axis=1)
    top1 = float(np.mean(same)) if len(same) else 1.0
    return bool(same.all()) and diff <= MAX_PROB_DIFF, diff, top1


def _race(engines, batch, rounds):
    """(outputs, best seconds per engine): one warm-up forward each (primitive creation,
    arena allocation: not timed), then ``rounds`` forwards of each, interleaved so that
    a busy moment of a shared machine does not land on one engine only."""
    outputs = [engine.forward(batch) for engine in engines]
    best = [float("inf")] * len(engines)
    for _ in range(rounds):
        for index, engine in enumerate(engines):
            began = time.time()
            outputs[index] = engine.forward(batch)
            best[index] = min(best[index], time.time() - began)
    return outputs, best


class ChoosingEngine(object):
    """Runs the first batch on MXNet and ONNX Runtime, verifies the export on it, keeps one.

    mode "onnxruntime": keep ONNX Runtime when the export agrees with MXNet (else MXNet,
    with a warning). mode "auto": keep the faster of the two on this batch (forward time,
    after a warm-up), provided the export agrees. The choice is an "engine" event.
    """

    def __init__(self, model, mode, make_mxnet, make_ort, export, pending, batch_size, threads, mxnet_import_s=0.0):
        self.mxnet_import_s = mxnet_import_s
        self.model = model
        self.mode = mode
        self.make_mxnet = make_mxnet
        self.make_ort = make_ort
        self.export = export
        self.pending = pending
        self.batch_size = batch_size
        self.setting = "b{0}-t{1}".format(batch_size, threads)
        self.chosen = None

    @property
    def name(self):
        return getattr(self.chosen, "name", "mxnet") if self.chosen is not None else "undecided"

    def forward(self, batch):
        if self.chosen is None:
            return self._choose(batch)
        return self.chosen.forward(batch)

    def _choose(self, batch):
        began = time.time()
        mxnet_engine = self.make_mxnet()
        mxnet_setup_s = self.mxnet_import_s + time.time() - began
        try:
            ort_engine = self.make_ort(self.pending or self.export.path)
            (reference, candidate), (mxnet_s, ort_s) = _race([mxnet_engine, ort_engine], batch,
                                                             3 if self.mode == "auto" else 0)
        except Exception as err:  # a session that will not load or run is a failed verification too
            if self.pending:
                _remove(self.pending)
            return self._decide(mxnet_engine, "mxnet", mxnet_engine.forward(batch),
                                "ONNX Runtime could not run the export ({0}: {1}); using MXNet".format(
                                    type(err).__name__, err), warn=True)
        agrees, diff, top1 = compare(reference, candidate)
        if not agrees:
            if self.pending:
                _remove(self.pending)
            return self._decide(mxnet_engine, "mxnet", reference,
                                "the ONNX export disagrees with MXNet on the first batch (top-1 agreement {0:.0%}, "
                                "max probability difference {1:.2g} > {2:g}); using MXNet".format(top1, diff,
                                                                                                  MAX_PROB_DIFF),
                                warn=True)
        if self.pending:
            self.export.keep(self.pending, {"inputs": len(batch), "max_prob_diff": diff, "top1": top1},
                             int(reference.shape[1]))
            self.pending = None
        if self.mode != "auto":
            return self._decide(ort_engine, "onnxruntime", candidate,
                                "export verified against MXNet on {0} inputs (max probability difference "
                                "{1:.2g})".format(len(batch), diff))
        return self._choose_faster((mxnet_engine, reference, mxnet_s), (ort_engine, candidate, ort_s), len(batch),
                                   diff, mxnet_setup_s)

    def _choose_faster(self, mxnet_run, ort_run, inputs, diff, mxnet_setup_s):
        """auto, the export verified: the engine whose forward of the first batch was the faster, and
        the measurements remembered with the export (auto_for_run reads them on later runs).
        mxnet_run, ort_run: (engine, its output, its forward's seconds)."""
        (mxnet_engine, reference, mxnet_s), (ort_engine, candidate, ort_s) = mxnet_run, ort_run
        faster = "onnxruntime" if ort_s < mxnet_s else "mxnet"
        reason = ("auto: forward of {0} inputs {1:.1f} ms on onnxruntime, {2:.1f} ms on mxnet; export verified "
                  "(max probability difference {3:.2g})".format(inputs, ort_s * 1000, mxnet_s * 1000, diff))
        self.export.remember_choice(self.setting, {"engine": faster, "reason": reason, "inputs": inputs,
                                                   "ort_s": ort_s, "mxnet_s": mxnet_s,
                                                   "mxnet_setup_s": mxnet_setup_s})
        if faster == "onnxruntime":
            return self._decide(ort_engine, faster, candidate, reason)
        return self._decide(mxnet_engine, faster, reference, reason)

    def _decide(self, engine, name, output, reason, warn=False):
        self.chosen = engine
        engine.name = name
        if warn:
            reporter.emit("warning", message="model {0}: {1}".format(self.model, reason))
        reporter.emit("engine", model=self.model, engine=name, reason=reason)
        return output


def auto_for_run(remembered, inputs):
    """(engine, reason) for a run of ``inputs`` inputs from auto's remembered measurements: ONNX
    Runtime where it is the faster, and also where MXNet's faster forwards would not win back,
    over this run's batches, what MXNet costs to start (its import, graph fusion and bind: a
    cached ONNX session needs none of it)."""
    if remembered.get("engine") == "onnxruntime" or "mxnet_setup_s" not in remembered:
        return remembered["engine"], remembered["reason"] + " (remembered)"
    batches = -(-max(inputs, 1) // max(remembered["inputs"], 1))
    lost = (remembered["ort_s"] - remembered["mxnet_s"]) * batches
    if lost < remembered["mxnet_setup_s"]:
        return "onnxruntime", ("auto: {0} inputs: ONNX Runtime's forwards would take {1:.2f} s longer than "
                               "MXNet's, less than MXNet's start-up ({2:.2f} s: import, fusion, bind)".format(
                                   inputs, lost, remembered["mxnet_setup_s"]))
    return "mxnet", remembered["reason"] + " (remembered; {0} inputs win back MXNet's {1:.2f} s start-up)".format(
        inputs, remembered["mxnet_setup_s"])


def cached_engine(model, mode, files, size, batch_size, threads, classes, inputs=0):
    """The ONNX Runtime engine straight from a verified cached export, when ``mode`` would
    pick it (onnxruntime; auto by its remembered measurements for this batch size and core
    count, see auto_for_run), without loading MXNet at all; else None."""
    export = Export(files, size)
    if mode == "mxnet" or not export.verified or export.record.get("classes") != classes:
        return None
    reason = "cached export, verified against MXNet when it was made"
    if mode == "auto":
        remembered = export.record.get("auto", {}).get("b{0}-t{1}".format(batch_size, threads))
        if not remembered:
            return None
        choice, reason = auto_for_run(remembered, inputs)
        if choice != "onnxruntime":
            return None
    try:
        engine = OrtEngine(export.path, batch_size, threads)
    except EngineUnavailable:
        return None  # build() says so, and decides
    reporter.emit("engine", model=model, engine="onnxruntime", reason=reason)
    return engine


def build(model, mode, make_mxnet, symbol, params, input_name, size, files, batch_size, threads, classes, inputs=0,
          mxnet_import_s=0.0):
    """The engine for ``mode`` (ENGINES): MXNet's, ONNX Runtime's, or one that chooses on the first batch.

    make_mxnet(): the MXNet engine (bound when called; not at all when a verified
    export and the mode make it unneeded).
    """
    if mode == "mxnet":
        return _mxnet(make_mxnet)
    try:
        import_runtime()
    except EngineUnavailable as err:
        if mode != "auto":  # asked for by name: a clear error, not a silent MXNet run
            raise
        reporter.emit("engine", model=model, engine="mxnet", reason="auto: {0}".format(err))
        return _mxnet(make_mxnet)
    cached = cached_engine(model, mode, files, size, batch_size, threads, classes, inputs)
    if cached is not None:
        return cached
    export = Export(files, size)

    def make_ort(path):
        return OrtEngine(path, batch_size, threads)

    if export.verified and export.record.get("classes") == classes:
        remembered = export.record.get("auto", {}).get("b{0}-t{1}".format(batch_size, threads))
        if remembered:  # auto, and MXNet was the faster
            engine = _mxnet(make_mxnet)
            reporter.emit("engine", model=model, engine="mxnet", reason=auto_for_run(remembered, inputs)[1])
            return engine
        return ChoosingEngine(model, mode, make_mxnet, make_ort, export, None, batch_size, threads, mxnet_import_s)
    pending = _export(model, export, symbol, params, input_name, size)
    if pending is None:
        return _mxnet(make_mxnet)
    return ChoosingEngine(model, mode, make_mxnet, make_ort, export, pending, batch_size, threads, mxnet_import_s)


def _mxnet(make_mxnet):
    """The MXNet engine, bound now and named so."""
    engine = make_mxnet()
    engine.name = "mxnet"
    return engine


def _export(model, export, symbol, params, input_name, size):
    """The model exported to ONNX (a pending file: verified on the first batch before it is kept),
    or None, said as a warning and an "engine" event, where the export failed (MXNet runs)."""
    started = time.time()
    try:
        pending = export.write(symbol, params, input_name, size)
    except EngineUnavailable:
        raise
    except AgentError as err:
        reporter.emit("warning", message="model {0}: {1}; using MXNet".format(model, err))
        reporter.emit("engine", model=model, engine="mxnet", reason="ONNX export failed: {0}".format(err))
        return None
    reporter.emit("log", message="model {0}: exported to ONNX in {1:.1f} s ({2})".format(
        model, time.time() - started, export.path))
    return pending
