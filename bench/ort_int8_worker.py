"""Runs inside the ONNX Runtime venv (numpy 2, onnx, no mxnet): the INT8 peer.

ONNX Runtime static quantization (onnxruntime.quantization.quantize_static) of the exported
FP32 model, calibrated on every other bench photo (the photos the agent's INT8 calibrates on,
bench/int8_method.py), then timed through `agent classify`'s code path like bench/ort_worker.py;
top-1 agreement with the FP32 ONNX Runtime session on every photo (and on the held-out half).

Input: one JSON argument (see bench.ort_runner.run_int8); output: one JSON line.
"""
from __future__ import print_function, division, absolute_import

import json
import os
import sys

# What measured best on the bench machine (AVX2, no VNNI): QDQ with per-channel weights;
# reduce_range keeps U8S8's 16-bit intermediate sums (VPMADDUBSW) from saturating.
CONFIG = {"format": "QDQ", "per_channel": True, "reduce_range": True, "calibrate": "MinMax"}


class _Photos(object):
    """onnxruntime.quantization.CalibrationDataReader over preprocessed photos, one at a time."""

    def __init__(self, input_name, tensors):
        self.items = iter([{input_name: t[None]} for t in tensors])

    def get_next(self):
        return next(self.items, None)


def quantize(onnx_path, tensors, config, out_path):
    """Write the statically quantized model to out_path (once per config and FP32 model)."""
    import onnxruntime as ort
    from onnxruntime import quantization as q
    if os.path.exists(out_path) and os.path.getmtime(out_path) >= os.path.getmtime(onnx_path):
        return out_path
    prepared = out_path + ".pre.onnx"
    q.quant_pre_process(onnx_path, prepared, skip_symbolic_shape=True)  # shapes + folding, as the docs advise
    name = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).get_inputs()[0].name
    tmp = out_path + ".tmp.onnx"
    q.quantize_static(prepared, tmp, _Photos(name, tensors),
                      quant_format=getattr(q.QuantFormat, config["format"]), per_channel=config["per_channel"],
                      reduce_range=config["reduce_range"], activation_type=q.QuantType.QUInt8,
                      weight_type=q.QuantType.QInt8,
                      calibrate_method=getattr(q.CalibrationMethod, config["calibrate"]))
    os.remove(prepared)
    os.replace(tmp, out_path)
    return out_path


def main(argv):
    import onnxruntime as ort
    from bench.worker import use_agent_dir
    use_agent_dir()
    from bench import timing
    from bench.ort_worker import OrtEngine
    job = json.loads(argv[0])
    config = dict(CONFIG, **job.get("config", {}))
    spec, paths, size = job["input"], job["paths"], job["input"]["size"]
    calib_paths = paths[::2]
    prepare = timing.agent_prepare(spec)
    tag = "-".join(str(config[k]) for k in sorted(config)).lower()
    out_path = os.path.splitext(job["onnx"])[0] + ".int8-" + tag + ".onnx"
    quantize(job["onnx"], [prepare(p) for p in calib_paths], config, out_path)

    def session(path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = job["threads"]
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    int8 = session(out_path)
    best, engine, forward = timing.sweep(lambda batch: OrtEngine(int8, batch), size, job["batches"],
                                         job["sweep_images"])
    int8_top1 = timing.classify(engine, spec, paths)
    result = timing.time_pipeline(engine, spec, paths, job["count"])
    fp32_top1 = timing.classify(OrtEngine(session(job["onnx"]), best), spec, paths)
    same = [a == b for a, b in zip(int8_top1, fp32_top1)]
    held_out = [s for i, s in enumerate(same) if i % 2 == 1]
    result.update({"forward_ms_by_batch": forward, "forward_ms": forward[str(best)], "version": ort.__version__,
                   "threads": job["threads"], "config": config, "onnx_int8": out_path,
                   "top1_agreement": sum(same) / float(len(same)),
                   "top1_agreement_held_out": sum(held_out) / float(len(held_out)) if held_out else None,
                   "agreement_photos": len(same), "calibration_photos": len(calib_paths)})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
