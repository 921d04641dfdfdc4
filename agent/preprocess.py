"""Per-model preprocessing from the catalogue's "input" block.

BGR uint8 pixels -> (color order) -> square centre crop of crop_fraction of the
short side -> resize to size x size with the named interpolation -> subtract mean,
divide by std (both in the model's channel order) -> float32 CHW. Cropping before
resizing keeps the aspect ratio: squashing a whole wide photo into a square
changes what the network sees (and its answer).
"""
from __future__ import print_function, division, absolute_import


def _interpolation(name):
    import cv2
    return {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}[name]


def centre_crop(image, fraction):
    """The centred square of side round(fraction * short side)."""
    height, width = image.shape[:2]
    side = max(1, int(round(min(height, width) * fraction)))
    top = (height - side) // 2
    left = (width - side) // 2
    return image[top:top + side, left:left + side]


def prepare(bgr, spec):
    """float32 array (3, size, size) for one model, from uint8 BGR pixels."""
    import cv2
    import numpy as np
    # Crop and resize first: the BGR->RGB swap is per pixel and the resize per channel,
    # so swapping after the resize gives the same numbers on size^2 pixels, not the photo's.
    image = centre_crop(bgr, spec.get("crop_fraction", 1.0))
    size = spec["size"]
    image = cv2.resize(image, (size, size), interpolation=_interpolation(spec.get("interpolation", "area")))
    if spec.get("color", "RGB") == "RGB":
        image = image[:, :, ::-1]
    pixels = image.transpose(2, 0, 1).astype(np.float32)  # CHW in one copy
    mean = np.asarray(spec.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(spec.get("std", [1.0, 1.0, 1.0]), dtype=np.float32).reshape(3, 1, 1)
    if mean.any():
        pixels -= mean
    if (std != 1.0).any():
        pixels /= std
    return pixels
