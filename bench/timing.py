"""Helpers shared by the methods: the input list, the stage profile, the batch sweep
and the timing of `agent classify`'s own code path (agent.classify.run: inputs read,
decoded and preprocessed in its prefetch thread, batches through an agent
Classifier, records written). No mxnet import here: the ONNX Runtime worker (numpy 2
venv) uses this module too, with its engine in place of MXNet's.
"""
from __future__ import print_function, division, absolute_import

import time


def cycle(paths, count):
    """``count`` paths, repeating the photo set in order."""
    return [paths[i % len(paths)] for i in range(count)]


def agent_prepare(spec, profile=None):
    """path -> float32 (3, S, S) exactly as the agent does it (agent.inputs + decode + preprocess)."""
    from agent import decode, inputs, preprocess

    def prepare(path):
        began = time.time()
        pixels = decode.decode(inputs.read_regular_file(path, inputs.MAX_INPUT_BYTES))
        decoded = time.time()
        tensor = preprocess.prepare(pixels, spec)
        if profile is not None:
            profile["decode_s"] = profile.get("decode_s", 0.0) + decoded - began
            profile["preprocess_s"] = profile.get("preprocess_s", 0.0) + time.time() - decoded
        return tensor
    return prepare


def stage_profile(paths, spec, samples=8):
    """ms per image of decode and of preprocess, measured sequentially (no overlap)."""
    profile = {}
    prepare = agent_prepare(spec, profile)
    for path in cycle(paths, samples):
        prepare(path)
    return {"decode_ms": 1000.0 * profile["decode_s"] / samples,
            "preprocess_ms": 1000.0 * profile["preprocess_s"] / samples}


def forward_ms(make_engine, size, batch, images, rounds=3):
    """ms per image of forward alone at ``batch``: two warm-up batches, then the best of
    ``rounds`` timings of ~images/rounds images each (a shared machine only adds time)."""
    import numpy as np
    engine = make_engine(batch)
    data = np.random.RandomState(0).uniform(0, 255, (batch, 3, size, size)).astype(np.float32)
    engine.forward(data)  # first two: oneDNN primitive creation, memory planning
    engine.forward(data)
    per_round = max(1, images // (batch * rounds))
    best = float("inf")
    for _ in range(rounds):
        began = time.time()
        for _ in range(per_round):
            engine.forward(data)
        best = min(best, (time.time() - began) / (per_round * batch))
    return 1000.0 * best, engine


def sweep(make_engine, size, batches, images):
    """(best batch, engine bound at it, {batch: forward ms/image})."""
    results, best, best_engine = {}, None, None
    for batch in batches:
        ms, engine = forward_ms(make_engine, size, batch, images)
        results[str(batch)] = round(ms, 2)
        if best is None or ms < results[str(best)]:
            best, best_engine = batch, engine
        else:
            del engine
    return best, best_engine, results


class _Top1Writer(object):
    """agent.results.ResultWriter's interface, keeping the top-1 class index of each record."""

    def __init__(self):
        self.top1, self.count, self.errors = [], 0, 0

    def write(self, record):
        if "error" in record:
            raise RuntimeError("bench input %s failed: %s" % (record["image"], record["error"]))
        self.top1.append(record["top"][0]["index"])
        self.count += 1


def classify(engine, spec, paths, stats=None):
    """Top-1 class index of every path, in order, through agent.classify.run, as `agent classify`
    runs it (placeholder labels: the bench needs class indices only)."""
    import numpy as np
    from agent import classify as agent_classify, download, inputs
    from agent.predict import Classifier
    size = spec["size"]
    classes = engine.forward(np.zeros((engine.batch_size, 3, size, size), dtype=np.float32)).shape[1]
    classifier = Classifier("bench", spec, engine, [("c%d" % i, "c%d" % i) for i in range(classes)])
    writer = _Top1Writer()
    agent_classify.run(inputs.expand(paths, download.Policy()), [classifier], writer, engine.batch_size, 1, stats)
    return writer.top1


def time_pipeline(engine, spec, paths, count, rounds=3):
    """images/s of `agent classify`'s code path (agent.classify.run): ``count`` inputs split in
    ``rounds`` runs, the best run counts (min-of-repeats: a shared machine only adds time)."""
    items = cycle(paths, count)
    per_round = max(1, (count // rounds) // engine.batch_size) * engine.batch_size
    classify(engine, spec, items[:engine.batch_size])  # warm: the first batch allocates
    best, best_stats = None, None
    for start in range(0, rounds * per_round, per_round):
        chunk_items = cycle(paths, start + per_round)[start:]
        stats = {}
        began = time.time()
        classify(engine, spec, chunk_items, stats)
        wall = (time.time() - began) / len(chunk_items)
        if best is None or wall < best:
            best, best_stats = wall, stats
        best_stats["images"] = len(chunk_items)
    n = best_stats["images"]
    return {"ips": 1.0 / best, "ms_per_image": 1000.0 * best, "batch": engine.batch_size,
            "images_timed": rounds * per_round, "rounds": rounds,
            "forward_wait_ms": 1000.0 * best_stats.get("forward_s", 0.0) / n,
            "prepare_thread_ms": 1000.0 * best_stats.get("prepare_s", 0.0) / n}
