"""Everything the agent says on stderr, as events (agent.contract): JSON lines or text.

By default each event is written as a line of text for a person (a download meter
redrawn in place on a terminal, a line per quarter otherwise). With --events
(use_events()) each is one JSON line, and file descriptor 2 itself is redirected
through a pipe whose lines become "log" events: MXNet's C++ log and Python
warnings can then never put text between the JSON lines.
"""
from __future__ import print_function, division, absolute_import

import os
import sys
import threading
import time

from agent import contract

FETCH_EVERY_S = 0.25  # at most this often a fetch event (besides a file's first and last)
_lock = threading.RLock()  # re-entrant: a SIGTERM handler may emit while the main thread is emitting
_state = {"events": None, "capture": None}  # events: the stream JSON goes to, once use_events() ran
_fetches = {}  # (model, file) -> [last time shown, last quarter shown]


def use_events():
    """From now on: JSON lines only, other stderr text captured as "log" events."""
    if _state["events"] is not None:
        return
    sys.stderr.flush()
    _state["events"] = os.fdopen(os.dup(2), "w")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    reader = threading.Thread(target=_forward_foreign, args=(read_end,))
    reader.daemon = True
    reader.start()
    _state["capture"] = reader


def events_to(stream):
    """From now on events go as JSON lines to ``stream`` (the warm agent: to the client it runs a
    classify for); returns the stream they went to before, to be given back."""
    with _lock:
        previous = _state["events"]
        _state["events"] = stream
    return previous


def events_on():
    return _state["events"] is not None


def finish():
    """Stop capturing fd 2 (its last lines become log events); call before the "done" event."""
    reader = _state["capture"]
    if reader is None:
        return
    _state["capture"] = None
    try:
        sys.stderr.flush()
    except (IOError, OSError, ValueError):
        pass
    os.dup2(_state["events"].fileno(), 2)  # closes the pipe's write end: the reader sees its end
    reader.join(5)


def _forward_foreign(read_end):
    with os.fdopen(read_end, "rb") as pipe:
        for line in iter(pipe.readline, b""):
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.strip():
                emit("log", message=text)


def emit(kind, **fields):
    evt = contract.event(kind, **fields)
    with _lock:
        stream = _state["events"]
        if stream is not None:
            stream.write(contract.encode(evt) + "\n")
            stream.flush()
            return
        text = _HUMAN[kind](evt)
        if text is not None:
            sys.stderr.write(text)
            sys.stderr.flush()


def fetch(model, name, done, total, last=False):
    """A fetch event, thinned: the first and last of a file always, others at most every FETCH_EVERY_S
    (JSON) or per quarter (text, not a terminal)."""
    key = (model, name)
    now = time.time()
    if last:
        total = done if total is None else total
        _fetches.pop(key, None)
    else:
        seen = _fetches.get(key)
        if seen is not None and now - seen[0] < FETCH_EVERY_S:
            return
        quarter = int(4 * done // total) if total else None
        if seen is not None and _state["events"] is None and not _tty() and quarter == seen[1]:
            return
        _fetches[key] = [now, quarter]
    emit("fetch", model=model, file=name, bytes=done, total=total)


def _tty():
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def _line(text):
    return text + "\n"


def _fetch_text(evt):
    label = "{0} {1}".format(evt["model"], evt["file"])
    if evt["total"]:
        text = "{0}: {1:.1f}/{2:.1f} MB ({3:d}%)".format(
            label, evt["bytes"] / 1e6, evt["total"] / 1e6, int(100 * evt["bytes"] // max(evt["total"], 1)))
    else:
        text = "{0}: {1:.1f} MB".format(label, evt["bytes"] / 1e6)
    finished = evt["total"] is not None and evt["bytes"] >= evt["total"]
    if _tty():
        return "\r" + text + ("\n" if finished else "")
    return _line(text)


def _image_text(evt):
    # One line per batch would need the batch size: a line per second and the last one do.
    now = time.time()
    if evt["done"] < evt["total"] and now - _state.get("image_shown", 0.0) < 1.0:
        return None
    _state["image_shown"] = now
    return _line("classified {0}/{1} inputs".format(evt["done"], evt["total"]))


def _done_text(evt):
    if evt["errors"]:
        return _line("{0} of {1} results are errors".format(evt["errors"], evt["results"]))
    return None


_HUMAN = {
    "start": lambda evt: None,
    "classify": lambda evt: _line("device: {0}".format(evt["device"])),
    "fetch": _fetch_text,
    "resume": lambda evt: _line("{0} {1}: resuming at byte {2}".format(evt["model"], evt["file"], evt["offset"])),
    "retry": lambda evt: _line("{0}: {1}; retry {2}/{3} in {4:.1f} s".format(
        evt["url"], evt["error"], evt["attempt"], evt["of"], evt["delay"])),
    "verified": lambda evt: _line("{0}: cached {1} (sha256 {2})".format(evt["model"], evt["file"], evt["sha256"])),
    "engine": lambda evt: _line("{0}: engine {1} ({2})".format(evt["model"], evt["engine"], evt["reason"])),
    "timing": lambda evt: _line("first result after {0:.2f} s ({1})".format(evt["first_result_s"], ", ".join(
        "{0} {1:.2f} s".format(k, v) for k, v in evt["stages"].items()))),
    "warm": lambda evt: _line(("warm: {0}" if evt["used"] else "not warm: {0}").format(evt["reason"])),
    "image": _image_text,
    "warning": lambda evt: _line("warning: {0}".format(evt["message"])),
    "log": lambda evt: _line(evt["message"]),
    "error": lambda evt: _line("error: {0}".format(evt["message"])),
    "done": _done_text,
}
