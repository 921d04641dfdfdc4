"""The local port of each attendee's notebook tunnel (the handout's `LocalForward`): one per attendee,
kept in ~/.mxlab/<stack>/notebook-ports.json so a handout written again gives the same one.

Attendee N's first choice is BASE + N; a port in use on this machine (the organiser's, where `mxlab
notebook` and the tests open tunnels) or given to another attendee is passed over for the next free one,
and the caller says so.
"""
import json
import socket

from mxlab.lab import statedir
from mxlab.atomic import write_atomic

PORTS_FILE = "notebook-ports.json"
BASE = 18800  # attendee N: 18800 + N, clear of the 8888 a local Jupyter of the attendee's own may hold
LAST = 65000


def in_use(port):
    """Whether ssh could not listen on 127.0.0.1:port. ssh binds its forwards with SO_REUSEADDR, so a port whose
    last connections linger in TIME_WAIT (a tunnel closed within the last minute) is free to it, and to us."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def load(stack):
    path = statedir.home() / stack / PORTS_FILE
    if not path.is_file():
        return {}
    try:
        return {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError):
        return {}


def assign(stack, labels_and_numbers, say):
    """{label: local port} for these attendees ((label, attendee number) pairs), saved; `say(message)` for each
    attendee whose port changed or whose first choice was taken."""
    ports = load(stack)
    for label, number in labels_and_numbers:
        others = {p for l, p in ports.items() if l != label}
        wanted = ports.get(label) or BASE + (number or 0)
        port = wanted
        while port in others or in_use(port):
            port += 1
            if port > LAST:
                raise OSError("no free local port from %d for %s's notebook tunnel" % (wanted, label))
        if port != wanted:
            say("%s: local port %d is in use here, so the notebook tunnel uses %d (in its ssh_config)"
                % (label, wanted, port))
        ports[label] = port
    write_atomic(statedir.stack_dir(stack) / PORTS_FILE, json.dumps(ports, indent=1, sort_keys=True) + "\n")
    return ports
