"""The last live address of each lab instance (~/.mxlab/addresses.json, by instance id), so that a run
can reach a running host without asking AWS first (readiness.reach). An address here is only a guess:
the host keys pinned for the instance id decide whether the machine there is the one meant."""
from mxlab.lab import statedir

FILE = "addresses.json"
_book = statedir.Book(FILE)


def lookup(instance_id):
    entry = _book.get(instance_id) if instance_id else None
    return entry if isinstance(entry, str) and entry else None


def remember(instance_id, address):
    """Keep `address` (None: forget it, e.g. a stopped instance has none)."""
    if instance_id:
        _book.put(instance_id, address or None)
