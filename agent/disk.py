"""Room on the host's disk for model files: checked before a fetch writes, and ENOSPC while it writes.

A fetch that would not fit fails before it writes a byte, and one that fills the disk anyway (something
else wrote meanwhile) removes its partial file, so the space is back and nothing half-written stays
beside the cache. Either way the error says how much was needed and how much is free
(agent.contract.disk_full_message: mxlab names the host in it). Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import

import errno
import os

from agent.contract import disk_full_message
from agent.errors import AgentError


class DiskFull(AgentError):
    """Not enough free space for a model file (exit 1)."""


def free_bytes(path):
    """Bytes an unprivileged user may still write on the filesystem holding ``path`` (or its folder)."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    info = os.statvfs(path or ".")
    return info.f_bavail * info.f_frsize


def need(folder, count, what):
    """Raise DiskFull unless ``count`` more bytes fit where ``folder`` is."""
    free = free_bytes(folder)
    if count > free:
        raise DiskFull(disk_full_message(count, free, folder, what))


def is_full(err):
    return getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT)


def full_while_writing(part_path, total, what):
    """The DiskFull for a write that hit ENOSPC: the partial file is removed first (its space is back)."""
    try:
        os.remove(part_path)
    except OSError:
        pass
    folder = os.path.dirname(part_path)
    return DiskFull(disk_full_message(total, free_bytes(folder), folder, what + "; the partial file was removed"))
