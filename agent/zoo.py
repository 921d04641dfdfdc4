"""Where models come from: a zoo at an http(s):// URL, a file:// URL or a directory.

A zoo is laid out like the MXNet model zoo (paths relative to its root, as in the
catalogue) and may hold a catalogue.json at its root. Over HTTP that catalogue is
kept beside the cache and asked for again with If-Modified-Since, so a repeated
run moves no body bytes when nothing changed.
"""
from __future__ import print_function, division, absolute_import

import hashlib
import io
import json
import os

try:  # Python 3
    from urllib.parse import quote, urlparse  # novermin
except ImportError:  # Python 2.7
    from urllib import quote  # novermin
    from urlparse import urlparse  # novermin

from agent import disk, download, reporter
from agent.catalogue import load_builtin, merged, Catalogue
from agent.errors import AgentError, FetchError, UsageError

DEFAULT_ZOO = "http://data.mxnet.io/models/imagenet/"
CATALOGUE_NAME = "catalogue.json"


def default_location():
    return os.environ.get("MXLAB_ZOO") or DEFAULT_ZOO


def _url2pathname(path):
    """urllib's url2pathname, imported only for a file:// zoo: urllib.request (and http.client with it) costs
    ~30 ms of every run's start-up, the operator's model check and the agent's alike (download.py's _http)."""
    try:  # Python 3
        from urllib.request import url2pathname  # novermin
    except ImportError:  # Python 2.7
        from urllib import url2pathname  # novermin
    return url2pathname(path)


class Zoo(object):
    def __init__(self, location):
        location = location or default_location()
        self.url = None
        self.root = None
        if location.startswith(("http://", "https://")):
            self.url = location if location.endswith("/") else location + "/"
        elif location.startswith("file://"):
            self.root = _url2pathname(urlparse(location).path)
        elif "://" in location:
            raise UsageError("zoo {0!r}: expected an http(s):// or file:// URL or a directory".format(location))
        else:
            self.root = os.path.abspath(os.path.expanduser(location))
        if self.root is not None and not os.path.isdir(self.root):
            raise UsageError("zoo directory {0!r} does not exist".format(self.root))
        self.is_default = self.url == DEFAULT_ZOO

    def __str__(self):
        return self.url or self.root

    def where(self, rel):
        """The URL or local path of a zoo-relative file."""
        if self.url:
            return self.url + quote(rel)
        return os.path.join(self.root, *rel.split("/"))

    def fetch_to(self, rel, part_path, policy, model):
        """Put the zoo file ``rel`` into ``part_path`` (resuming over HTTP), reporting fetch events."""
        name = rel.split("/")[-1]
        if self.url:
            return download.download(self.where(rel), part_path, policy, model, name)
        source = self.where(rel)
        if not os.path.isfile(source):
            raise FetchError("{0} not found in zoo {1}".format(rel, self.root))
        total = os.path.getsize(source)
        copied = 0
        disk.need(os.path.dirname(part_path), total, "{0} {1}".format(model, name))
        reporter.fetch(model, name, copied, total)
        try:
            with open(source, "rb") as src, open(part_path, "wb") as dst:
                for block in iter(lambda: src.read(download.CHUNK), b""):
                    dst.write(block)
                    copied += len(block)
                    reporter.fetch(model, name, copied, total)
        except (IOError, OSError) as err:
            if not disk.is_full(err):
                raise
            raise disk.full_while_writing(part_path, total, "{0} {1}".format(model, name))
        reporter.fetch(model, name, copied, total, last=True)
        return copied

    def catalogue(self, cache_dir, policy):
        """The models usable with this zoo: built-in ones updated by the zoo's catalogue."""
        document = self._catalogue_document(cache_dir, policy)
        return Catalogue(merged(load_builtin(), document, self.where(CATALOGUE_NAME)), self.is_default)

    def _catalogue_document(self, cache_dir, policy):
        if self.root is not None:
            path = self.where(CATALOGUE_NAME)
            return _parse_json(_read(path), path) if os.path.isfile(path) else None
        if self.is_default:
            return None  # the MXNet zoo publishes no catalogue
        return self._http_catalogue(cache_dir, policy)

    def _http_catalogue(self, cache_dir, policy):
        url = self.where(CATALOGUE_NAME)
        keep = os.path.join(cache_dir, ".zoos", hashlib.sha256(url.encode("utf-8")).hexdigest()[:16])
        kept_body = os.path.join(keep, CATALOGUE_NAME)
        kept_stamp = os.path.join(keep, "last-modified")
        headers = {}
        if os.path.isfile(kept_body) and os.path.isfile(kept_stamp):
            headers["If-Modified-Since"] = _read(kept_stamp).decode("ascii", "replace").strip()
        try:
            body, last_modified = download.read_small(url, policy, headers)
        except FetchError as err:
            status = getattr(err, "http_status", None)
            if status == 304:
                return _parse_json(_read(kept_body), url)
            if status in (403, 404):
                return None  # a zoo without a catalogue: built-in entries only
            if os.path.isfile(kept_body):
                reporter.emit("warning", message="{0}; using the copy kept from an earlier run".format(err))
                return _parse_json(_read(kept_body), url)
            raise
        document = _parse_json(body, url)
        make_dirs(keep)
        _write_atomic(kept_body, body)
        if last_modified:
            _write_atomic(kept_stamp, last_modified.encode("ascii", "replace"))
        return document


def make_dirs(path):
    try:
        os.makedirs(path)
    except OSError:
        if not os.path.isdir(path):
            raise


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _parse_json(body, source):
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise AgentError("zoo catalogue {0} is not valid JSON: {1}".format(source, err))


def _write_atomic(path, data):
    temp = path + ".tmp"
    with io.open(temp, "wb") as handle:
        handle.write(data)
    os.rename(temp, path)
