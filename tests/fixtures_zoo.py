"""Session fixtures for the local model zoo: real EfficientNet-Lite weights converted to
MXNet, and real sample photos, under the repo's git-ignored build/ folder.

scripts/setup pre-builds both there; the builder is a no-op on a complete build from
the same inputs, so a test session only pays for hashing the inputs.
"""
import json
import os

import cv2
import numpy as np
import pytest

from localzoo.build import build_zoo
from localzoo.photos import write_photos
from tests.paths import REPO

BUILD_DIR = REPO / "build"
# What the local zoo holds and the sample photos are, and the ImageNet classes a demo run over them finds.
ZOO_MODELS = {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"}
SAMPLE_PHOTOS = {"chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"}
DOMESTIC_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


@pytest.fixture(scope="session")
def local_zoo():
    """Path of a complete local zoo (synset.txt, efficientnet-lite{0,1,2}/, catalogue.json)."""
    zoo = BUILD_DIR / "zoo"
    build_zoo(zoo)
    return zoo


@pytest.fixture(scope="session")
def unpinned_zoo(local_zoo, tmp_path_factory):
    """The local zoo as the MXNet model zoo is: the same files (links), a catalogue without sha256 pins."""
    zoo = tmp_path_factory.mktemp("unpinned-zoo")
    for entry in os.listdir(str(local_zoo)):
        if entry != "catalogue.json":
            os.symlink(str(local_zoo / entry), str(zoo / entry))
    document = json.loads((local_zoo / "catalogue.json").read_text())
    for model in document["models"].values():
        model["sha256"] = {"symbol": None, "params": None, "synset": None}
    (zoo / "catalogue.json").write_text(json.dumps(document, indent=2))
    return zoo


@pytest.fixture(scope="session")
def sample_photos():
    """Path of a folder holding chelsea.jpg, coffee.jpg, astronaut.jpg and rocket.jpg."""
    photos = BUILD_DIR / "photos"
    write_photos(photos)
    return photos


def eval_preprocess(path, spec):
    """(1, 3, size, size) float32 of the photo at ``path`` for a catalogue ``input`` spec:
    centre crop, resize, RGB -- written here, independently of the agent's preprocessing."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    rgb = bgr[:, :, ::-1]
    h, w = rgb.shape[:2]
    crop = int(round(min(h, w) * spec["crop_fraction"]))
    top, left = (h - crop) // 2, (w - crop) // 2
    patch = rgb[top:top + crop, left:left + crop]
    size = spec["size"]
    resized = cv2.resize(np.ascontiguousarray(patch), (size, size),
                         interpolation=INTERPOLATIONS[spec["interpolation"]])
    x = (resized.astype(np.float32) - np.array(spec["mean"], np.float32)) / np.array(spec["std"], np.float32)
    return x.transpose(2, 0, 1)[np.newaxis]
