"""The bench's photo set: the lab's sample photos plus crops, flips and rescales of them.

Four photos are too few to say "95% top-1 agreement" about, so each sample photo
also gives seven variants (corner crops, mirror, half size, darker, rotated):
32 real-photo JPEGs, written once under build/bench/photos. All methods read
the same files.
"""
from __future__ import print_function, division, absolute_import

import glob
import os


def _variants(bgr):
    import cv2
    import numpy as np
    h, w = bgr.shape[:2]
    yield "full", bgr
    yield "topleft", bgr[: h * 3 // 4, : w * 3 // 4]
    yield "bottomright", bgr[h // 4:, w // 4:]
    yield "mirror", bgr[:, ::-1]
    yield "half", cv2.resize(bgr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    yield "dark", np.clip(bgr.astype(np.float32) * 0.6, 0, 255).astype(np.uint8)
    yield "rot90", np.ascontiguousarray(np.rot90(bgr))
    yield "centre", bgr[h // 8: h * 7 // 8, w // 8: w * 7 // 8]


def photo_set(source_dir, out_dir):
    """Sorted paths of the variants of every *.jpg in source_dir (made once)."""
    import cv2
    sources = sorted(glob.glob(os.path.join(source_dir, "*.jpg")))
    if not sources:
        raise RuntimeError("no sample photos in %s: run `python -m localzoo.photos %s`" % (source_dir, source_dir))
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    paths = []
    for source in sources:
        stem = os.path.splitext(os.path.basename(source))[0]
        image = None
        for variant in ("full", "topleft", "bottomright", "mirror", "half", "dark", "rot90", "centre"):
            path = os.path.join(out_dir, "%s-%s.jpg" % (stem, variant))
            paths.append(path)
        if all(os.path.exists(p) and os.path.getmtime(p) >= os.path.getmtime(source) for p in paths[-8:]):
            continue
        image = cv2.imread(source, cv2.IMREAD_COLOR)
        for name, pixels in _variants(image):
            cv2.imwrite(os.path.join(out_dir, "%s-%s.jpg" % (stem, name)), pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return paths
