"""Small JPEG thumbnails of the operator's local images, for embedding in a report.

A report's size then grows with the thumbnails (a few KB each), not with the originals. Pillow, not
OpenCV: it imports in ~20 ms where cv2 and numpy cost ~0.2 s plus their teardown, a quarter of a
one-photo `mxlab run`; like OpenCV it decodes outside the GIL, so the report's threads still help.
"""
import base64
import io
import math
import threading
import warnings
from pathlib import Path

MAX_SIDE = 192  # px: sharp at the report's 96 px cells on a 2x screen
QUALITY = 80

# catch_warnings swaps process-wide state: the report's threads take turns to open a file.
_OPENING = threading.Lock()


class ThumbnailError(Exception):
    """Why there is no thumbnail for an image: str() names the file; `reason` is what the report
    shows beside the image's name (the path only where it says where we looked)."""

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason or message


def thumbnail_jpeg(path, max_side=MAX_SIDE, quality=QUALITY):
    """JPEG bytes of the image at `path`, upright as its EXIF says, scaled so its longer side is at
    most `max_side` px (never scaled up).

    Raises ThumbnailError naming the path when the file is missing, unreadable, no image Pillow
    decodes, damaged (a truncated JPEG gets a reason, not half a picture) or too large to decode.
    """
    # Imported here, not at the top: a run with no local photo pays nothing for Pillow.
    from PIL import Image, ImageOps

    path = Path(path)
    with _open(path, Image) as image:
        try:
            _draft(image, max_side)
            limit = Image.MAX_IMAGE_PIXELS  # Pillow's bound (~89 MP), on what will really be decoded
            if limit and image.width * image.height > limit:
                raise _too_large(path, image.size)
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16"):  # 16-bit grey: its top 8 bits (convert() clips to white)
                image = image.convert("I").point(lambda v: v / 256).convert("L")
            image = image.convert("RGB")  # no alpha, palette or CMYK
            # LANCZOS with Pillow's default reducing_gap: no aliasing when shrinking a lot.
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality)
        except ThumbnailError:
            raise
        except Exception as exc:  # Pillow's decoders raise many kinds for a damaged file
            raise ThumbnailError("cannot decode %s: %s" % (path, exc), "cannot decode it: %s" % exc)
    return out.getvalue()


def _open(path, Image):
    """The opened (not yet decoded) image at `path`, or ThumbnailError saying why not."""
    try:
        with _OPENING, warnings.catch_warnings():
            # Pillow warns of a possible decompression bomb from the stored size alone, but a JPEG
            # that big still decodes small after draft(): the decoded size is judged after it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except FileNotFoundError:
        raise ThumbnailError("not found on this machine: %s" % path)
    except Image.UnidentifiedImageError:
        raise ThumbnailError("not an image Pillow can decode: %s" % path, "not an image Pillow can decode")
    except Image.DecompressionBombError as exc:
        raise ThumbnailError("too large to decode safely: %s: %s" % (path, exc),
                             "too large to decode safely: %s" % exc)
    except OSError as exc:
        why = exc.strerror or exc
        raise ThumbnailError("cannot read %s: %s" % (path, why), "cannot read it: %s" % why)
    except Exception as exc:  # a header a format plugin chokes on
        raise ThumbnailError("cannot decode %s: %s" % (path, exc), "cannot decode it: %s" % exc)


def _draft(image, max_side):
    """Let libjpeg decode a JPEG at 1/2, 1/4 or 1/8 scale, the smallest whose sides still reach the
    thumbnail's: a 12 MP photo's thumbnail then costs a tenth of a full decode. Other formats
    ignore it and are decoded whole."""
    w, h = image.size
    scale = float(max_side) / max(w, h)
    if scale < 1.0:
        image.draft("RGB", (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))


def _too_large(path, size):
    why = "%d x %d px, more than a thumbnail should decode" % size
    return ThumbnailError("too large to decode safely: %s: %s" % (path, why), "too large to decode safely: %s" % why)


def data_uri(jpeg):
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
