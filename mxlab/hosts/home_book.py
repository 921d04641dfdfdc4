"""The home folder each login was last seen with (~/.mxlab/homes.json, by user and instance id, or user, host and
port for a direct host), so that a run's first command can be written before the host has said where its home
is. Only a guess: the command that uses it checks it against $HOME first (remote/host.py, Prepared)."""
import json
import logging
import threading

from mxlab.atomic import write_atomic
from mxlab.lab import statedir

log = logging.getLogger(__name__)

FILE = "homes.json"
_lock = threading.Lock()  # the hosts of a fleet run learn their homes at once


def _path():
    return statedir.home() / FILE


def _key(target):
    return "%s@%s" % (target.user, target.instance_id or "%s:%d" % (target.host, target.port))


def _read():
    try:
        book = json.loads(_path().read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        log.info("%s is not JSON; starting it again", _path())
        return {}
    return book if isinstance(book, dict) else {}


def lookup(target):
    home = _read().get(_key(target))
    return home if isinstance(home, str) and home.startswith("/") else None


def remember(target, home):
    with _lock:
        book = _read()
        if book.get(_key(target)) == home:
            return
        book[_key(target)] = home
        statedir.home().mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(_path(), json.dumps(book, indent=2, sort_keys=True) + "\n")
