"""The agent's events (agent.log: its stderr with --events) folded into what the operator sees.

The agent writes one JSON event a line (agent.contract); the environment's activation, which
runs before the agent with the same stderr, may add plain text lines. AgentLog takes the log as
it grows, chunk by chunk, and keeps: the progress to show (images done of total, or a download in
MB), the text lines worth showing when the run fails, and the agent's own final counts.
"""
import codecs
from collections import deque

from agent import contract

TAIL_LINES = 20


def _mb(count):
    return "%.1f" % (count / 1e6)


def describe(evt):
    """One short line for an event, or None for one that changes nothing shown."""
    kind = evt["event"]
    if kind == "start":
        return "agent started (%s)" % evt["command"]
    if kind == "classify":
        return "%d input(s), %s on %s" % (evt["inputs"], ",".join(evt["models"]), evt["device"])
    if kind == "fetch":
        if evt["total"]:
            return "fetch %s %s/%s MB (%d%%)" % (evt["file"], _mb(evt["bytes"]), _mb(evt["total"]),
                                                100 * evt["bytes"] // max(evt["total"], 1))
        return "fetch %s %s MB" % (evt["file"], _mb(evt["bytes"]))
    if kind == "resume":
        return "resume %s at %s MB" % (evt["file"], _mb(evt["offset"]))
    if kind == "retry":
        return "retry %d/%d in %.1f s: %s" % (evt["attempt"], evt["of"], evt["delay"], evt["error"])
    if kind == "verified":
        return "verified %s %s" % (evt["model"], evt["file"])
    if kind == "image":
        return "classified %d/%d" % (evt["done"], evt["total"])
    if kind == "engine":
        return "%s on %s (%s)" % (evt["model"], evt["engine"], evt["reason"])
    if kind == "warm":
        return ("warm agent: %s" if evt["used"] else "fresh agent: %s") % evt["reason"]
    if kind in ("warning", "error"):
        return "%s: %s" % (kind, evt["message"])
    if kind == "done":
        return "agent done: %d result(s), %d error(s), exit %d" % (evt["results"], evt["errors"], evt["exit"])
    return None  # "log": kept for the tail, not shown as progress


class AgentLog:
    """The agent.log of one run, fed as it grows; ``on_event(evt)`` runs after each event is taken,
    while done/total/message still describe the moment of that event."""

    def __init__(self, on_event=None):
        self.on_event = on_event
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a read may end mid-character
        self._pending = ""  # the start of a line not yet complete
        self.done = None  # images classified so far (None before the first)
        self.total = None  # inputs to classify (from the classify event)
        self.message = ""  # the latest line to show
        self.finished = None  # the "done" event, once the agent has written it
        self.errors = []  # the "error" events' messages
        self.warnings = []
        self.warm = None  # the "warm" event: did the host's warm agent run it (used), and if not, why
        self.tail = deque(maxlen=TAIL_LINES)  # text worth showing on failure: errors, warnings, log, non-JSON

    def feed(self, data):
        """Take newly read log bytes; returns the events of the complete lines in them, in order."""
        lines = (self._pending + self._decoder.decode(data)).split("\n")
        self._pending = lines.pop()
        events = []
        for line in lines:
            evt = contract.parse(line)
            if evt is None:
                if line.strip():
                    self.tail.append(line.strip())
                continue
            self._take(evt)
            events.append(evt)
        return events

    def _take(self, evt):
        kind = evt["event"]
        if kind == "classify":
            self.done, self.total = 0, evt["inputs"]
        elif kind == "image":
            self.done, self.total = evt["done"], evt["total"]
        elif kind == "done":
            self.finished = evt
        elif kind == "error":
            self.errors.append(evt["message"])
        elif kind == "warning":
            self.warnings.append(evt["message"])
        elif kind == "warm":
            self.warm = evt
        if kind in ("error", "warning", "log"):
            self.tail.append(evt["message"] if kind == "log" else describe(evt))
        line = describe(evt)
        if line is not None:
            self.message = line
        if self.on_event:
            self.on_event(evt)

    def failure(self, lines=3):
        """Why the run failed, in the agent's words: its error events, else the last lines of text."""
        if self.errors:
            return " | ".join(self.errors[-lines:])
        return " | ".join(list(self.tail)[-lines:])
