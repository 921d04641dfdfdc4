"""The agent's way: probability head, oneDNN-fused graph bound once at the best batch,
timed through `agent classify`'s own code path (agent.classify.run)."""
from __future__ import print_function, division, absolute_import


def load_probability_graph(prefix):
    """(symbol with a softmax head and no label, arg_params, aux_params) as agent.predict loads it."""
    import mxnet as mx
    from agent.checkpoint import split_params
    from agent.predict import probability_head
    symbol, _ = probability_head(mx.sym.load(prefix + "-symbol.json"))
    args, aux = split_params(mx.nd.load(prefix + "-0000.params"), symbol)
    return symbol, args, aux


def engine_factory(symbol, args, aux, size):
    from agent.pipeline import Engine

    def make(batch):
        return Engine(symbol, args, aux, batch, size)
    return make


def run(model, paths, count, batches, sweep_images):
    from agent import quantize
    from bench import timing
    spec = model["input"]
    symbol, args, aux = load_probability_graph(model["prefix"])
    fused, args, aux = quantize.fuse_fp32(symbol, args, aux)
    best, engine, forward = timing.sweep(engine_factory(fused, args, aux, spec["size"]), spec["size"],
                                         batches, sweep_images)
    result = timing.time_pipeline(engine, spec, paths, count)
    result["forward_ms_by_batch"] = forward
    result["forward_ms"] = forward[str(best)]
    result.update(timing.stage_profile(paths, spec))
    return result


def run_ort(model, onnx_path, paths, count, batches, sweep_images, threads):
    """The agent on its ONNX Runtime engine (agent.engine_onnx.OrtEngine: its tuned session
    options) on the bench's export, through the same classify code path."""
    from agent.engine_onnx import OrtEngine, import_runtime
    from bench import timing
    ort = import_runtime()
    spec = model["input"]
    best, engine, forward = timing.sweep(lambda batch: OrtEngine(onnx_path, batch, threads), spec["size"], batches,
                                         sweep_images)
    result = timing.time_pipeline(engine, spec, paths, count)
    result.update({"forward_ms_by_batch": forward, "forward_ms": forward[str(best)], "version": ort.__version__,
                   "threads": threads})
    return result
