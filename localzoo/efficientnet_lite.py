"""EfficientNet-Lite0/1/2 as an MXNet symbol, and its parameters from a PyTorch state dict.

The weights come from a port of the TensorFlow Lite models to PyTorch
(``_conv_stem``, ``_blocks.N._expand_conv`` ... key names).  To reproduce them exactly:
- no squeeze-excitation, ReLU6, BatchNorm eps 1e-3;
- TensorFlow "SAME" padding computed for each layer's fixed input size: where it is
  uneven (stride-2 layers) the extra row/column goes bottom/right, so the symbol is
  built for one input size per model;
- Lite scaling keeps the stem (32) and head (1280) channels and the repeats of the
  first and last stage fixed; other repeats are ceil(depth * repeats) and channels
  are rounded to a multiple of 8 as upstream ``round_filters`` does;
- the input normalisation (x - 127) / 128 is part of the symbol, so it takes raw
  0..255 RGB like the MXNet zoo models, and ends in a plain ``softmax`` named
  ``prob`` so it binds with no label.
"""
import collections
import math

import numpy as np

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
BN_EPS = 1e-3
INPUT_MEAN = 127.0
INPUT_SCALE = 128.0
CHANNEL_DIVISOR = 8

Variant = collections.namedtuple("Variant", "name width depth size")

VARIANTS = collections.OrderedDict(
    (v.name, v) for v in (
        Variant("efficientnet-lite0", 1.0, 1.0, 224),
        Variant("efficientnet-lite1", 1.0, 1.1, 240),
        Variant("efficientnet-lite2", 1.1, 1.2, 260),
    ))

# Baseline stages: (repeats, kernel, stride, expand ratio, in channels, out channels).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

Block = collections.namedtuple(
    "Block", "index in_channels out_channels expand kernel stride in_size")


def get_variant(name):
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError("unknown model %r: expected one of %s" % (name, ", ".join(VARIANTS)))


def round_filters(channels, width):
    """Scale a channel count by ``width``, to a multiple of 8, never more than 10% down."""
    scaled = channels * width
    rounded = max(CHANNEL_DIVISOR,
                  int(scaled + CHANNEL_DIVISOR / 2.0) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    if rounded < 0.9 * scaled:
        rounded += CHANNEL_DIVISOR
    return int(rounded)


def round_repeats(repeats, depth):
    return int(math.ceil(depth * repeats))


def same_padding(size, kernel, stride):
    """TensorFlow "SAME" padding for one spatial axis: (before, after, output size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def block_plan(variant):
    """The MBConv blocks of ``variant`` in order, with each block's input feature size."""
    size = same_padding(variant.size, 3, 2)[2]  # after the stride-2 stem
    blocks = []
    last = len(STAGES) - 1
    for stage, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
        cin = STEM_CHANNELS if stage == 0 else round_filters(cin, variant.width)
        cout = round_filters(cout, variant.width)
        if stage not in (0, last):
            repeats = round_repeats(repeats, variant.depth)
        for r in range(repeats):
            s = stride if r == 0 else 1
            blocks.append(Block(len(blocks), cin if r == 0 else cout, cout, expand, kernel, s, size))
            size = same_padding(size, kernel, s)[2]
    return blocks


def _conv(mx, data, name, channels, kernel, stride, in_size, groups=1):
    before, after, _ = same_padding(in_size, kernel, stride)
    if before == after:
        pad = (before, before)
    else:
        # Uneven SAME padding: pad explicitly, then convolve without padding.
        data = mx.sym.Pad(data, mode="constant", constant_value=0.0,
                          pad_width=(0, 0, 0, 0, before, after, before, after),
                          name=name + "_pad")
        pad = (0, 0)
    return mx.sym.Convolution(data, name=name, num_filter=channels, kernel=(kernel, kernel),
                              stride=(stride, stride), pad=pad, num_group=groups, no_bias=True)


def _bn(mx, data, name):
    return mx.sym.BatchNorm(data, name=name, eps=BN_EPS, fix_gamma=False, use_global_stats=True)


def _relu6(mx, data, name):
    return mx.sym.clip(data, a_min=0.0, a_max=6.0, name=name)


def build_symbol(variant):
    """The inference symbol of ``variant``: input ``data`` (N, 3, size, size) raw RGB."""
    import mxnet as mx

    x = mx.sym.Variable("data")
    x = (x - INPUT_MEAN) / INPUT_SCALE
    x = _conv(mx, x, "conv_stem", STEM_CHANNELS, 3, 2, variant.size)
    x = _relu6(mx, _bn(mx, x, "bn_stem"), "relu_stem")
    for b in block_plan(variant):
        p = "block%d_" % b.index
        inputs = x
        mid = b.in_channels * b.expand
        if b.expand != 1:
            x = _conv(mx, x, p + "expand_conv", mid, 1, 1, b.in_size)
            x = _relu6(mx, _bn(mx, x, p + "expand_bn"), p + "expand_relu")
        x = _conv(mx, x, p + "dw_conv", mid, b.kernel, b.stride, b.in_size, groups=mid)
        x = _relu6(mx, _bn(mx, x, p + "dw_bn"), p + "dw_relu")
        x = _conv(mx, x, p + "project_conv", b.out_channels, 1, 1,
                  same_padding(b.in_size, b.kernel, b.stride)[2])
        x = _bn(mx, x, p + "project_bn")
        if b.stride == 1 and b.in_channels == b.out_channels:
            x = mx.sym.elemwise_add(x, inputs, name=p + "add")
    x = _conv(mx, x, "conv_head", HEAD_CHANNELS, 1, 1, 1)
    x = _relu6(mx, _bn(mx, x, "bn_head"), "relu_head")
    x = mx.sym.Pooling(x, global_pool=True, pool_type="avg", kernel=(1, 1), name="pool")
    x = mx.sym.Flatten(x, name="flatten")
    x = mx.sym.FullyConnected(x, num_hidden=NUM_CLASSES, name="fc")
    return mx.sym.softmax(x, name="prob")


def _name_map(variant):
    """MXNet layer name -> state-dict prefix, for every conv, BN and the FC."""
    convs = [("conv_stem", "_conv_stem"), ("conv_head", "_conv_head")]
    bns = [("bn_stem", "_bn0"), ("bn_head", "_bn1")]
    for b in block_plan(variant):
        p, t = "block%d_" % b.index, "_blocks.%d." % b.index
        if b.expand != 1:
            convs.append((p + "expand_conv", t + "_expand_conv"))
            bns.append((p + "expand_bn", t + "_bn0"))
        convs += [(p + "dw_conv", t + "_depthwise_conv"), (p + "project_conv", t + "_project_conv")]
        bns += [(p + "dw_bn", t + "_bn1"), (p + "project_bn", t + "_bn2")]
    return convs, bns


def convert_params(variant, state_dict):
    """Map a PyTorch state dict onto the symbol's (arg_params, aux_params) as float32 numpy.

    Every tensor the network needs must be present with the shape the symbol infers,
    and every tensor of the state dict (except BN step counters) must be used: a
    mismatch means the architecture is not the one the weights were trained with.
    """
    convs, bns = _name_map(variant)
    arg, aux = collections.OrderedDict(), collections.OrderedDict()
    used = set()

    def take(key):
        if key not in state_dict:
            raise ValueError("%s: state dict has no tensor %r" % (variant.name, key))
        used.add(key)
        return np.ascontiguousarray(state_dict[key], dtype=np.float32)

    for mx_name, key in convs:
        arg[mx_name + "_weight"] = take(key + ".weight")
    for mx_name, key in bns:
        arg[mx_name + "_gamma"] = take(key + ".weight")
        arg[mx_name + "_beta"] = take(key + ".bias")
        aux[mx_name + "_moving_mean"] = take(key + ".running_mean")
        aux[mx_name + "_moving_var"] = take(key + ".running_var")
        used.add(key + ".num_batches_tracked")
    arg["fc_weight"] = take("_fc.weight")
    arg["fc_bias"] = take("_fc.bias")

    unused = sorted(k for k in state_dict if k not in used and not k.endswith("num_batches_tracked"))
    if unused:
        raise ValueError("%s: state dict tensors not used by the network: %s"
                         % (variant.name, ", ".join(unused[:5])))
    _check_shapes(variant, arg, aux)
    return arg, aux


def _check_shapes(variant, arg, aux):
    sym = build_symbol(variant)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, variant.size, variant.size))
    expected = dict(zip(sym.list_arguments(), arg_shapes))
    expected.update(zip(sym.list_auxiliary_states(), aux_shapes))
    needed = set(expected) - {"data"}
    given = set(arg) | set(aux)
    if needed != given:
        raise ValueError("%s: parameters missing %s, extra %s"
                         % (variant.name, sorted(needed - given)[:5], sorted(given - needed)[:5]))
    for name, array in list(arg.items()) + list(aux.items()):
        if tuple(array.shape) != tuple(expected[name]):
            raise ValueError("%s: %s has shape %s, the network needs %s"
                             % (variant.name, name, array.shape, expected[name]))
