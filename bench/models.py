"""The models the bench runs: the real EfficientNet-Lite0 from the local zoo, and
random-weight checkpoints of the seed's architectures (bench.architectures).

Each is a dict: name, prefix (checkpoint path without -symbol.json / -0000.params),
input (the catalogue's preprocessing spec), real_weights.
"""
from __future__ import print_function, division, absolute_import

import json
import os

REAL = ("efficientnet-lite0",)
ORDER = ("efficientnet-lite0", "inception-bn", "vgg16", "resnet-152")


def _catalogue(root):
    with open(os.path.join(root, "agent", "catalogue.json")) as handle:
        return json.load(handle)["models"]


def resolve(name, root, zoo_dir, build_dir):
    """The model's dict; builds a random-weight checkpoint on first use."""
    catalogue = _catalogue(root)
    if name in REAL:
        prefix = os.path.join(zoo_dir, name, name)
        if not os.path.exists(prefix + "-0000.params"):
            raise RuntimeError("%s is not in the local zoo %s: run scripts/build-local-zoo %s"
                               % (name, zoo_dir, zoo_dir))
        return {"name": name, "prefix": prefix, "input": catalogue[name]["input"], "real_weights": True}
    from bench import architectures
    prefix = architectures.build(name, os.path.join(build_dir, "zoo"))
    return {"name": name, "prefix": prefix, "input": catalogue[name]["input"], "real_weights": False}
