"""The seed tutorial's method: Module bound at batch 1, cv2 preprocessing, one forward
per image, sequentially (MXNet's default settings, as the tutorial runs it)."""
from __future__ import print_function, division, absolute_import

import time


def run(model, paths, count, rounds=3):
    import cv2
    import mxnet as mx
    import numpy as np
    from collections import namedtuple
    from bench.timing import cycle
    Batch = namedtuple("Batch", ["data"])
    sym, arg_params, aux_params = mx.model.load_checkpoint(model["prefix"], 0)
    mod = mx.mod.Module(symbol=sym, context=mx.cpu(), label_names=None)
    mod.bind(for_training=False, data_shapes=[("data", (1, 3, 224, 224))], label_shapes=mod._label_shapes)
    mod.set_params(arg_params, aux_params, allow_missing=True)
    stages = {"decode": 0.0, "preprocess": 0.0, "forward": 0.0}

    def classify(path):
        t0 = time.time()
        img = cv2.imread(path)
        t1 = time.time()
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (224, 224))
        img = np.swapaxes(img, 0, 2)
        img = np.swapaxes(img, 1, 2)
        img = img[np.newaxis, :]
        t2 = time.time()
        mod.forward(Batch([mx.nd.array(img)]))
        prob = mod.get_outputs()[0].asnumpy()
        t3 = time.time()
        stages["decode"] += t1 - t0
        stages["preprocess"] += t2 - t1
        stages["forward"] += t3 - t2
        return int(np.argmax(prob))

    items = cycle(paths, count)
    for path in items[:2]:  # warm-up: first forwards create the oneDNN primitives
        classify(path)
    # best of ``rounds`` runs (as for every method): a shared machine only adds time
    per_round = max(1, count // rounds)
    best, best_stages = None, None
    for start in range(0, rounds * per_round, per_round):
        for key in stages:
            stages[key] = 0.0
        began = time.time()
        for path in cycle(paths, start + per_round)[start:]:
            classify(path)
        wall = (time.time() - began) / per_round
        if best is None or wall < best:
            best, best_stages = wall, dict(stages)
    return {"ips": 1.0 / best, "ms_per_image": 1000.0 * best, "batch": 1, "images_timed": rounds * per_round,
            "rounds": rounds, "decode_ms": 1000.0 * best_stages["decode"] / per_round,
            "preprocess_ms": 1000.0 * best_stages["preprocess"] / per_round,
            "forward_ms": 1000.0 * best_stages["forward"] / per_round}
