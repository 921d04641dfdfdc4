"""Random-weight checkpoints with the seed's architectures, built with MXNet's own builders.

The zoo's real checkpoints cannot be downloaded here, so the bench builds the same
networks and saves them as ordinary MXNet checkpoints (symbol JSON + params, a
SoftmaxOutput head with the same label name as the zoo file) under build/bench/zoo:
- inception-bn: the published Inception-BN layout (Ioffe & Szegedy 2015, as in MXNet's
  example/image-classification/symbols), written here with mx.sym from its layer table;
- vgg16: Gluon's model_zoo.vision.vgg16 (13 conv + 3 FC), head named ``prob`` like the zoo file;
- resnet-152: Gluon's resnet152_v2 (pre-activation bottlenecks, BatchNorm on the data),
  the same layout as the zoo's resnet-152 symbol.
Weights are random (fixed seed): speed does not depend on their values.
"""
from __future__ import print_function, division, absolute_import

import os

ARCHITECTURES = ("inception-bn", "vgg16", "resnet-152")
BN_EPS = 2e-5

# Inception-BN stage table: (kind, name, widths) where A = (1x1, 3x3 reduce, 3x3,
# double-3x3 reduce, double-3x3, pool type, pool projection), B = (3x3 reduce, 3x3,
# double-3x3 reduce, double-3x3) with stride 2 and a max-pool branch.
_INCEPTION_BN = (
    ("A", "3a", (64, 64, 64, 64, 96, "avg", 32)),
    ("A", "3b", (64, 64, 96, 64, 96, "avg", 64)),
    ("B", "3c", (128, 160, 64, 96)),
    ("A", "4a", (224, 64, 96, 96, 128, "avg", 128)),
    ("A", "4b", (192, 96, 128, 96, 128, "avg", 128)),
    ("A", "4c", (160, 128, 160, 128, 160, "avg", 128)),
    ("A", "4d", (96, 128, 192, 160, 192, "avg", 128)),
    ("B", "4e", (128, 192, 192, 256)),
    ("A", "5a", (352, 192, 320, 160, 224, "avg", 128)),
    ("A", "5b", (352, 192, 320, 192, 224, "max", 128)),
)


def _conv_bn_relu(mx, data, filters, kernel, name, stride=1, pad=0):
    conv = mx.sym.Convolution(data, num_filter=filters, kernel=(kernel, kernel), stride=(stride, stride),
                              pad=(pad, pad), name="conv_" + name)
    bn = mx.sym.BatchNorm(conv, fix_gamma=False, eps=1e-5 + 1e-10, name="bn_" + name)
    return mx.sym.Activation(bn, act_type="relu", name="relu_" + name)


def inception_bn_symbol(classes=1000):
    import mxnet as mx
    net = mx.sym.Variable("data")
    net = _conv_bn_relu(mx, net, 64, 7, "1", stride=2, pad=3)
    net = mx.sym.Pooling(net, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool_1")
    net = _conv_bn_relu(mx, net, 64, 1, "2_red")
    net = _conv_bn_relu(mx, net, 192, 3, "2", pad=1)
    net = mx.sym.Pooling(net, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool_2")
    for kind, name, w in _INCEPTION_BN:
        if kind == "A":
            one = _conv_bn_relu(mx, net, w[0], 1, name + "_1x1")
            three = _conv_bn_relu(mx, _conv_bn_relu(mx, net, w[1], 1, name + "_3x3_reduce"), w[2], 3,
                                  name + "_3x3", pad=1)
            double = _conv_bn_relu(mx, net, w[3], 1, name + "_double_3x3_reduce")
            double = _conv_bn_relu(mx, double, w[4], 3, name + "_double_3x3_0", pad=1)
            double = _conv_bn_relu(mx, double, w[4], 3, name + "_double_3x3_1", pad=1)
            pool = mx.sym.Pooling(net, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type=w[5],
                                  name="%s_pool_%s_pool" % (w[5], name))
            proj = _conv_bn_relu(mx, pool, w[6], 1, name + "_proj")
            net = mx.sym.Concat(one, three, double, proj, name="ch_concat_%s_chconcat" % name)
        else:
            three = _conv_bn_relu(mx, _conv_bn_relu(mx, net, w[0], 1, name + "_3x3_reduce"), w[1], 3,
                                  name + "_3x3", stride=2, pad=1)
            double = _conv_bn_relu(mx, net, w[2], 1, name + "_double_3x3_reduce")
            double = _conv_bn_relu(mx, double, w[3], 3, name + "_double_3x3_0", pad=1)
            double = _conv_bn_relu(mx, double, w[3], 3, name + "_double_3x3_1", stride=2, pad=1)
            pool = mx.sym.Pooling(net, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max",
                                  name="max_pool_%s_pool" % name)
            net = mx.sym.Concat(three, double, pool, name="ch_concat_%s_chconcat" % name)
    net = mx.sym.Pooling(net, kernel=(7, 7), stride=(1, 1), pool_type="avg", name="global_pool")
    net = mx.sym.FullyConnected(mx.sym.Flatten(net), num_hidden=classes, name="fc1")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def _gluon_symbol(name, classes=1000):
    """(symbol with the zoo's SoftmaxOutput head, arg params, aux params) of a Gluon model."""
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision
    net = {"vgg16": vision.vgg16, "resnet-152": vision.resnet152_v2}[name](classes=classes)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net.hybridize()
    net(mx.nd.zeros((1, 3, 224, 224)))
    logits = net(mx.sym.Variable("data"))
    head = "prob" if name == "vgg16" else "softmax"  # the zoo's label names: prob_label / softmax_label
    symbol = mx.sym.SoftmaxOutput(logits, name=head)
    params = {p.name: p.data() for p in net.collect_params().values()}
    aux_names = set(symbol.list_auxiliary_states())
    args = dict((k, v) for k, v in params.items() if k not in aux_names)
    aux = dict((k, v) for k, v in params.items() if k in aux_names)
    return symbol, args, aux


def _random_params(symbol):
    import mxnet as mx
    import numpy as np
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, 224, 224))
    rng = np.random.RandomState(0)
    args, aux = {}, {}
    for name, shape in zip(symbol.list_arguments(), arg_shapes):
        if name in ("data", "softmax_label", "prob_label"):
            continue
        if name.endswith("_weight"):
            fan_in = int(np.prod(shape[1:]))
            args[name] = mx.nd.array(rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
        elif name.endswith("_gamma"):
            args[name] = mx.nd.ones(shape)
        else:
            args[name] = mx.nd.zeros(shape)
    for name, shape in zip(symbol.list_auxiliary_states(), aux_shapes):
        aux[name] = mx.nd.ones(shape) if name.endswith("_var") else mx.nd.zeros(shape)
    return args, aux


def build(name, directory):
    """Write directory/name/name-symbol.json and -0000.params (once); return the prefix."""
    import mxnet as mx
    folder = os.path.join(directory, name)
    prefix = os.path.join(folder, name)
    if os.path.exists(prefix + "-0000.params") and os.path.exists(prefix + "-symbol.json"):
        return prefix
    if not os.path.isdir(folder):
        os.makedirs(folder)
    mx.random.seed(0)
    if name == "inception-bn":
        symbol = inception_bn_symbol()
        args, aux = _random_params(symbol)
    elif name in ("vgg16", "resnet-152"):
        symbol, args, aux = _gluon_symbol(name)
    else:
        raise ValueError("unknown architecture %r: expected one of %s" % (name, ", ".join(ARCHITECTURES)))
    tmp = prefix + ".tmp"
    mx.model.save_checkpoint(tmp, 0, symbol, args, aux)
    os.replace(tmp + "-0000.params", prefix + "-0000.params")
    os.replace(tmp + "-symbol.json", prefix + "-symbol.json")
    return prefix
