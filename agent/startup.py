"""Where a classify run's time goes before its first result: one "timing" event.

Stages, each in seconds since the process started (Linux: the kernel's start time
of this process, so the interpreter's own start-up counts too): python (the
agent's first line ran), imports (numpy/cv2, and MXNet unless a cached ONNX
session needs none), checkpoint (MXNet read a symbol and its params), engine (the
graph fused and bound, or a session created), models (every model ready),
first_batch_decoded (the first batch read, decoded, preprocessed) and
first_result (its forward passes done, oneDNN primitive creation included, and
its records written). With several models, a repeated stage holds the last one's.
Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import

import os
import time

_marks = []  # [(stage, seconds since the process started)]
_state = {"reported": False}


def _process_started():
    """time.time() at which this process started: from /proc where there is one, else now."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks = float(fields[19])  # starttime: field 22, counted after the ")" of the command name
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        hertz = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
        return time.time() - (uptime - ticks / hertz)
    except (IOError, OSError, ValueError, IndexError, KeyError):
        return time.time()


STARTED = _process_started()


def import_mxnet():
    """The mxnet module, and how long its first import took in this process (the part of
    MXNet's start-up that `--engine auto` weighs; a cached ONNX session never pays it)."""
    import sys
    if "mxnet" not in sys.modules:
        began = time.time()
        import mxnet  # noqa: F401 (the agent's engine; imported on first need)
        _state["mxnet_import_s"] = time.time() - began
    return sys.modules["mxnet"]


def mxnet_import_seconds():
    return _state.get("mxnet_import_s", 0.0)


def mark(stage):
    _marks.append((stage, round(time.time() - STARTED, 3)))


def report_never():
    """For the warm agent: its runs' first results are timed by their clients (agent.warm_client)."""
    _state["reported"] = True


def report(engines):
    """The "timing" event, once per process: first_result_s and the stages before it."""
    if _state["reported"]:
        return
    _state["reported"] = True
    from collections import OrderedDict
    from agent import reporter
    mark("first_result")
    stages = OrderedDict(_marks)
    reporter.emit("timing", first_result_s=stages["first_result"], stages=stages, engines=engines)
