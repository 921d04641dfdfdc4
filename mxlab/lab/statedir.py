"""Where mxlab keeps per-lab state on the operator machine: ~/.mxlab/<stack>/ (or $MXLAB_HOME).

- outputs.json: the stacks' outputs, as `cdk deploy --outputs-file` writes them;
- context.json: the CDK context the lab was last deployed with (`mxlab up` starts from it,
  so a key left out of a later `up` keeps its value instead of going back to its default);
- region: the region `mxlab up` deployed it to (`-c region=...` or the session's then): the
  other commands use it, not whatever region the session has today.

and, for every lab, small books of guesses (Book): hosts/address_book.py, hosts/home_book.py.
"""
import json
import logging
import os
import threading
from pathlib import Path

from mxlab.atomic import write_atomic
from mxlab.errors import UsageError

log = logging.getLogger(__name__)


def home():
    return Path(os.environ.get("MXLAB_HOME") or Path.home() / ".mxlab")


class Book:
    """A small JSON object in ~/.mxlab/<name>, read afresh each time (other mxlab processes write it too) and
    written atomically. Only guesses are kept in one, so a file that is not a JSON object reads as empty."""

    def __init__(self, name):
        self.name = name
        self._lock = threading.Lock()  # the hosts of a fleet run write at once

    def path(self):
        return home() / self.name

    def read(self):
        try:
            book = json.loads(self.path().read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.info("%s is not JSON; starting it again", self.path())
            return {}
        return book if isinstance(book, dict) else {}

    def get(self, key):
        return self.read().get(key)

    def put(self, key, value):
        """Keep `value` under `key` (None: forget the key)."""
        with self._lock:
            book = self.read()
            if book.get(key) == value:
                return
            if value is None:
                book.pop(key, None)
            else:
                book[key] = value
            home().mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.path(), json.dumps(book, indent=2, sort_keys=True) + "\n")


def stack_dir(stack, create=True):
    path = home() / stack
    if create:
        # 0700: the directory holds private keys.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def outputs_file(stack):
    return home() / stack / "outputs.json"


def context_file(stack):
    return home() / stack / "context.json"


def read_context(stack):
    """The context the lab was last deployed with from here ({} when none is saved)."""
    path = context_file(stack)
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError("%s: not JSON (%s): fix or remove it (it is the context `mxlab up` "
                         "starts from)" % (path, exc)) from None
    return {str(k): str(v) for k, v in saved.items()}


def write_context(stack, context):
    stack_dir(stack)
    context_file(stack).write_text(json.dumps(context, indent=2, sort_keys=True) + "\n")


def region_file(stack):
    return home() / stack / "region"


def read_region(stack):
    """The region the lab was deployed to from here, or None."""
    path = region_file(stack)
    return (path.read_text().strip() or None) if path.is_file() else None


def write_region(stack, region):
    stack_dir(stack)
    region_file(stack).write_text(region + "\n")
