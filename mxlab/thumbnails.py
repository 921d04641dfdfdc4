"""Small JPEG thumbnails of the operator's local images, for embedding in a report.

A report's size then grows with the thumbnails (a few KB each), not with the originals.
"""
import base64
from pathlib import Path

MAX_SIDE = 192  # px: sharp at the report's 96 px cells on a 2x screen
QUALITY = 80


class ThumbnailError(Exception):
    """Why there is no thumbnail for an image: str() names the file; `reason` is what the report
    shows beside the image's name (the path only where it says where we looked)."""

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason or message


def thumbnail_jpeg(path, max_side=MAX_SIDE, quality=QUALITY):
    """JPEG bytes of the image at `path`, scaled so its longer side is at most `max_side` px.

    Raises ThumbnailError naming the path when the file is missing or is no image OpenCV reads.
    """
    # Imported here, not at the top: start-up time of one-photo runs (cv2 and numpy cost ~0.2 s).
    import cv2
    import numpy as np

    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise ThumbnailError("not found on this machine: %s" % path)
    except OSError as exc:
        raise ThumbnailError("cannot read %s: %s" % (path, exc.strerror or exc), "cannot read it: %s"
                             % (exc.strerror or exc))
    image = _decode_at_least(data, max_side) if data.size else None
    if image is None:
        raise ThumbnailError("not an image OpenCV can decode: %s" % path, "not an image OpenCV can decode")
    h, w = image.shape[:2]
    scale = min(1.0, float(max_side) / max(h, w))
    if scale < 1.0:
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)  # area: no aliasing when shrinking
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ThumbnailError("could not encode a thumbnail of %s" % path, "could not encode a thumbnail")
    return encoded.tobytes()


def _decode_at_least(data, max_side):
    """The image, decoded at the smallest scale whose longer side still reaches `max_side`; None if
    it is no image. The colour modes apply the EXIF orientation, as a viewer would, and drop alpha."""
    import cv2  # see thumbnail_jpeg

    # libjpeg decodes at 1/8, 1/4 or 1/2 scale for a fraction of the work: a 12 MP photo's thumbnail
    # then costs a tenth of a full decode. Other formats are decoded whole and scaled by OpenCV.
    for flag in (cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_COLOR_2):
        image = cv2.imdecode(data, flag)
        if image is None:
            return None
        if max(image.shape[:2]) >= max_side:
            return image
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def data_uri(jpeg):
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
