"""The agent's INT8 path (agent.quantize): oneDNN quantization calibrated on sample photos,
timed in the same overlapped pipeline; top-1 agreement with the fused FP32 graph on
every bench photo (and separately on the photos not used for calibration)."""
from __future__ import print_function, division, absolute_import


def run(model, paths, count, batches, sweep_images, calib_mode=None):
    from agent import classify, download, inputs, quantize
    from bench import timing
    from bench.agent_method import engine_factory, load_probability_graph
    spec = model["input"]
    size = spec["size"]
    symbol, args, aux = load_probability_graph(model["prefix"])
    calib_paths = paths[::2]
    # As `agent classify --int8` calibrates (there: the first 16 inputs; here: every other photo).
    calibration = classify.calibration_batch(inputs.expand(calib_paths, download.Policy()), spec,
                                             limit=len(calib_paths))
    qsym, qargs, qaux = quantize.quantize_int8(symbol, args, aux, calibration, calib_mode=calib_mode)
    best, engine, forward = timing.sweep(engine_factory(qsym, qargs, qaux, size), size, batches, sweep_images)
    int8_top1 = timing.classify(engine, spec, paths)
    result = timing.time_pipeline(engine, spec, paths, count)
    del engine
    fused, fargs, faux = quantize.fuse_fp32(symbol, args, aux)
    fp32_engine = engine_factory(fused, fargs, faux, size)(best)
    fp32_top1 = timing.classify(fp32_engine, spec, paths)
    same = [a == b for a, b in zip(int8_top1, fp32_top1)]
    held_out = [s for i, s in enumerate(same) if i % 2 == 1]
    result.update({"forward_ms_by_batch": forward, "forward_ms": forward[str(best)],
                   "top1_agreement": sum(same) / float(len(same)),
                   "top1_agreement_held_out": sum(held_out) / float(len(held_out)),
                   "agreement_photos": len(same), "calibration_photos": len(calib_paths),
                   "calib_mode": calib_mode or ("entropy" if quantize.depthwise_separable(symbol) else "naive"),
                   "fp32_layers": quantize.default_exclusions(quantize.fold_pad_into_conv(symbol, args)[0])})
    return result
