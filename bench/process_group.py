"""Start a bench child in a process group of its own, so that a timeout ends the whole group:
subprocess.run's timeout kills only the direct child, and a bench worker's own children (`agent
classify`, the warm `agent serve`, the ONNX Runtime worker) would go on running, and loading the
machine, after it.
"""
from __future__ import print_function, division, absolute_import

import os
import signal
import subprocess
import time

GRACE_S = 10  # between SIGTERM (the warm agent then unlinks its socket) and SIGKILL


def run(argv, timeout=None, **kwargs):
    """subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs), but on a timeout
    (or Ctrl-C) the child's whole process group is ended before the exception goes on."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:  # TimeoutExpired, KeyboardInterrupt
        end_group(proc)
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def end_group(proc):
    """SIGTERM to proc's group, SIGKILL to what is left of it after GRACE_S; proc reaped."""
    if not _signal(proc.pid, signal.SIGTERM):
        return
    deadline = time.time() + GRACE_S
    try:
        proc.communicate(timeout=GRACE_S)  # reaped: a zombie leader would keep the group "alive"
    except subprocess.TimeoutExpired:
        pass
    while time.time() < deadline and _signal(proc.pid, 0):  # its children may still be unwinding
        time.sleep(0.1)
    _signal(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal(group, sig):
    """True when the group still had a member to signal."""
    try:
        os.killpg(group, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies left on some systems
        return False
