"""Runs inside the ONNX Runtime venv (numpy 2, no mxnet): times one exported model.

Input: one JSON argument (see bench.ort_runner.run); output: one JSON line.
"""
from __future__ import print_function, division, absolute_import

import json
import sys


class OrtEngine(object):
    """agent.pipeline.Engine's interface (batch_size, forward) over an ORT session."""

    def __init__(self, session, batch_size):
        self.session = session
        self.batch_size = batch_size
        self.input_name = session.get_inputs()[0].name

    def forward(self, batch):
        return self.session.run(None, {self.input_name: batch})[0]


def main(argv):
    import onnxruntime as ort
    from bench.worker import use_agent_dir
    use_agent_dir()
    from bench import timing
    job = json.loads(argv[0])
    options = ort.SessionOptions()
    options.intra_op_num_threads = job["threads"]
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(job["onnx"], options, providers=["CPUExecutionProvider"])
    size = job["input"]["size"]
    best, engine, forward = timing.sweep(lambda batch: OrtEngine(session, batch), size, job["batches"],
                                         job["sweep_images"])
    result = timing.time_pipeline(engine, job["input"], job["paths"], job["count"])
    result.update({"forward_ms_by_batch": forward, "forward_ms": forward[str(best)], "version": ort.__version__,
                   "threads": job["threads"]})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
