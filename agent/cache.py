"""The model cache: CACHE/<model>/<file name>, filled only with verified files.

Layout (documented in --help): each model's symbol, params and synset live in
CACHE/<model>/ under their zoo file names. The zoo is not part of the key; a file
pinned by sha256 is re-checked on every use, so switching to a zoo with other
pins fetches again. A download goes to CACHE/<model>/.<file>.part (kept across
runs so that it can be resumed), is checked (sha256 when pinned; the params must
load with mx.nd.load, the symbol must parse, the synset must be text), and only
then renamed into place; a file in the cache is therefore always a verified one.
"""
from __future__ import print_function, division, absolute_import

import fcntl
import hashlib
import io
import os

from agent import reporter
from agent.catalogue import FILE_KINDS
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
                if pin is None or sha256_of(dest) == pin:
                    paths[kind] = dest
                    continue
                reporter.emit("warning", message="{0}: cached {1} does not match its pinned sha256; "
                                                 "fetching it again".format(name, dest))
            _fetch_one(name, kind, rel, dest, pin, zoo, policy)
            paths[kind] = dest
    return paths


def _fetch_one(name, kind, rel, dest, pin, zoo, policy):
    part = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".part")
    origin = zoo.where(rel)
    stamp = part + ".from"
    # A partial file from another zoo must not be resumed with this one's bytes.
    if os.path.exists(part) and _read_text(stamp) != origin:
        os.remove(part)
    _write_text(stamp, origin)
    zoo.fetch_to(rel, part, policy, name)
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
    with open(path, "wb") as handle:
        handle.write(text.encode("utf-8"))


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
