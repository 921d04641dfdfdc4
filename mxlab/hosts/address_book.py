"""The last live address of each lab instance (~/.mxlab/addresses.json, by instance id), so that a run
can reach a running host without asking AWS first (readiness.reach). An address here is only a guess:
the host keys pinned for the instance id decide whether the machine there is the one meant."""
import json
import logging
import threading

from mxlab.lab import statedir
from mxlab.atomic import write_atomic

log = logging.getLogger(__name__)

FILE = "addresses.json"
_lock = threading.Lock()  # the hosts of a fleet run learn their addresses at once


def _path():
    return statedir.home() / FILE


def _read():
    try:
        book = json.loads(_path().read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        log.info("%s is not JSON; starting it again", _path())
        return {}
    return book if isinstance(book, dict) else {}


def lookup(instance_id):
    entry = _read().get(instance_id) if instance_id else None
    return entry if isinstance(entry, str) and entry else None


def remember(instance_id, address):
    """Keep `address` (None: forget it, e.g. a stopped instance has none)."""
    if not instance_id:
        return
    with _lock:
        book = _read()
        if book.get(instance_id) == address:
            return
        if address:
            book[instance_id] = address
        else:
            book.pop(instance_id, None)
        statedir.home().mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(_path(), json.dumps(book, indent=2, sort_keys=True) + "\n")
