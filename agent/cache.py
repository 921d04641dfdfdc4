"""The model cache: CACHE/<model>/<file name>, filled only with verified files.

Layout (documented in --help): each model's symbol, params and synset live in
CACHE/<model>/ under their zoo file names. The zoo is not part of the key; a file
pinned by sha256 is re-checked on every use, so switching to a zoo with other
pins fetches again. A download goes to CACHE/<model>/.<file>.part (kept across
runs so that it can be resumed), is checked (sha256 when pinned; the params must
load with mx.nd.load, the symbol must parse, the synset must be text), and only
then renamed into place; a file in the cache is therefore always a verified one.

A file may still change after it was verified (a full disk that cut a copy, a bit
flip, a person editing it): the sha256 it had when verified is kept beside it
(CACHE/<model>/.<file>.sha256) and every use hashes the file against it (or
against its pin). A file that no longer matches is said so in a warning, removed
and fetched once more; a refetch that does not verify either fails the run.
"""
from __future__ import print_function, division, absolute_import

import fcntl
import hashlib
import io
import os

from agent import reporter
from agent.catalogue import FILE_KINDS
from agent.disk import DiskFull
from agent.errors import FetchError
from agent.zoo import make_dirs

DEFAULT_CACHE = os.path.join("~", ".mxlab", "models")


def default_location():
    return os.path.expanduser(os.environ.get("MXLAB_CACHE") or DEFAULT_CACHE)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_model(name, entry, zoo, cache_dir, policy):
    """Local paths {symbol, params, synset} of ``name``, fetching what is missing."""
    model_dir = os.path.join(cache_dir, name)
    make_dirs(model_dir)
    pins = entry.get("sha256") or {}
    paths = {}
    with _Lock(os.path.join(model_dir, ".lock")):
        for kind in FILE_KINDS:
            rel = entry[kind]
            dest = os.path.join(model_dir, rel.split("/")[-1])
            pin = (pins.get(kind) or "").lower() or None
            if os.path.isfile(dest):
                if _still_verified(name, dest, pin):
                    paths[kind] = dest
                    continue
                os.remove(dest)
            _fetch_one(name, kind, rel, dest, pin, zoo, policy)
            paths[kind] = dest
    return paths


def missing_bytes(name, entry, cache_dir):
    """Bytes still to fetch for ``name`` by its catalogue ``sizes`` (files cached count 0, partial ones
    what they lack); a file the catalogue gives no size counts 0 (its download is checked when it starts)."""
    sizes = entry.get("sizes") or {}
    missing = 0
    for kind in FILE_KINDS:
        dest = os.path.join(cache_dir, name, entry[kind].split("/")[-1])
        if os.path.isfile(dest):
            continue
        part = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".part")
        have = os.path.getsize(part) if os.path.isfile(part) else 0
        missing += max(0, int(sizes.get(kind) or 0) - have)
    return missing


def record_path(dest):
    """Where the sha256 a cached file had when it was verified is kept."""
    return os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".sha256")


def _still_verified(name, dest, pin):
    """Whether the cached ``dest`` is the file that was verified: its sha256 is its pin, else the one
    recorded when it was verified. False (after a warning saying so) when it changed since."""
    record = record_path(dest)
    recorded = (_read_text(record) or "").strip() or None
    actual = sha256_of(dest)
    expected, source = (pin, "pinned") if pin else (recorded, "recorded when it was verified")
    if expected is None:
        # Cached by an agent that kept no record: it was verified then; from now on it is held to this hash.
        _write_text(record, actual)
        return True
    if actual == expected:
        if recorded != actual:
            _write_text(record, actual)
        return True
    reporter.emit("warning", message="{0}: cached {1} is corrupted or changed since it was verified ({2} bytes, "
                                     "sha256 {3}, not the {4} sha256 {5}); fetching it again"
                  .format(name, dest, os.path.getsize(dest), actual[:16], source, expected[:16]))
    return False


def _fetch_one(name, kind, rel, dest, pin, zoo, policy):
    part = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".part")
    origin = zoo.where(rel)
    stamp = part + ".from"
    # A partial file from another zoo must not be resumed with this one's bytes.
    if os.path.exists(part) and _read_text(stamp) != origin:
        os.remove(part)
    _write_text(stamp, origin)
    try:
        zoo.fetch_to(rel, part, policy, name)
    except DiskFull:
        _discard(part, stamp)  # nothing of it stays: a full disk needs every byte back
        raise
    actual = sha256_of(part)
    if pin is not None and actual != pin:
        _discard(part, stamp)
        raise FetchError("checksum mismatch for {0} (from {1}): expected sha256 {2}, got {3}; "
                         "the file was not cached".format(os.path.basename(dest), origin, pin, actual))
    try:
        _verify(kind, part)
    except Exception as err:  # mxnet raises MXNetError, json ValueError, ...
        _discard(part, stamp)
        raise FetchError("{0} (from {1}) is not a usable {2} file: {3}; the file was not cached"
                         .format(os.path.basename(dest), origin, kind, _first_line(err)))
    # The record first: a kill between the two leaves a record without its file (fetched again), never a
    # file held to a record of other bytes.
    _write_text(record_path(dest), actual)
    os.rename(part, dest)  # same folder: atomic
    _discard(stamp)
    reporter.emit("verified", model=name, file=os.path.basename(dest), sha256=actual)


def _verify(kind, path):
    if kind == "synset":
        with io.open(path, "r", encoding="utf-8") as handle:
            lines = [line for line in handle.read().splitlines() if line.strip()]
        if not lines:
            raise ValueError("no labels in it")
        return
    from agent import startup
    mx = startup.import_mxnet()  # lazily: listing models must not pay for it
    if kind == "symbol":
        mx.sym.load(path).list_arguments()
    else:
        if not mx.nd.load(path):
            raise ValueError("it holds no arrays")


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else err.__class__.__name__


def _discard(*paths):
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def _read_text(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except (IOError, OSError):
        return None


def _write_text(path, text):
    temp = path + ".tmp"
    with open(temp, "wb") as handle:
        handle.write(text.encode("utf-8"))
    os.rename(temp, path)  # never a half-written record


class _Lock(object):
    """An exclusive flock on CACHE/<model>/.lock: two agents never write one file."""

    def __init__(self, path):
        self.path = path
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()
        return False
