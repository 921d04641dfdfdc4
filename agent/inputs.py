"""Command-line INPUTs -> named byte sources: image files, directories, http(s) URLs.

A directory contributes its image files (by extension, sorted by name, not
recursive). A problem with one input (missing, unreadable, unreachable, too big)
becomes that input's error, never the whole run's.

Only regular files are read, symlinks resolved first: a device, FIFO or socket is
refused by what the opened file IS (fstat), so neither /dev/zero nor a FIFO with
no writer can fill memory or hang the run, and every read stops at the byte limit
whatever size the file claims.
"""
from __future__ import print_function, division, absolute_import

import os
import stat

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
        elif os.path.islink(item):
            sources.append(Source(item, error="broken symlink to {0!r}".format(os.readlink(item))))
        else:
            sources.append(Source(item, error="no such file or directory"))
    return sources


_KINDS = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"),
          (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory"))


def file_kind(mode):
    """None for a regular file, else what it is ("FIFO", "character device", ...)."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "special file"


def _kind_of(path):
    try:
        return file_kind(os.stat(path).st_mode)
    except (IOError, OSError):
        return None


def _file_reader(path):
    return lambda: read_regular_file(path, MAX_INPUT_BYTES)


def read_regular_file(path, limit):
    """The bytes of ``path`` (symlinks resolved) if it is a regular file of at most ``limit`` bytes."""
    real = os.path.realpath(path)
    via = "" if real == os.path.abspath(path) else "; a symlink to {0}".format(real)
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one;
        # O_NOCTTY: a terminal device never becomes this process's controlling terminal.
        handle = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except (IOError, OSError) as err:
        kind = _kind_of(real)  # a socket cannot be opened at all: say what it is
        if kind:
            raise InputError("not a regular file ({0}{1})".format(kind, via))
        raise InputError("cannot read file: {0}{1}".format(err.strerror or err, via))
    try:
        info = os.fstat(handle)  # what was opened, not what a name said before
        kind = file_kind(info.st_mode)
        if kind:
            raise InputError("not a regular file ({0}{1})".format(kind, via))
        if info.st_size > limit:
            raise InputError("file is {0} bytes, more than the {1} byte limit{2}".format(info.st_size, limit, via))
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(handle, min(1024 * 1024, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        raise InputError("file is more than the {0} byte limit{1}".format(limit, via))
    except (IOError, OSError) as err:
        raise InputError("cannot read file: {0}{1}".format(err.strerror or err, via))
    finally:
        os.close(handle)


def _url_reader(url, policy):
    def read():
        try:
            return download.read_bytes(url, policy, MAX_INPUT_BYTES)
        except FetchError as err:
            raise InputError(str(err))
    return read
