"""One measurement in a fresh process: ``python -m bench.worker JOB_JSON`` prints one JSON line.

A process per method keeps each one's threading settings (read once, when mxnet is
imported) and memory apart: the seed runs with MXNet's defaults, the agent and
INT8 with agent.pipeline.tune_environment().
"""
from __future__ import print_function, division, absolute_import

import json
import sys


def use_agent_dir():
    """BENCH_AGENT_DIR: the folder holding an alternative agent/ (to time a proposed patch)."""
    import os
    if os.environ.get("BENCH_AGENT_DIR"):
        sys.path.insert(0, os.environ["BENCH_AGENT_DIR"])


def main(argv):
    use_agent_dir()
    job = json.loads(argv[0])
    method = job["method"]
    if method in ("agent", "int8", "agent_ort"):
        from agent.pipeline import tune_environment
        tune_environment()
    if method == "seed":
        from bench import seed_method
        result = seed_method.run(job["model"], job["paths"], job["count"])
    elif method == "agent":
        from bench import agent_method
        result = agent_method.run(job["model"], job["paths"], job["count"], job["batches"], job["sweep_images"])
    elif method == "agent_ort":
        from bench import agent_method, ort_runner
        onnx_path = ort_runner.export(job["model"], job["out_dir"])
        result = agent_method.run_ort(job["model"], onnx_path, job["paths"], job["count"], job["batches"],
                                      job["sweep_images"], job["threads"])
    elif method == "whole":
        from bench import ort_runner, whole_process
        onnx_path = ort_runner.export(job["model"], job["out_dir"])
        result = whole_process.measure(job["model"], onnx_path, job["paths"], job["count"], job["build_dir"],
                                       job.get("repeat", 1))
    elif method == "int8":
        from bench import int8_method
        result = int8_method.run(job["model"], job["paths"], job["count"], job["batches"], job["sweep_images"],
                                 job.get("calib_mode"))
    elif method == "ort_export":
        from bench import ort_runner
        result = {"onnx": ort_runner.export(job["model"], job["out_dir"])}
    elif method == "flops":
        import mxnet as mx
        from bench.flops import flops_per_image
        symbol = mx.sym.load(job["model"]["prefix"] + "-symbol.json")
        result = {"flops": flops_per_image(symbol, job["model"]["input"]["size"])}
    else:
        raise SystemExit("unknown method %r" % method)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
