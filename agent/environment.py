"""What this host offers: Python, numpy, OpenCV and MXNet versions, MXNet features, GPUs."""
from __future__ import print_function, division, absolute_import

import os
import platform
import sys
from collections import OrderedDict


def describe():
    """An ordered dict of facts; a missing library is reported, not raised."""
    info = OrderedDict()
    info["python"] = platform.python_version()
    info["executable"] = sys.executable
    info["platform"] = platform.platform()
    info["conda_env"] = os.environ.get("CONDA_DEFAULT_ENV")
    for module in ("numpy", "cv2"):
        try:
            info[module] = __import__(module).__version__
        except ImportError as err:
            info[module] = "missing ({0})".format(err)
    try:
        import mxnet as mx
    except ImportError as err:
        info["mxnet"] = "missing ({0})".format(err)
        return info
    info["mxnet"] = mx.__version__
    try:
        features = mx.runtime.Features()
        enabled = sorted(name for name in features.keys() if features.is_enabled(name))
    except AttributeError:  # mxnet < 1.5 has no runtime feature list
        enabled = None
    info["mxnet_features"] = enabled
    if enabled is not None:
        info["mkldnn"] = "MKLDNN" in enabled or "ONEDNN" in enabled
        info["cuda"] = "CUDA" in enabled
        info["cudnn"] = "CUDNN" in enabled
    try:
        info["gpus"] = mx.context.num_gpus()
    except (AttributeError, mx.base.MXNetError):
        info["gpus"] = 0
    return info


def as_text(info):
    lines = []
    for key, value in info.items():
        if isinstance(value, list):
            value = " ".join(value) if value else "(none)"
        lines.append("{0:15} {1}".format(key, value))
    return "\n".join(lines)
