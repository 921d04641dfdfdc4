"""Preprocessing geometry and arithmetic on synthetic images with known answers."""
import cv2
import numpy as np
import pytest

from agent import preprocess

SPEC = {"size": 8, "crop_fraction": 0.5, "interpolation": "area", "color": "RGB",
        "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def quadrant_image(height, width):
    """BGR image: blue border, a red centre square of side min(h, w) / 2."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :] = (255, 0, 0)  # blue in BGR
    side = min(height, width) // 2
    top, left = (height - side) // 2, (width - side) // 2
    image[top:top + side, left:left + side] = (0, 0, 255)  # red in BGR
    return image


@pytest.mark.parametrize("height, width", [(40, 80), (80, 40), (64, 64)])
def test_centre_crop_of_short_side_keeps_only_the_centre(height, width):
    tensor = preprocess.prepare(quadrant_image(height, width), SPEC)
    assert tensor.shape == (3, 8, 8) and tensor.dtype == np.float32
    assert np.allclose(tensor[0], 255) and np.allclose(tensor[1:], 0)  # all red, in RGB order


def test_bgr_models_get_bgr_channel_order():
    tensor = preprocess.prepare(quadrant_image(40, 80), dict(SPEC, color="BGR"))
    assert np.allclose(tensor[2], 255) and np.allclose(tensor[:2], 0)


def test_mean_and_std_apply_per_channel_in_model_order():
    image = np.zeros((10, 10, 3), np.uint8)
    image[:, :] = (30, 20, 10)  # B, G, R
    spec = dict(SPEC, crop_fraction=1.0, mean=[1.0, 2.0, 3.0], std=[3.0, 2.0, 1.0])
    tensor = preprocess.prepare(image, spec)
    assert np.allclose(tensor[0], (10 - 1) / 3.0)
    assert np.allclose(tensor[1], (20 - 2) / 2.0)
    assert np.allclose(tensor[2], (30 - 3) / 1.0)


@pytest.mark.parametrize("name, flag", [("area", cv2.INTER_AREA), ("linear", cv2.INTER_LINEAR),
                                        ("cubic", cv2.INTER_CUBIC)])
def test_named_interpolation_is_used(name, flag):
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (50, 70, 3)).astype(np.uint8)
    spec = dict(SPEC, size=16, crop_fraction=1.0, interpolation=name)
    expected = cv2.resize(cv2.cvtColor(image[:, 10:60], cv2.COLOR_BGR2RGB), (16, 16), interpolation=flag)
    assert np.allclose(preprocess.prepare(image, spec), expected.transpose(2, 0, 1))
