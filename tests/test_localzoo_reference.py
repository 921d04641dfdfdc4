"""Faithfulness of the conversion: the MXNet zoo model's logits against a plain-numpy
forward pass written straight from the PyTorch state dict (float64, NCHW, TensorFlow SAME
padding). The class-level photo tests cannot tell a channel swap or an off-by-one
padding apart; this can.  (Offline, the same nets were also checked against PyTorch.)"""
import json

import mxnet as mx
import numpy as np
import pytest

from localzoo.torch_legacy import load_state_dict
from localzoo.weights import weights_path
from tests.fixtures_zoo import eval_preprocess as preprocess

# Stride of the first block of each stage (stages counted by output-channel changes).
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
EPS = 1e-3


def same_pad(x, k, s):
    size = x.shape[1]
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    b = total // 2
    return np.pad(x, ((0, 0), (b, total - b), (b, total - b))), out


def conv(x, w, s=1, depthwise=False):
    k = w.shape[-1]
    x, out = same_pad(x, k, s)
    y = 0.0
    for i in range(k):
        for j in range(k):
            window = x[:, i:i + s * (out - 1) + 1:s, j:j + s * (out - 1) + 1:s]
            if depthwise:
                y = y + w[:, 0, i, j][:, None, None] * window
            else:
                y = y + np.tensordot(w[:, :, i, j], window, axes=1)
    return y


def bn(x, sd, p):
    scale = sd[p + ".weight"] / np.sqrt(sd[p + ".running_var"] + EPS)
    return (x - sd[p + ".running_mean"][:, None, None]) * scale[:, None, None] + sd[p + ".bias"][:, None, None]


def relu6(x):
    return np.clip(x, 0, 6)


def numpy_logits(sd, image):
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    x = (image.astype(np.float64) - 127.0) / 128.0
    x = relu6(bn(conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    n_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    stage, channels = -1, None
    for b in range(n_blocks):
        p = "_blocks.%d." % b
        out_channels = sd[p + "_project_conv.weight"].shape[0]
        first = out_channels != channels
        if first:
            stage, channels = stage + 1, out_channels
        stride = STAGE_STRIDES[stage] if first else 1
        y = x
        if p + "_expand_conv.weight" in sd:
            y = relu6(bn(conv(y, sd[p + "_expand_conv.weight"]), sd, p + "_bn0"))
        y = relu6(bn(conv(y, sd[p + "_depthwise_conv.weight"], stride, depthwise=True), sd, p + "_bn1"))
        y = bn(conv(y, sd[p + "_project_conv.weight"]), sd, p + "_bn2")
        x = y + x if stride == 1 and y.shape == x.shape else y
    x = relu6(bn(conv(x, sd["_conv_head.weight"]), sd, "_bn1"))
    return sd["_fc.weight"] @ x.mean(axis=(1, 2)) + sd["_fc.bias"]


@pytest.mark.parametrize("model,photo", [
    ("efficientnet-lite0", "chelsea"),
    ("efficientnet-lite1", "rocket"),
    ("efficientnet-lite2", "astronaut"),
])
def test_mxnet_logits_match_a_numpy_forward_pass(local_zoo, sample_photos, model, photo):
    entry = json.loads((local_zoo / "catalogue.json").read_text())["models"][model]
    x = preprocess(sample_photos / (photo + ".jpg"), entry["input"])
    sym, arg_params, aux_params = mx.model.load_checkpoint(str(local_zoo / model / model), 0)
    logits_sym = sym.get_internals()["fc_output"]
    module = mx.mod.Module(logits_sym, label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", x.shape)], for_training=False)
    module.set_params(arg_params, aux_params)
    module.forward(mx.io.DataBatch([mx.nd.from_numpy(x, zero_copy=False)]), is_train=False)
    got = module.get_outputs()[0].asnumpy()[0]
    want = numpy_logits(load_state_dict(weights_path(model)), x[0])
    assert np.ptp(want) > 5  # a real, confident-enough logit vector, not all zeros
    assert np.abs(got - want).max() < 1e-3, (model, np.abs(got - want).max())
