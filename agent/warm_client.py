"""`agent classify --warm`: hand the run to the host's warm agent (agent.warm_server), if it can take it.

The warm agent keeps models loaded and bound, so a one-photo run skips the imports, the checkpoint load
and the bind. This side stays light (standard library only, no numpy/cv2/mxnet) because it runs first in
every classify process: when the warm agent is absent, stale, busy or fails before answering, forward()
returns None and says why, and the same process classifies as a fresh agent would.

The wire: one JSON object a line over the unix socket. This side sends the request; the server answers
{"accepted": {...}} or {"declined": reason} [or {"stale": reason}: it then exits], then streams
{"event": {...}}, {"stdout": line} and {"engines": {...}}, and ends with {"exit": code, "results": n,
"errors": m}. Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import

import errno
import hashlib
import json
import os
import socket
import sys
import time

from agent import contract

# The variables the agent reads while classifying: a warm run must see the client's values.
REQUEST_ENVIRONMENT = ("MXLAB_ZOO", "MXLAB_CACHE", "MXLAB_INT8_MIN_AGREEMENT", "MXLAB_INT8_MIN_SPEEDUP")
# Read once at import (agent.decode): a warm agent started with another value declines.
FIXED_ENVIRONMENT = ("MXLAB_MAX_PIXELS",)


def default_socket():
    return os.path.join(os.path.expanduser("~"), contract.REMOTE_ROOT, contract.WARM_DIR, contract.WARM_SOCKET)


def agent_fingerprint(package_dir=contract.PACKAGE_DIR):
    """sha256 of the agent's files (names and contents): a warm agent running other code is stale."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(package_dir)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, package_dir).replace(os.sep, "/").encode("utf-8") + b"\0")
            with open(path, "rb") as handle:
                digest.update(handle.read())
            digest.update(b"\0")
    return digest.hexdigest()


def identity():
    """What a warm agent must share with this process to run its request as this process would."""
    return {"fingerprint": agent_fingerprint(), "executable": os.path.realpath(sys.executable),
            "fixed_environment": dict((k, os.environ.get(k)) for k in FIXED_ENVIRONMENT)}


def at_socket_path(operation, path):
    """``operation(path)`` (a socket's bind or connect); sun_path holds ~107 bytes, so a path in a deep
    home is reached from its folder, by its name."""
    if len(path.encode("utf-8")) < 100:
        return operation(path)
    here = os.getcwd()
    os.chdir(os.path.dirname(path))
    try:
        return operation(os.path.basename(path))
    finally:
        os.chdir(here)


def connect(path, timeout=None):
    """A socket connected to the unix socket ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        at_socket_path(sock.connect, path)
    except Exception:
        sock.close()
        raise
    return sock


def send(sock, message):
    sock.sendall((json.dumps(message) + "\n").encode("utf-8"))


def messages(sock):
    """The JSON objects the other side sends, one a line, until it closes."""
    pending = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            if pending.strip():
                yield json.loads(pending.decode("utf-8"))
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield json.loads(line.decode("utf-8"))


def ask(path, request, timeout=10.0):
    """One short exchange (status, stop): the server's first answer, or None if nobody listens."""
    try:
        sock = connect(path, timeout)
    except (IOError, OSError):
        return None
    try:
        send(sock, request)
        for message in messages(sock):
            return message
        return None
    except (IOError, OSError, ValueError):
        return None
    finally:
        sock.close()


def why_unreachable(err, path):
    code = getattr(err, "errno", None)
    if code == errno.ENOENT:
        return "no warm agent on this host ({0} does not exist; `mxlab prepare` starts one)".format(path)
    if code == errno.ECONNREFUSED:
        return ("the warm agent is not running (its socket {0} is left from before: it idled out, was stopped, "
                "or the instance restarted; `mxlab prepare` starts it again)".format(path))
    if code == errno.EACCES:
        return "the warm agent's socket {0} is not this user's".format(path)
    return "cannot reach the warm agent at {0}: {1}".format(path, err)


def forward(path, argv, emit, write_stdout, started):
    """Run classify ``argv`` on the warm agent at ``path``, relaying its events (``emit(kind, **fields)``)
    and result lines (``write_stdout(line)``).

    Returns (exit code, results, errors) when the warm agent ran it to the end, else None after a "warm"
    event that says why (the caller then classifies as a fresh agent). ``started``: time.time() at which
    this process started (for the "timing" event: first result since this process began).
    """
    try:
        sock = connect(path, timeout=10.0)
    except (IOError, OSError) as err:
        emit("warm", used=False, reason=why_unreachable(err, path))
        return None
    connected = time.time()
    sock.settimeout(None)  # a long run is not a dead server: the server closing the socket is
    request = identity()
    request.update(argv=list(argv), cwd=os.getcwd(),
                   environment=dict((k, os.environ[k]) for k in REQUEST_ENVIRONMENT if k in os.environ))
    run = _Relay(emit, write_stdout, started, connected)
    try:
        send(sock, request)
        for message in messages(sock):
            outcome = run.relay(message)
            if outcome is not _GOING_ON:
                return outcome
    except (IOError, OSError, ValueError) as err:
        failure = str(err)
    else:
        failure = "it closed the connection"
    finally:
        sock.close()
    log = os.path.join(os.path.dirname(path), contract.WARM_LOG)
    if run.wrote:  # results already went to stdout: a fresh run would repeat them
        raise IOError("the warm agent stopped in the middle of the run: {0} (its log: {1})".format(failure, log))
    emit("warm", used=False, reason="the warm agent stopped {0}: {1} (its log: {2})".format(
        "in the middle of the run" if run.answered else "before answering", failure, log))
    return None


_GOING_ON = object()  # _Relay.relay: the run goes on (not one of forward()'s answers)


class _Relay(object):
    """One run's messages from the warm agent, relayed as they come: its answer to the request as a
    "warm" event, the run's events and result lines, the "timing" event at the first result."""

    def __init__(self, emit, write_stdout, started, connected):
        self.emit = emit
        self.write_stdout = write_stdout
        self.started = started
        self.connected = connected
        self.engines = None
        self.answered = False  # the warm agent accepted the run
        self.wrote = False  # a result line went to stdout

    def relay(self, message):
        """_GOING_ON, or what forward() returns: None (declined), or (exit code, results, errors)."""
        if "declined" in message or "stale" in message:
            self.emit("warm", used=False, reason="the warm agent declined: {0}".format(
                message.get("declined") or message.get("stale")))
            return None
        if "accepted" in message:
            self.answered = True
            self.emit("warm", used=True, reason="warm agent pid {0}, up since {1}".format(
                message["accepted"].get("pid"), message["accepted"].get("since")))
        elif "engines" in message:
            self.engines = message["engines"]
        elif "event" in message:
            evt = message["event"]
            kind = evt.pop("event")
            if kind == "image" and evt.get("done") == 1 and self.engines is not None:
                _timing(self.emit, self.started, self.connected, self.engines)
            self.emit(kind, **evt)
        elif "stdout" in message:
            self.wrote = True
            self.write_stdout(message["stdout"])
        elif "exit" in message:
            return message["exit"], message.get("results", 0), message.get("errors", 0)
        return _GOING_ON


def _timing(emit, started, connected, engines):
    now = time.time()
    from collections import OrderedDict
    stages = OrderedDict([("warm_connected", round(connected - started, 3)),
                          ("first_result", round(now - started, 3))])
    emit("timing", first_result_s=stages["first_result"], stages=stages, engines=engines)
