"""The contract between mxlab (the operator's side) and the agent on a lab host.

mxlab has agent/ installed beside it and imports this module, so nothing here is
written on both sides: where the agent lives on a host, what a run folder holds,
what the agent's exit codes mean, and the events it writes on stderr with --events.

Events: with ``--events`` every line the agent writes on stderr is one JSON object
whose "event" names its kind; EVENTS lists each kind's fields, in order. Text that
is not the agent's own (MXNet's C++ log, Python warnings) arrives as "log" events.
Valid Python 2.7 and 3.6+; standard library only.
"""
from __future__ import print_function, division, absolute_import

import json
import os
from collections import OrderedDict

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))  # this package's folder: what mxlab uploads

# ---- the remote layout, relative to the login user's home -------------------------
REMOTE_ROOT = ".mxlab-agent"
AGENT_DIR = "agent"  # REMOTE_ROOT/agent: PACKAGE_DIR's files, uploaded by mxlab
ENV_FILE = "env.sh"  # REMOTE_ROOT/env.sh: sourced before every agent run
RUNS_DIR = "runs"  # REMOTE_ROOT/runs/<run id>/: one folder per run, holding:
INPUTS_DIR = "inputs"  # the operator's uploaded files and folders
RESULTS_FILE = "results.jsonl"  # the --out of `agent classify`
LOG_FILE = "agent.log"  # the agent's stderr: events, one JSON object a line
PID_FILE = "pid"  # the detached run's process id
EXIT_CODE_FILE = "exit_code"  # written (atomically) when the run has ended
COMMAND_FILE = "command"  # the agent command line, for a person reading the folder
WARM_DIR = "warm"  # REMOTE_ROOT/warm/ (0700): the warm agent (`agent serve`) of a prepared host:
WARM_SOCKET = "agent.sock"  # its unix socket (0600), which `agent classify --warm` tries first
WARM_LOG = "serve.log"  # its stderr (events)
WARM_IDLE_S = 4 * 3600  # a warm agent nobody asks for this long exits (mxlab prepare --warm-idle)


def results_temp_prefix(out_name):
    """Name prefix of the temporary file that holds --out's finished lines until the run ends."""
    return "." + out_name + "."


# ---- a full disk ----------------------------------------------------------------------
DISK_FULL = "disk full"  # how the agent's error message about a full disk starts (mxlab names the host in it)


def disk_full_message(need_bytes, free_bytes, where, what):
    """The agent's words for a full disk: 'disk full: need X MB, Y MB free in WHERE (WHAT)'."""
    return "{0}: need {1:.1f} MB, {2:.1f} MB free in {3} ({4})".format(
        DISK_FULL, need_bytes / 1e6, max(free_bytes, 0) / 1e6, where, what)


def on_host(message, label):
    """``message`` with a disk-full error of the agent's naming the host: 'disk full on attendee-3: need ...'."""
    marker = DISK_FULL + ":"
    if message and marker in message:
        return message.replace(marker, "{0} on {1}:".format(DISK_FULL, label), 1)
    return message


# ---- exit codes ---------------------------------------------------------------------
EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3
EXIT_SIGNAL_BASE = 128  # 128 + N: ended by signal N (SIGTERM, SIGHUP: results so far are kept)
EXIT_MEANINGS = OrderedDict([
    (EXIT_OK, "all inputs classified"),
    (EXIT_SOME_FAILED, "some inputs failed (the rest have results)"),
    (EXIT_USAGE, "usage error"),
    (EXIT_FATAL, "fatal error"),
])


def exit_meaning(code):
    if code in EXIT_MEANINGS:
        return EXIT_MEANINGS[code]
    if code is not None and EXIT_SIGNAL_BASE < code < EXIT_SIGNAL_BASE + 65:
        return "ended by signal {0}".format(code - EXIT_SIGNAL_BASE)
    return "unexpected exit status"


# ---- events (--events) --------------------------------------------------------------
EVENTS_FLAG = "--events"
EVENTS = OrderedDict([
    ("start", ("command", "version")),  # first event of every command
    ("classify", ("models", "inputs", "device")),  # inputs: how many image events will follow
    ("fetch", ("model", "file", "bytes", "total")),  # bytes so far of one model file (total: null if unknown);
    # the last fetch event of a file has bytes == total == the file's size
    ("resume", ("model", "file", "offset")),  # a partial download continues at byte offset
    ("retry", ("url", "attempt", "of", "error", "delay")),  # attempt N of M after `error`, in `delay` s
    ("verified", ("model", "file", "sha256")),  # a fetched file passed its checks and is in the cache
    ("engine", ("model", "engine", "reason")),  # classify --engine: which engine runs the model, and why
    ("timing", ("first_result_s", "stages", "engines")),  # once, after the first batch: seconds since the
    # process started at each stage (python, imports, [checkpoint, engine,] models, first_batch_decoded,
    # first_result; checkpoint/engine: MXNet loaded a checkpoint, bound a graph); engines: model -> engine
    ("warm", ("used", "reason")),  # classify --warm: whether the warm agent ran it; if not, why (a fresh
    # agent then does); serve: the warm agent is listening (used true) or will not start (used false)
    ("image", ("done", "total", "input")),  # one per input once every model has its record
    ("warning", ("message",)),
    ("log", ("message",)),  # a line of stderr text that is not the agent's (MXNet, Python warnings)
    ("error", ("message",)),  # why the command failed (exit 1 or 2)
    ("done", ("results", "errors", "exit")),  # last event: result records, error records, exit status
])


def event(kind, **fields):
    """The event ``kind`` as an ordered dict; its fields must be exactly those EVENTS names."""
    names = EVENTS.get(kind)
    if names is None:
        raise ValueError("unknown event {0!r}".format(kind))
    if set(fields) != set(names):
        raise ValueError("event {0!r} takes {1}, got {2}".format(kind, ", ".join(names), ", ".join(sorted(fields))))
    out = OrderedDict([("event", kind)])
    for name in names:
        out[name] = fields[name]
    return out


def encode(evt):
    """One line of JSON (no newline inside)."""
    return json.dumps(evt, sort_keys=False)


def parse(line):
    """The event on ``line`` as a dict, or None when the line is not one (shell text, a cut line)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        evt = json.loads(line)
    except ValueError:
        return None
    if not isinstance(evt, dict) or evt.get("event") not in EVENTS:
        return None
    return evt
