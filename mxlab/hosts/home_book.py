"""The home folder each login was last seen with (~/.mxlab/homes.json, by user and instance id, or user, host and
port for a direct host), so that a run's first command can be written before the host has said where its home
is. Only a guess: the command that uses it checks it against $HOME first (remote/host.py, Prepared)."""
from mxlab.lab import statedir

FILE = "homes.json"
_book = statedir.Book(FILE)


def _key(target):
    return "%s@%s" % (target.user, target.instance_id or "%s:%d" % (target.host, target.port))


def lookup(target):
    home = _book.get(_key(target))
    return home if isinstance(home, str) and home.startswith("/") else None


def remember(target, home):
    _book.put(_key(target), home)
