"""ONNX Runtime on the same weights: export the agent's probability graph with mx.onnx
(in the MXNet venv), then time it in the ONNX Runtime venv (.venv-bench, numpy 2)
with bench/ort_worker.py, through the same decode/preprocess and overlapped pipeline;
bench/ort_int8_worker.py quantizes that export statically there (the INT8 peer: the
quantizer needs onnx >= 1.16 and ml_dtypes, the exporter onnx < 1.16 and numpy < 1.24).
"""
from __future__ import print_function, division, absolute_import

import json
import os
import subprocess

from bench import process_group

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_VENV = os.path.join(ROOT, ".venv-bench")
REQUIREMENTS = os.path.join(ROOT, "bench", "requirements-ort.txt")


def ensure_venv():
    """Path of the ORT venv's python, creating it from bench/requirements-ort.txt once."""
    python = os.path.join(ORT_VENV, "bin", "python")
    stamp = os.path.join(ORT_VENV, ".bench-stamp")
    with open(REQUIREMENTS) as handle:
        want = handle.read()
    if os.path.exists(python) and os.path.exists(stamp) and open(stamp).read() == want:
        return python
    if not os.path.exists(python):
        subprocess.run(["python3", "-m", "venv", ORT_VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", REQUIREMENTS],
                   check=True)
    with open(stamp, "w") as handle:
        handle.write(want)
    return python


def export(model, out_dir):
    """Write out_dir/<name>.onnx (dynamic batch); weights are initializers, not graph inputs,
    so ONNX Runtime may constant-fold them (BatchNorm into Conv)."""
    import mxnet as mx
    import numpy as np
    import onnx
    from bench.agent_method import load_probability_graph
    path = os.path.join(out_dir, model["name"] + ".onnx")
    params_path = model["prefix"] + "-0000.params"
    if os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(params_path):
        return path
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    symbol, args, aux = load_probability_graph(model["prefix"])
    params = dict(args)
    params.update(aux)
    size = model["input"]["size"]
    tmp = path + ".tmp.onnx"
    mx.onnx.export_model(symbol, params, in_shapes=[(1, 3, size, size)], in_types=[np.float32],
                         onnx_file_path=tmp, dynamic=True, dynamic_input_shapes=[(None, 3, size, size)])
    graph = onnx.load(tmp)
    initializers = set(init.name for init in graph.graph.initializer)
    for value in [v for v in graph.graph.input if v.name in initializers]:
        graph.graph.input.remove(value)
    onnx.save(graph, tmp)
    os.replace(tmp, path)
    return path


def run(model, onnx_path, paths, count, batches, sweep_images, threads, worker="bench.ort_worker", timeout=None):
    """The ORT worker's result dict (runs in the ORT venv); worker bench.ort_int8_worker: the INT8 peer
    (ONNX Runtime static quantization of the same export)."""
    python = ensure_venv()
    job = {"onnx": onnx_path, "input": model["input"], "paths": paths, "count": count, "batches": batches,
           "sweep_images": sweep_images, "threads": threads}
    proc = process_group.run([python, "-m", worker, json.dumps(job)], timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError("ONNX Runtime worker failed: %s" % proc.stderr.strip()[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])
