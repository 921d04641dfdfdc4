"""Safe decoding: header size checks before decoding, truncation, bit depth, gray and alpha."""
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest

from agent import decode
from agent.errors import InputError
from tests.checkpoints import png_claiming
from tests.paths import REPO


def photo_like(height=60, width=80):
    """A smooth, textured uint8 BGR test image (real encoders, real decoders)."""
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([(rows * 3) % 256, (cols * 5) % 256, ((rows + cols) * 2) % 256], axis=2)
    return image.astype(np.uint8)


def encoded(image, ext, params=()):
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def jpeg_claiming(width, height):
    """A real JPEG with its SOF0 frame size rewritten to width x height."""
    data = bytearray(encoded(photo_like(16, 16), ".jpg"))
    pos = data.index(b"\xff\xc0")
    data[pos + 5:pos + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_header_claiming_huge_size_is_refused_before_decoding(fmt):
    data = png_claiming(30000, 30000) if fmt == "png" else jpeg_claiming(30000, 30000)
    assert decode.header_size(data)[:2] == (30000, 30000)
    with pytest.raises(InputError, match=r"30000x30000.*limit"):
        decode.decode(data)


def test_header_size_reads_real_files():
    image = photo_like(37, 53)
    for ext in (".png", ".jpg", ".bmp", ".webp"):
        width, height, _ = decode.header_size(encoded(image, ext))
        assert (width, height) == (53, 37), ext


def test_truncated_jpeg_is_refused_not_gray_filled():
    data = encoded(photo_like(200, 200), ".jpg")
    assert decode.decode(data).shape == (200, 200, 3)
    with pytest.raises(InputError, match="truncated JPEG"):
        decode.decode(data[: len(data) // 2])


def test_truncated_png_is_refused():
    data = encoded(photo_like(), ".png")
    with pytest.raises(InputError, match="cannot decode image"):
        decode.decode(data[: len(data) * 2 // 3])


def test_text_and_empty_input_are_refused():
    with pytest.raises(InputError, match="cannot decode image"):
        decode.decode(b"this is not an image\n")
    with pytest.raises(InputError, match="empty file"):
        decode.decode(b"")


def test_sixteen_bit_matches_eight_bit():
    image = photo_like()
    wide = image.astype(np.uint16) * 257
    assert np.array_equal(decode.decode(encoded(wide, ".png")), image)


def test_gray_becomes_three_equal_channels():
    gray = photo_like()[:, :, 1]
    out = decode.decode(encoded(gray, ".png"))
    assert out.shape == gray.shape + (3,)
    for channel in range(3):
        assert np.array_equal(out[:, :, channel], gray)


def test_alpha_is_composited_on_white():
    image = photo_like()
    bgra = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    bgra[:10, :, :3] = 0
    bgra[:10, :, 3] = 0  # transparent black -> white
    bgra[10:20, :, 3] = 128  # half transparent -> halfway to white
    out = decode.decode(encoded(bgra, ".png"))
    assert out.shape == image.shape
    assert (out[:10] == 255).all()
    expected_half = np.rint(image[10:20] * (128 / 255.0) + 255 * (1 - 128 / 255.0))
    assert np.abs(out[10:20].astype(int) - expected_half).max() <= 1
    assert np.array_equal(out[20:], image[20:])


def test_sixteen_bit_gray_with_alpha():
    gray = photo_like()[:, :, 0].astype(np.uint16) * 257
    alpha = np.full(gray.shape, 65535, np.uint16)
    data = encoded(np.dstack([gray, gray, gray, alpha]), ".png")
    out = decode.decode(data)
    assert np.array_equal(out[:, :, 2], (gray // 257).astype(np.uint8))


def with_exif_orientation(jpeg, orientation, order=">"):
    """``jpeg`` with an APP1 Exif segment (IFD0: Orientation = ``orientation``) after SOI."""
    mark = b"MM" if order == ">" else b"II"
    tiff = (mark + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", 1)
            + struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(order + "I", 0))
    body = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("order", [">", "<"])
def test_exif_orientation_is_applied_like_opencv_imread(tmp_path, orientation, order):
    data = with_exif_orientation(encoded(photo_like(30, 50), ".jpg"), orientation, order)
    path = tmp_path / "oriented.jpg"
    path.write_bytes(data)
    upright = cv2.imread(str(path), cv2.IMREAD_COLOR)  # OpenCV applies EXIF orientation here
    assert decode.jpeg_orientation(data) == orientation
    assert upright.shape[:2] == ((50, 30) if orientation >= 5 else (30, 50))
    assert np.array_equal(decode.decode(data), upright)


def test_corrupt_jpeg_header_is_refused():
    data = encoded(photo_like(), ".jpg")
    with pytest.raises(InputError, match="corrupt or truncated JPEG"):
        decode.decode(data[:2] + b"garbage" + data[2:])


def tiff_claiming(width, height):
    """A tiny uncompressed gray TIFF whose IFD claims width x height (strip data absent)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, width * height)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x00" * 64


def test_pnm_header_claiming_huge_size_is_refused_before_decoding():
    data = b"P6\n30000 30000\n255\n" + b"\x00" * 64
    assert decode.header_size(data) == (30000, 30000, "PNM")
    with pytest.raises(InputError, match=r"30000x30000.*limit"):
        decode.decode(data)


def test_tiff_claiming_huge_size_is_refused_by_opencvs_limit(tmp_path):
    """No header parser for TIFF: OpenCV's own pixel limit, set by the agent, must refuse it
    (without it OpenCV allocates the 900 MB and then reports a corrupt file)."""
    huge = tmp_path / "huge.tif"
    huge.write_bytes(tiff_claiming(30000, 30000))
    # A fresh process: OpenCV reads the limit when cv2 is imported, before this test module did.
    code = ("import sys; from agent import decode\n"
            "try:\n    decode.decode(open(sys.argv[1], 'rb').read())\n"
            "except Exception as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code, str(huge)], cwd=REPO,
                         capture_output=True, text=True, timeout=120).stdout
    assert "MAX_IMAGE_PIXELS" in out, out
