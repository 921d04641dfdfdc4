"""Command-line INPUTs -> named byte sources: image files, directories, http(s) URLs.

A directory contributes its image files (by extension, sorted by name, not
recursive). A problem with one input (missing, unreadable, unreachable, too big)
becomes that input's error, never the whole run's.
"""
from __future__ import print_function, division, absolute_import

import os

from agent import download
from agent.errors import FetchError, InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
MAX_INPUT_BYTES = 100 * 1024 * 1024


class Source(object):
    """One image to classify: ``name`` goes into the result, ``read()`` gives its bytes."""

    def __init__(self, name, reader=None, error=None):
        self.name = name
        self._reader = reader
        self._error = error

    def read(self):
        if self._error:
            raise InputError(self._error)
        return self._reader()


def expand(items, policy):
    """[Source] for the command-line inputs, in order (directories expanded, sorted)."""
    sources = []
    for item in items:
        if item.startswith(("http://", "https://")):
            sources.append(Source(item, _url_reader(item, policy)))
        elif "://" in item:
            sources.append(Source(item, error="unsupported input {0!r}: expected a file, a directory "
                                              "or an http(s):// URL".format(item)))
        elif os.path.isdir(item):
            names = sorted(name for name in os.listdir(item)
                           if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
            if not names:
                sources.append(Source(item, error="directory has no image files ({0})"
                                      .format(", ".join(IMAGE_EXTENSIONS))))
            for name in names:
                path = os.path.join(item, name)
                sources.append(Source(path, _file_reader(path)))
        elif os.path.exists(item):
            sources.append(Source(item, _file_reader(item)))
        else:
            sources.append(Source(item, error="no such file or directory"))
    return sources


def _file_reader(path):
    def read():
        try:
            size = os.path.getsize(path)
            if size > MAX_INPUT_BYTES:
                raise InputError("file is {0} bytes, more than the {1} byte limit".format(size, MAX_INPUT_BYTES))
            with open(path, "rb") as handle:
                return handle.read()
        except (IOError, OSError) as err:
            raise InputError("cannot read file: {0}".format(err.strerror or err))
    return read


def _url_reader(url, policy):
    def read():
        try:
            return download.read_bytes(url, policy, MAX_INPUT_BYTES)
        except FetchError as err:
            raise InputError(str(err))
    return read
