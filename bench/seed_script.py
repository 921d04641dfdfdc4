"""The seed tutorial's method as the process a user runs (the whole-process baseline):
Module bound at batch 1, cv2 preprocessing, one forward per photo, MXNet's defaults.

    python -m bench.seed_script PREFIX SIZE PHOTO...
"""
import sys
from collections import namedtuple

import cv2
import mxnet as mx
import numpy as np


def main(argv):
    prefix, size, paths = argv[0], int(argv[1]), argv[2:]
    Batch = namedtuple("Batch", ["data"])
    sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, 0)
    mod = mx.mod.Module(symbol=sym, context=mx.cpu(), label_names=None)
    mod.bind(for_training=False, data_shapes=[("data", (1, 3, size, size))], label_shapes=mod._label_shapes)
    mod.set_params(arg_params, aux_params, allow_missing=True)
    for path in paths:
        img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (size, size))
        img = np.swapaxes(np.swapaxes(img, 0, 2), 1, 2)[np.newaxis, :]
        mod.forward(Batch([mx.nd.array(img)]))
        print(path, int(np.argmax(mod.get_outputs()[0].asnumpy())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
