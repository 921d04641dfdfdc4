"""Image bytes -> 8-bit BGR pixels, refusing what would exhaust memory or is broken.

The header's dimensions (PNG IHDR, JPEG SOFn, BMP, GIF, WebP, PNM) are read BEFORE
decoding, so a small file that claims 30000x30000 is refused without allocating
its pixels; OpenCV's own pixel limit is set to the same value as a second guard.
Decoding uses IMREAD_UNCHANGED, then: 16-bit -> 8-bit range, gray -> 3 channels,
alpha -> composited on white. A JPEG without its end marker or a PNG without IEND
(a truncated transfer) is refused rather than classified from gray fill.
"""
from __future__ import print_function, division, absolute_import

import os
import re
import struct

from agent.errors import InputError

MAX_PIXELS = int(os.environ.get("MXLAB_MAX_PIXELS", str(64 * 1000 * 1000)))
# OpenCV reads this once, when cv2 is imported (every agent module imports cv2 lazily,
# after this one): it guards the formats whose header we do not parse (TIFF, ...).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

# Netpbm: magic, then width and height as ASCII (comments between are rare; then unknown).
_PNM_HEADER = re.compile(br"^P([1-6])\s+(\d+)\s+(\d+)\s")
_SOF = set(range(0xC0, 0xD0)) - set([0xC4, 0xC8, 0xCC])


def header_size(data):
    """(width, height, format) from the header, or (None, None, format) when unknown."""
    head = bytearray(data[:64])
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height, "PNG"
    if data[:2] == b"\xff\xd8":
        width, height, _ = _jpeg_frame(data)
        return width, height, "JPEG"
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height), "BMP"
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height, "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(head) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            width = 1 + (head[24] | head[25] << 8 | head[26] << 16)
            height = 1 + (head[27] | head[28] << 8 | head[29] << 16)
            return width, height, "WebP"
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF, "WebP"
        if chunk == b"VP8L":
            bits = struct.unpack("<I", data[21:25])[0]
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF), "WebP"
    pnm = _PNM_HEADER.match(bytes(data[:64]))
    if pnm:
        return int(pnm.group(2)), int(pnm.group(3)), "PNM"
    return None, None, None


def _jpeg_frame(data):
    """(width, height, offset of the first scan) by walking the JPEG markers."""
    pos, size = 2, len(data)
    width = height = None
    while pos + 4 <= size:
        if data[pos:pos + 1] != b"\xff":
            return width, height, None
        marker = bytearray(data[pos + 1:pos + 2])[0]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in _SOF and pos + 9 <= size:
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
        if marker == 0xDA:
            return width, height, pos
        pos += 2 + length
    return width, height, None


def _check_complete(data, fmt):
    if fmt == "JPEG":
        scan = _jpeg_frame(data)[2]
        if scan is None:
            raise InputError("cannot decode image: corrupt or truncated JPEG (no scan data after its header)")
        if data.rfind(b"\xff\xd9") < scan:
            raise InputError("cannot decode image: truncated JPEG (no end-of-image marker after the scan data)")
    elif fmt == "PNG" and data.rfind(b"IEND") < 0:
        raise InputError("cannot decode image: truncated PNG (no IEND chunk)")


def decode(data, max_pixels=MAX_PIXELS):
    """Decode image bytes to a uint8 BGR array (H, W, 3); InputError says why not."""
    if not data:
        raise InputError("cannot decode image: empty file (0 bytes)")
    width, height, fmt = header_size(data)
    if width is not None and height is not None:
        if width <= 0 or height <= 0:
            raise InputError("cannot decode image: {0} header gives size {1}x{2}".format(fmt, width, height))
        if width * height > max_pixels:
            raise InputError("image too large: {0} header says {1}x{2} = {3} pixels, limit {4}"
                             .format(fmt, width, height, width * height, max_pixels))
    _check_complete(data, fmt)
    import cv2
    import numpy as np
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise InputError("cannot decode image: {0}".format(str(err).strip().splitlines()[-1]))
    if image is None:
        raise InputError("cannot decode image: not a supported image format, or corrupt ({0} bytes{1})"
                         .format(len(data), ", looks like " + fmt if fmt else ""))
    if image.size == 0 or image.shape[0] * image.shape[1] > max_pixels:
        raise InputError("image too large or empty: {0}x{1}, limit {2} pixels"
                         .format(image.shape[1], image.shape[0], max_pixels))
    image = to_bgr8(image)
    if fmt == "JPEG":
        image = apply_orientation(image, jpeg_orientation(data))
    return image


def jpeg_orientation(data):
    """The EXIF Orientation (1..8) of a JPEG, 1 when absent or unreadable.

    IMREAD_UNCHANGED (needed for 16-bit and alpha) skips OpenCV's own EXIF
    rotation, so a phone photo taken upright would reach the model on its side.
    """
    pos = 2
    while pos + 4 <= len(data) and data[pos:pos + 1] == b"\xff":
        marker = bytearray(data[pos + 1:pos + 2])[0]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xDA:
            break
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\0\0":
            try:
                return _tiff_orientation(segment[6:])
            except struct.error:
                return 1
        pos += 2 + length
    return 1


def _tiff_orientation(tiff):
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return 1
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack(order + "HH", tiff[entry:entry + 4])
        if tag == 0x0112 and kind == 3:  # Orientation, SHORT
            value = struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def apply_orientation(image, orientation):
    """Turn pixels stored with EXIF ``orientation`` upright."""
    import cv2
    import numpy as np
    if orientation in (5, 6, 7, 8):
        image = np.ascontiguousarray(image.transpose(1, 0, 2))  # transpose: orientation 5
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation == 2:
        image = cv2.flip(image, 1)
    elif orientation == 3:
        image = cv2.flip(image, -1)
    elif orientation == 4:
        image = cv2.flip(image, 0)
    return image


def to_bgr8(image):
    """Any decoded array (8/16-bit or float; gray, gray+alpha, BGR, BGRA) -> uint8 BGR."""
    import numpy as np
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image  # already 8-bit BGR (every colour JPEG): the float round trip below is a no-op
    if image.dtype == np.uint8:
        pixels = image.astype(np.float32)
    elif image.dtype == np.uint16:
        pixels = image.astype(np.float32) / 257.0  # 65535 -> 255, and v*257 -> v exactly
    elif image.dtype in (np.float32, np.float64):
        pixels = image.astype(np.float32)
        if pixels.size and float(np.nanmax(pixels)) <= 1.0:
            pixels = pixels * 255.0
    else:
        raise InputError("cannot decode image: unsupported pixel type {0}".format(image.dtype))
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    channels = pixels.shape[2]
    if channels == 2:  # gray + alpha
        pixels = np.concatenate([pixels[:, :, :1]] * 3 + [pixels[:, :, 1:]], axis=2)
        channels = 4
    if channels == 4:
        alpha = pixels[:, :, 3:4] / 255.0
        pixels = pixels[:, :, :3] * alpha + 255.0 * (1.0 - alpha)  # composite on white
    elif channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif channels != 3:
        raise InputError("cannot decode image: {0} channels, expected 1 to 4".format(channels))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
