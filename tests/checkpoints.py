"""Tiny real MXNet checkpoints, a zoo that holds them, and a runner for the agent process.

Each tiny model is a small VGG-style net whose weights are set, not trained, so
that its answer is known from first principles: it classifies an image by its
dominant colour. Conv 3x3 (identity kernel) -> ReLU -> conv 1x1 (identity) ->
global average pool -> flatten -> FC (identity x GAIN) -> head. Input size 32,
mean 0, std 255 (pixels in 0..1), colour order RGB. So a red photo is "red"
exactly when the agent feeds RGB; a BGR-fed agent answers "blue".

Heads: ``SoftmaxOutput(name='prob')`` (label variable ``prob_label``, the VGG16 /
SqueezeNet quirk), ``SoftmaxOutput`` named softmax (``softmax_label``), plain
logits (no softmax) and a ``softmax`` op.
"""
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import mxnet as mx
import numpy as np
import pytest

from tests.paths import REPO

CLASSES = [("n00000001", "red"), ("n00000002", "green"), ("n00000003", "blue")]
GAIN = 8.0
SIZE = 32
HEADS = {
    "tiny-prob": "prob_label",
    "tiny-softmax": "softmax_label",
    "tiny-logits": None,
    "tiny-softmaxop": None,
}


def build_symbol(head):
    data = mx.sym.Variable("data")
    net = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=3, name="conv1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    net = mx.sym.Convolution(net, kernel=(1, 1), num_filter=3, name="conv2")
    net = mx.sym.Pooling(net, global_pool=True, pool_type="avg", kernel=(1, 1), name="pool")
    net = mx.sym.flatten(net, name="flatten")
    net = mx.sym.FullyConnected(net, num_hidden=len(CLASSES), name="fc")
    if head == "tiny-prob":
        return mx.sym.SoftmaxOutput(net, name="prob")
    if head == "tiny-softmax":
        return mx.sym.SoftmaxOutput(net, name="softmax")
    if head == "tiny-softmaxop":
        return mx.sym.softmax(net, name="prob")
    return net


def build_params():
    eye = np.eye(3, dtype=np.float32)
    conv1 = np.zeros((3, 3, 3, 3), dtype=np.float32)
    conv1[:, :, 1, 1] = eye  # the centre tap copies each channel
    return {
        "arg:conv1_weight": mx.nd.array(conv1),
        "arg:conv1_bias": mx.nd.zeros((3,)),
        "arg:conv2_weight": mx.nd.array(eye.reshape(3, 3, 1, 1)),
        "arg:conv2_bias": mx.nd.zeros((3,)),
        "arg:fc_weight": mx.nd.array(eye * GAIN),
        "arg:fc_bias": mx.nd.zeros((3,)),
    }


def sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def build_zoo(root, pin=True, models=None):
    """Write a zoo at ``root`` (synset.txt, catalogue.json, tiny/<name>-...); return root."""
    os.makedirs(os.path.join(root, "tiny"), exist_ok=True)
    with open(os.path.join(root, "synset.txt"), "w") as handle:
        handle.write("".join("{} {}\n".format(wnid, label) for wnid, label in CLASSES))
    catalogue = {"schema": 1, "models": {}}
    for name in models or HEADS:
        symbol_rel = "tiny/{}-symbol.json".format(name)
        params_rel = "tiny/{}-0000.params".format(name)
        build_symbol(name).save(os.path.join(root, symbol_rel))
        mx.nd.save(os.path.join(root, params_rel), build_params())
        entry = {
            "description": "tiny colour classifier for tests ({})".format(name),
            "symbol": symbol_rel, "params": params_rel, "epoch": 0, "synset": "synset.txt",
            "label": HEADS[name],
            "input": {"size": SIZE, "crop_fraction": 0.875, "interpolation": "area", "color": "RGB",
                      "mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0]},
            "sha256": {"symbol": None, "params": None, "synset": None},
        }
        if pin:
            entry["sha256"] = {kind: sha256_of(os.path.join(root, entry[kind]))
                               for kind in ("symbol", "params", "synset")}
        catalogue["models"][name] = entry
    with open(os.path.join(root, "catalogue.json"), "w") as handle:
        json.dump(catalogue, handle, indent=2)
    return root


def colour_image(rgb, width=64, height=48):
    """A uint8 BGR array (as cv2 writes it) of one colour given as (R, G, B)."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :] = rgb[::-1]
    return image


RED, GREEN, BLUE = (230, 20, 30), (15, 200, 40), (20, 30, 220)


def textured(rgb, seed, height=90, width=120):
    """A photo-sized image of a dominant colour with noise, so JPEGs have real scan data."""
    noise = np.random.RandomState(seed).randint(-25, 25, (height, width, 3))
    return np.clip(colour_image(rgb, width, height).astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def colour_photos(tmp_path):
    """A folder tmp_path/photos of red.png, green.png and blue.png (textured): a tiny model's answers are known."""
    import cv2
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed, (name, rgb) in enumerate((("red.png", RED), ("green.png", GREEN), ("blue.png", BLUE)), 1):
        assert cv2.imwrite(str(folder / name), textured(rgb, seed))
    return folder


@pytest.fixture(scope="session")
def tiny_zoo_master(tmp_path_factory):
    """A pinned tiny zoo built once; copy it (tiny_zoo) before changing anything."""
    return build_zoo(str(tmp_path_factory.mktemp("tiny-zoo-master")))


@pytest.fixture
def tiny_zoo(tiny_zoo_master, tmp_path):
    """A private copy of the pinned tiny zoo (str path) that a test may alter."""
    root = str(tmp_path / "zoo")
    shutil.copytree(tiny_zoo_master, root)
    return root


def run_agent(*args, **kwargs):
    """Run ``python -m agent ARGS`` as a real process from the repo root; CompletedProcess."""
    env = dict(os.environ)
    env.pop("MXLAB_ZOO", None)
    env.update(kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "agent"] + [str(a) for a in args], cwd=str(REPO),
                          env=env, capture_output=True, text=True, timeout=kwargs.pop("timeout", 300))


def run_classify(zoo, cache, *args, **kwargs):
    """`python -m agent classify --zoo ZOO --cache CACHE ARGS` (run_agent's env= and timeout=)."""
    return run_agent("classify", "--zoo", zoo, "--cache", cache, *args, **kwargs)


def classify_events(zoo, cache, *args, **kwargs):
    """run_classify with --events: (CompletedProcess, the events on its stderr; other lines left out)."""
    from agent import contract

    proc = run_classify(zoo, cache, "--events", *args, **kwargs)
    return proc, [evt for evt in map(contract.parse, proc.stderr.splitlines()) if evt]


def json_lines(text):
    """Every line of ``text`` parsed as JSON (fails on any line that is not)."""
    return [json.loads(line) for line in text.splitlines()]


class WarmAgent:
    """`python -m agent serve` started by the test (ended by its PID at teardown)."""

    def __init__(self, folder, zoo, cache, *extra, cwd=REPO):
        self.socket = str(folder / "warm" / "agent.sock")
        self.log = folder / "serve.log"
        env = dict(os.environ, MXLAB_CACHE=str(cache))
        env.pop("MXLAB_ZOO", None)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "serve", "--events", "--socket", self.socket, "--zoo", zoo,
                 "--cache", str(cache)] + list(extra), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log)

    def events(self):
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def wait_listening(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e["event"] == "warm" and e["used"] for e in self.events()):
                return self
            assert self.process.poll() is None, "serve ended: %s" % self.log.read_text()
            time.sleep(0.05)
        raise AssertionError("serve did not listen: %s" % self.log.read_text())

    def wait_exit(self, timeout=60):
        return self.process.wait(timeout)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def classify_warm(tiny_zoo, tmp_path, socket, *args, **kwargs):
    """`classify --warm` through the warm agent at `socket` (tmp_path/cache, as serve's agents use)."""
    return run_classify(tiny_zoo, tmp_path / "cache", "--events", "--warm", "--warm-socket", socket, *args, **kwargs)


def warm_event(result):
    """The one `warm` event of a `classify --warm --events` run."""
    (warm,) = [e for e in json_lines(result.stderr) if e["event"] == "warm"]
    return warm


def png_claiming(width, height):
    """A valid-looking PNG whose IHDR claims width x height but holds only a tiny IDAT."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))
