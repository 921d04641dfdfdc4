"""Helpers shared by the methods: the input list, the agent's per-image preparation,
the batch sweep and the overlapped-pipeline timing. No mxnet import here: the ONNX
Runtime worker (numpy 2 venv) uses this module too.
"""
from __future__ import print_function, division, absolute_import

import time


def cycle(paths, count):
    """``count`` paths, repeating the photo set in order."""
    return [paths[i % len(paths)] for i in range(count)]


def agent_prepare(spec, profile=None):
    """path -> float32 (3, S, S) exactly as the agent does it (agent.decode + agent.preprocess)."""
    from agent import decode, preprocess

    def prepare(path):
        began = time.time()
        with open(path, "rb") as handle:
            pixels = decode.decode(handle.read())
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


def time_pipeline(engine, prepare, paths, count, rounds=3):
    """images/s of the overlapped pipeline (agent.pipeline.run): ``count`` inputs split in
    ``rounds`` runs, the best run counts (min-of-repeats: a shared machine only adds time)."""
    from agent import pipeline
    items = cycle(paths, count)
    per_round = max(1, (count // rounds) // engine.batch_size) * engine.batch_size
    list(pipeline.run(items[:engine.batch_size], prepare, engine))  # warm: first batch allocates
    best, best_stats, top1 = None, None, []
    for start in range(0, rounds * per_round, per_round):
        chunk_items = cycle(paths, start + per_round)[start:]
        stats = {}
        began = time.time()
        for chunk, probs, errors in pipeline.run(chunk_items, prepare, engine, stats):
            for row, error in zip(probs, errors):
                if error is not None:
                    raise RuntimeError("bench input failed: %s" % error)
                top1.append(int(row.argmax()))
        wall = (time.time() - began) / len(chunk_items)
        if best is None or wall < best:
            best, best_stats = wall, stats
        best_stats["images"] = len(chunk_items)
    n = best_stats["images"]
    return {"ips": 1.0 / best, "ms_per_image": 1000.0 * best, "batch": engine.batch_size,
            "images_timed": rounds * per_round, "rounds": rounds,
            "forward_wait_ms": 1000.0 * best_stats.get("forward_s", 0.0) / n,
            "prepare_thread_ms": 1000.0 * best_stats.get("prepare_s", 0.0) / n}, top1


def top1_of(engine, prepare, paths):
    """top-1 class of every path, in order."""
    from agent import pipeline
    out = []
    for chunk, probs, errors in pipeline.run(paths, prepare, engine):
        out.extend(int(row.argmax()) for row in probs)
    return out
