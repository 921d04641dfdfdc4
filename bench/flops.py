"""FLOPs of one image through a symbol: 2 x multiply-accumulates of convolutions and FC layers.

Counted from the graph with inferred shapes; elementwise ops, pooling and BatchNorm are
left out (they are ~1% of these networks and not FMA work), the usual convention.
"""
from __future__ import print_function, division, absolute_import

import json


def flops_per_image(symbol, size=224):
    import numpy as np
    internals = symbol.get_internals()
    data = "data" if "data" in symbol.list_arguments() else symbol.list_arguments()[0]
    arg_shapes, out_shapes, _ = internals.infer_shape(**{data: (1, 3, size, size)})
    outputs = dict(zip(internals.list_outputs(), out_shapes))
    weights = dict(zip(internals.list_arguments(), arg_shapes))
    nodes = json.loads(symbol.tojson())["nodes"]
    total = 0
    for node in nodes:
        if node["op"] not in ("Convolution", "FullyConnected") or len(node["inputs"]) < 2:
            continue
        wshape = weights[nodes[node["inputs"][1][0]]["name"]]
        if node["op"] == "Convolution":
            # each output element: in_channels/groups x kh x kw multiply-adds
            macs = int(np.prod(outputs[node["name"] + "_output"])) * int(np.prod(wshape[1:]))
        else:
            macs = int(np.prod(wshape))
        total += 2 * macs
    return total
