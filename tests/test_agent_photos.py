"""Real photos through the real EfficientNet-Lite0 (local zoo): labels, preprocessing, pixel formats.

Uses the ``local_zoo`` and ``sample_photos`` fixtures (tests/fixtures_zoo.py).
"""
import cv2
import numpy as np
import pytest

from agent import cache, decode, download, predict, preprocess, zoo
from tests.checkpoints import json_lines, run_agent

MODEL = "efficientnet-lite0"
DOMESTIC_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


@pytest.fixture(scope="module")
def lite0(local_zoo, tmp_path_factory):
    """(catalogue entry, Classifier bound for batches of 4) for EfficientNet-Lite0 from the local zoo."""
    the_zoo = zoo.Zoo(str(local_zoo))
    policy = download.Policy()
    cache_dir = str(tmp_path_factory.mktemp("lite0-cache"))
    entry = the_zoo.catalogue(cache_dir, policy).entry(MODEL)
    files = cache.ensure_model(MODEL, entry, the_zoo, cache_dir, policy)
    return entry, predict.load(MODEL, entry, files, 4)


def load(path):
    with open(str(path), "rb") as handle:
        return decode.decode(handle.read())


def top1(classifier, tensors):
    probs, _ = classifier.predict(list(tensors))
    return [int(np.argmax(row)) for row in probs]


def reference_tensor(path, size=224, fraction=0.875):
    """Written out independently: RGB, centre square crop of the short side, bicubic resize, CHW."""
    rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
    height, width = rgb.shape[:2]
    side = int(round(min(height, width) * fraction))
    top, left = (height - side) // 2, (width - side) // 2
    crop = np.ascontiguousarray(rgb[top:top + side, left:left + side])
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32).transpose(2, 0, 1)


def test_chelsea_is_a_cat_and_coffee_is_espresso(lite0, sample_photos):
    entry, classifier = lite0
    tensors = [preprocess.prepare(load(sample_photos / name), entry["input"])
               for name in ("chelsea.jpg", "coffee.jpg")]
    cat, coffee = top1(classifier, tensors)
    assert cat in DOMESTIC_CATS
    assert coffee == ESPRESSO


def test_preprocessing_matches_an_independent_computation(lite0, sample_photos):
    entry, _ = lite0
    for name in PHOTOS:
        path = sample_photos / (name + ".jpg")
        agent_tensor = preprocess.prepare(load(path), entry["input"])
        assert agent_tensor.shape == (3, 224, 224) and agent_tensor.dtype == np.float32
        assert np.allclose(agent_tensor, reference_tensor(path), atol=1e-3), name


def test_bgr_feeding_or_squashing_would_change_tensor_and_some_answers(lite0, sample_photos):
    entry, classifier = lite0
    changed_by_bgr, changed_by_squash = [], []
    for name in PHOTOS:
        image = load(sample_photos / (name + ".jpg"))
        right = preprocess.prepare(image, entry["input"])
        bgr = preprocess.prepare(image, dict(entry["input"], color="BGR"))
        squashed = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (224, 224),
                              interpolation=cv2.INTER_CUBIC).astype(np.float32).transpose(2, 0, 1)
        assert np.abs(right - bgr).max() > 10 and np.abs(right - squashed).max() > 10
        want, got_bgr, got_squashed = top1(classifier, [right, bgr, squashed])
        if got_bgr != want:
            changed_by_bgr.append(name)
        if got_squashed != want:
            changed_by_squash.append(name)
    # Either mistake changes the answer on at least one sample photo, so the label tests catch it.
    assert changed_by_bgr and changed_by_squash


def test_gray_rgba_and_sixteen_bit_versions_match_the_eight_bit_original(lite0, sample_photos, tmp_path):
    entry, classifier = lite0
    bgr = cv2.imread(str(sample_photos / "chelsea.jpg"), cv2.IMREAD_COLOR)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    rgba = np.dstack([bgr, np.full(gray.shape, 255, np.uint8)])
    rgba[:8, :, 3] = 0  # a transparent strip outside the centre crop, composited on white
    variants = {
        "rgb8.png": bgr, "rgb16.png": bgr.astype(np.uint16) * 257, "rgba8.png": rgba,
        "gray8.png": gray, "gray16.png": gray.astype(np.uint16) * 257,
    }
    tensors = {}
    for name, pixels in variants.items():
        cv2.imwrite(str(tmp_path / name), pixels)
        tensors[name] = preprocess.prepare(load(tmp_path / name), entry["input"])
    rgb8, rgb16, rgba8, gray8 = top1(classifier, [tensors[n] for n in ("rgb8.png", "rgb16.png", "rgba8.png",
                                                                       "gray8.png")])
    gray16, = top1(classifier, [tensors["gray16.png"]])
    assert rgb8 in DOMESTIC_CATS
    assert rgb16 == rgb8 and rgba8 == rgb8
    assert gray16 == gray8 and gray8 in DOMESTIC_CATS
    assert np.array_equal(tensors["rgb16.png"], tensors["rgb8.png"])


def test_cli_fetches_real_model_over_http_and_classifies_photo_formats(
        local_zoo, sample_photos, serve_zoo, tmp_path):
    server = serve_zoo(local_zoo)
    bgr = cv2.imread(str(sample_photos / "coffee.jpg"), cv2.IMREAD_COLOR)
    cv2.imwrite(str(tmp_path / "coffee16.png"), bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "coffee-rgba.png"), np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]))
    inputs = [sample_photos / "chelsea.jpg", sample_photos / "coffee.jpg",
              tmp_path / "coffee16.png", tmp_path / "coffee-rgba.png"]
    result = run_agent("classify", "--model", MODEL, "--zoo", server.url, "--cache", tmp_path / "cache",
                       "--top-k", "3", "--batch-size", "3", *inputs)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["image"] for r in records] == [str(p) for p in inputs]
    assert records[0]["top"][0]["index"] in DOMESTIC_CATS
    assert [r["top"][0]["index"] for r in records[1:]] == [ESPRESSO] * 3
    assert records[1]["top"][0]["label"] == "espresso" and records[1]["top"][0]["synset"] == "n07920052"


def test_int8_classify_agrees_with_fp32_on_the_sample_photos(local_zoo, sample_photos, tmp_path):
    """`classify --int8` runs the oneDNN INT8 graph (calibrated on the inputs) and keeps the labels."""
    common = ["--model", MODEL, "--zoo", local_zoo, "--cache", tmp_path / "cache", "--top-k", "1"]
    photos = [sample_photos / (name + ".jpg") for name in PHOTOS]
    fp32 = run_agent("classify", *(common + photos))
    int8 = run_agent("classify", "--int8", *(common + photos))
    assert fp32.returncode == 0, fp32.stderr
    assert int8.returncode == 0, int8.stderr
    labels = {}
    for name, result in (("fp32", fp32), ("int8", int8)):
        labels[name] = {r["image"]: r["top"][0]["index"] for r in json_lines(result.stdout)}
    assert labels["int8"][str(photos[0])] in DOMESTIC_CATS
    assert labels["int8"][str(photos[1])] == ESPRESSO
    # Quantization may move a low-confidence photo; at most one of the four differs here.
    assert sum(labels["int8"][k] != labels["fp32"][k] for k in labels["fp32"]) <= 1
