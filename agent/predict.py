"""One bound MXNet Module per model: batched forward passes -> class probabilities.

The symbol's head is rewritten so that no label variable is needed: a zoo symbol
ending in SoftmaxOutput (label ``softmax_label``, or ``prob_label`` for VGG and
SqueezeNet) is cut before that op and a plain softmax put on its input; a head
that is already a softmax is kept; any other head (logits) gets a softmax. So
the JSON never needs editing and the Module is bound once, for inference only.
"""
from __future__ import print_function, division, absolute_import

import io
import json
import time
from collections import OrderedDict

from agent import checkpoint
from agent.errors import AgentError

SOFTMAX_OPS = ("softmax", "SoftmaxActivation")


class HostCpu(object):
    """The CPU, named without importing MXNet (on a host without NVIDIA devices): a run whose
    engine is a cached ONNX Runtime session then never loads MXNet (agent.engine_onnx)."""

    device_type = "cpu"

    def __str__(self):
        return "cpu(0)"


def pick_context(light=False):
    """MXNet's GPU 0 when it sees one, else the CPU; ``light``: HostCpu() where no NVIDIA device exists."""
    import os
    if light and not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0")):
        return HostCpu()
    from agent import startup
    mx = startup.import_mxnet()
    try:
        gpus = mx.context.num_gpus()
    except (AttributeError, mx.base.MXNetError):
        gpus = 0
    return mx.gpu(0) if gpus > 0 else mx.cpu()


def read_synset(path):
    """[(wnid, label)] from lines like 'n01440764 tench, Tinca tinca'."""
    with io.open(path, "r", encoding="utf-8") as handle:
        lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
    out = []
    for line in lines:
        parts = line.split(" ", 1)
        out.append((parts[0], parts[1].strip() if len(parts) > 1 else parts[0]))
    return out


def probability_head(symbol):
    """(symbol whose single output is class probabilities, how the head was handled)."""
    import mxnet as mx
    if len(symbol.list_outputs()) > 1:
        symbol = symbol[0]
    graph = json.loads(symbol.tojson())
    head = graph["nodes"][graph["heads"][0][0]]
    op = head.get("op")
    if op == "SoftmaxOutput":
        features = symbol.get_children()[0]
        return mx.sym.softmax(mx.sym.flatten(features), axis=1, name="agent_prob"), "SoftmaxOutput replaced"
    if op in SOFTMAX_OPS:
        return symbol, "softmax kept"
    return mx.sym.softmax(mx.sym.flatten(symbol), axis=1, name="agent_prob"), "softmax added"


class Classifier(object):
    """A model's bound engine and labels: batches of tensors -> probabilities -> top-k."""

    def __init__(self, name, spec, engine, synset):
        self.name = name
        self.spec = spec  # the catalogue's "input" block: how to preprocess for this model
        self.engine = engine  # agent.pipeline.Engine or anything with batch_size and forward()
        self.batch_size = engine.batch_size
        self.synset = synset

    def predict(self, tensors):
        """(probabilities (n, classes), milliseconds per image) for up to batch_size tensors."""
        import numpy as np
        count = len(tensors)
        if not 0 < count <= self.batch_size:
            raise ValueError("predict takes 1 to {0} tensors, got {1}".format(self.batch_size, count))
        batch = np.stack(tensors).astype(np.float32, copy=False)
        start = time.time()
        probs = self.engine.forward(batch)  # pads a short last batch itself
        elapsed_ms = (time.time() - start) * 1000.0 / count
        return probs, elapsed_ms

    def top(self, probs, k):
        """[{index, synset, label, prob}] of the k most probable classes, most probable first."""
        import numpy as np
        order = np.argsort(-probs, kind="mergesort")[:k]
        return [OrderedDict([("index", int(i)), ("synset", self.synset[i][0]), ("label", self.synset[i][1]),
                             ("prob", round(float(probs[i]), 6))]) for i in order]


def load(name, entry, files, batch_size, context=None, calibration=None, engine="mxnet", input_count=0):
    """A Classifier for a cached model, bound once for batches of ``batch_size`` inputs of its size.

    calibration: a callable giving float32 (n, 3, size, size) preprocessed photos -> --int8: the
    INT8 graph where it wins over FP32 (agent.int8_cache: calibrated once, cached; the callable
    is only called when nothing is cached).
    engine: "mxnet", "onnxruntime" or "auto" (agent.engine_onnx; CPU FP32 only); input_count: how
    many inputs the run classifies (auto weighs MXNet's start-up against its faster forwards).
    """
    from agent import engine_onnx
    from agent.pipeline import cpu_cores
    context = context or pick_context()
    synset = read_synset(files["synset"])
    size = entry["input"]["size"]
    if context.device_type == "cpu" and calibration is None:
        cached = engine_onnx.cached_engine(name, engine, files, size, batch_size, cpu_cores(), len(synset),
                                           input_count)
        if cached is not None:
            return Classifier(name, entry["input"], cached, synset)
    from agent import startup
    mx = startup.import_mxnet()
    mxnet_import_s = startup.mxnet_import_seconds()  # auto weighs it (agent.engine_onnx)
    if isinstance(context, HostCpu):
        context = mx.cpu()
    symbol, arg_params, aux_params = _read_checkpoint(mx, name, files)
    startup.mark("checkpoint")
    input_name, classes = _check_graph(mx, name, symbol, arg_params, (batch_size, 3, size, size), files, synset)
    engine = _engine_for(name, engine, context, calibration)
    make_mxnet = _mxnet_maker(mx, name, (symbol, arg_params, aux_params), input_name, size, batch_size, files,
                              context, calibration)
    params = dict(arg_params)
    params.update(aux_params)
    bound = engine_onnx.build(name, engine, make_mxnet, symbol, params, input_name, size, files, batch_size,
                              cpu_cores(), classes, input_count, mxnet_import_s)
    startup.mark("engine")  # MXNet: fused and bound; auto/onnxruntime on a new export: bound on the first batch
    return Classifier(name, entry["input"], bound, synset)


def _read_checkpoint(mx, name, files):
    """(probability symbol, arg_params, aux_params) of the cached checkpoint."""
    try:
        symbol, _ = probability_head(mx.sym.load(files["symbol"]))
        arg_params, aux_params = checkpoint.split_params(mx.nd.load(files["params"]), symbol)
    except mx.base.MXNetError as err:
        raise AgentError("model {0}: cannot load its checkpoint: {1}".format(name, _first_line(err)))
    return symbol, arg_params, aux_params


def _check_graph(mx, name, symbol, arg_params, shape, files, synset):
    """(the graph's one data input, its class count), checked against the synset."""
    inputs = [arg for arg in symbol.list_arguments() if arg not in arg_params]
    if len(inputs) != 1:
        raise AgentError("model {0}: expected one input variable without parameters, found {1}"
                         .format(name, inputs or "none"))
    try:
        _, out_shapes, _ = symbol.infer_shape(**{inputs[0]: shape})
    except mx.base.MXNetError as err:
        raise AgentError("model {0}: cannot bind for input {1}: {2}".format(name, shape, _first_line(err)))
    classes = out_shapes[0][1]
    if classes != len(synset):
        raise AgentError("model {0} outputs {1} classes but its synset {2} has {3} lines"
                         .format(name, classes, files["synset"], len(synset)))
    return inputs[0], classes


def _engine_for(name, engine, context, calibration):
    """The engine asked for, or "mxnet" (with a warning) where ONNX Runtime cannot run it: GPU, --int8."""
    if engine != "mxnet" and (context.device_type != "cpu" or calibration is not None):
        from agent import reporter
        reporter.emit("warning", message="model {0}: --engine {1} runs FP32 on a CPU only; this run uses "
                                         "MXNet ({2})".format(name, engine, "--int8" if calibration is not None
                                                              else context))
        return "mxnet"
    return engine


def _mxnet_maker(mx, name, plain, input_name, size, batch_size, files, context, calibration):
    """A callable binding the MXNet engine: fused FP32 on a CPU (INT8 where it wins with --int8), plain on a GPU."""
    from agent.pipeline import Engine
    shape = (batch_size, 3, size, size)

    def bind(sym, args, aux):
        return Engine(sym, args, aux, batch_size, size, input_name=input_name, context=context)

    def make_mxnet():
        sym, args, aux = plain
        try:
            if context.device_type == "cpu":
                from agent import int8_cache, quantize
                if calibration is not None:
                    return int8_cache.choose(name, sym, args, aux, calibration, input_name, size, batch_size, files,
                                             bind)
                sym, args, aux = quantize.fuse_fp32(sym, args, aux)
            elif calibration is not None:
                raise AgentError("model {0}: --int8 runs on a CPU only (this run uses {1})".format(name, context))
            return bind(sym, args, aux)
        except mx.base.MXNetError as err:
            raise AgentError("model {0}: cannot bind for input {1}: {2}".format(name, shape, _first_line(err)))
    return make_mxnet


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else err.__class__.__name__
