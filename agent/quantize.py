"""oneDNN graphs for inference on a CPU: fused FP32, and INT8 calibrated on sample photos.

Both start from the probability head the agent binds (no label variable: a
SoftmaxOutput head is cut and a plain softmax put on its input, see
agent.predict.probability_head), because calibration binds without labels.

- fuse_fp32: the MKLDNN subgraph backend fuses Convolution+BatchNorm+ReLU (and
  sums) into one oneDNN primitive, so each layer is one pass over memory.
- quantize_int8: mx.contrib.quantization.quantize_model_mkldnn with per-channel
  weight scales and activation ranges from real photos ("naive" min/max, or
  "entropy"); the first convolution (raw pixels, 3 channels: little work, most
  of the rounding damage), the final FC (the class scores) and, in depthwise-separable
  networks, the linear projection convolutions are kept in FP32 (default_exclusions).
"""
from __future__ import print_function, division, absolute_import

import json
import logging


def _tuple(text):
    return tuple(int(v) for v in text.strip("()[] ").split(",") if v.strip())


def fold_pad_into_conv(symbol, arg_params):
    """(symbol, arg_params) with each zero Pad that feeds only a pad-0 Convolution folded into it.

    TensorFlow-"SAME" models (EfficientNet-Lite) pad stride-2 layers unevenly (top 0,
    bottom 1). MXNet's Convolution pads evenly, so the converted graph has Pad ops,
    and each one costs two oneDNN layout reorders around a plain-layout copy.
    Exact rewrite: pad evenly by the larger amount and grow the kernel by the
    difference with zero weights at its top/left, so every window still starts at
    -top and sees the same pixels times the same weights (the extra taps add 0 x x).
    """
    import mxnet as mx
    import numpy as np
    graph = json.loads(symbol.tojson())
    nodes = graph["nodes"]
    consumers = {}
    for index, node in enumerate(nodes):
        for source in node["inputs"]:
            consumers.setdefault(source[0], []).append(index)
    for head in graph["heads"]:
        consumers.setdefault(head[0], []).append(-1)
    arg_params = dict(arg_params)
    folded = 0
    for index, node in enumerate(nodes):
        attrs = node.get("attrs", {})
        if node["op"] != "Pad" or attrs.get("mode", "constant") != "constant":
            continue
        if float(attrs.get("constant_value", "0")) != 0.0 or len(consumers.get(index, [])) != 1:
            continue
        conv = nodes[consumers[index][0]] if consumers[index][0] >= 0 else None
        widths = _tuple(attrs["pad_width"])
        if conv is None or conv["op"] != "Convolution" or len(widths) != 8 or any(widths[:4]):
            continue
        cattrs = conv.get("attrs", {})
        kernel = _tuple(cattrs["kernel"])
        if len(kernel) != 2 or any(_tuple(cattrs.get("pad", "(0, 0)"))) or any(
                d != 1 for d in _tuple(cattrs.get("dilate", "(1, 1)"))):
            continue
        top, bottom, left, right = widths[4:]
        grow_h, grow_w = bottom - top, right - left
        weight_name = nodes[conv["inputs"][1][0]]["name"]
        if grow_h < 0 or grow_w < 0 or weight_name not in arg_params or conv["inputs"][0][0] != index:
            continue
        weight = arg_params[weight_name].asnumpy()
        grown = np.zeros(weight.shape[:2] + (kernel[0] + grow_h, kernel[1] + grow_w), dtype=weight.dtype)
        grown[:, :, grow_h:, grow_w:] = weight
        arg_params[weight_name] = mx.nd.array(grown, dtype=weight.dtype)
        cattrs["kernel"] = "(%d, %d)" % (kernel[0] + grow_h, kernel[1] + grow_w)
        cattrs["pad"] = "(%d, %d)" % (bottom, right)
        conv["inputs"][0] = node["inputs"][0]  # the Pad node is left unreachable
        folded += 1
    if not folded:
        return symbol, arg_params
    return mx.sym.load_json(json.dumps(graph)), arg_params


def fuse_fp32(symbol, arg_params, aux_params):
    """(symbol, arg_params, aux_params) for oneDNN: Pads folded, Conv+BN+activation fused.

    The plain graph (Pads still folded) when mxnet has no oneDNN backend.
    """
    symbol, arg_params = fold_pad_into_conv(symbol, arg_params)
    try:
        fused = symbol.get_backend_symbol("MKLDNN")
    except Exception:  # mxnet built without oneDNN: run the plain graph
        return symbol, arg_params, aux_params
    return fused, arg_params, aux_params


def _layer_names(symbol, op):
    nodes = json.loads(symbol.tojson())["nodes"]
    return [node["name"] for node in nodes if node["op"] == op]


def default_exclusions(symbol, keep_first_conv=True, keep_last_fc=True, keep_linear_projections=None):
    """Names of the layers kept in FP32, as named in the graph quantize_model_mkldnn sees
    (after MKLDNN_QUANTIZE fusion a Conv+BN+ReLU is one node, e.g. sg_mkldnn_conv_bn_act_0):
    the first convolution, the last FC and, in depthwise-separable networks
    (MobileNet/EfficientNet: any grouped convolution; None = decide from the graph),
    the linear projection convolutions (no activation after them). Their signed,
    unclipped outputs feed the residual sums; in INT8 they flipped top-1 on photos
    whose top classes are close (EfficientNet-Lite0: 84% -> 97% agreement)."""
    try:
        fused = symbol.get_backend_symbol("MKLDNN_QUANTIZE")
    except Exception:
        fused = symbol
    nodes = json.loads(fused.tojson())["nodes"]
    excluded = []
    convs = _layer_names(fused, "_sg_mkldnn_conv") or _layer_names(fused, "Convolution")
    fcs = _layer_names(fused, "_sg_mkldnn_fully_connected") or _layer_names(fused, "FullyConnected")
    if keep_first_conv and convs:
        excluded.append(convs[0])
    if keep_last_fc and fcs:
        excluded.append(fcs[-1])
    if keep_linear_projections is None:
        keep_linear_projections = depthwise_separable(symbol)
    if keep_linear_projections:
        excluded += [node["name"] for node in nodes if node["op"] == "_sg_mkldnn_conv"
                     and node.get("attrs", {}).get("with_act", "false") != "true"
                     and node["name"] not in excluded]
    return excluded


def depthwise_separable(symbol):
    return any(node["op"] == "Convolution" and int(node.get("attrs", {}).get("num_group", "1")) > 1
               for node in json.loads(symbol.tojson())["nodes"])


def quantize_int8(symbol, arg_params, aux_params, calibration, input_name="data", calib_mode=None,
                  excluded=None, granularity="channel-wise"):
    """(int8 symbol, arg_params, aux_params) calibrated on ``calibration``: float32 (n, 3, H, W).

    ``symbol`` must have a single probability output and no label variable.
    calib_mode None: "entropy" (KL-optimal clipping; seconds per layer) for
    depthwise-separable networks, where plain min/max ranges cost top-1 agreement;
    "naive" (min/max, one pass) otherwise.
    """
    import mxnet as mx
    from mxnet.contrib import quantization
    symbol, arg_params = fold_pad_into_conv(symbol, arg_params)
    if calib_mode is None:
        calib_mode = "entropy" if depthwise_separable(symbol) else "naive"
    if excluded is None:
        excluded = default_exclusions(symbol)
    batch = min(len(calibration), 8)
    data = mx.io.NDArrayIter(data={input_name: mx.nd.array(calibration)}, batch_size=batch)
    quiet = logging.getLogger("agent.quantize")
    quiet.setLevel(logging.WARNING)
    qsym, qargs, qaux = quantization.quantize_model_mkldnn(
        symbol, arg_params, aux_params, data_names=(input_name,), label_names=None, ctx=mx.cpu(),
        excluded_sym_names=excluded, calib_mode=calib_mode, calib_data=data,
        num_calib_examples=len(calibration) // batch * batch, quantized_dtype="auto",
        quantize_mode="smart", quantize_granularity=granularity, logger=quiet)
    return qsym, qargs, qaux
