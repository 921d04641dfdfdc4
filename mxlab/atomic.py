"""Local files written whole or not at all: a temp file beside the target, then rename.

A crash or a full disk never leaves a half-written results file, private key or pinned
host-key list (which would then be trusted as it is).
"""
import os
import threading


def write_atomic(path, text, mode=None):
    """Replace `path` with `text`; `mode` (e.g. 0o600) is set before any byte is written."""
    # Per thread too: hosts run in threads, and two writing one file must not share a temp file.
    tmp = path.with_name(".%s.%d.%d.tmp" % (path.name, os.getpid(), threading.get_ident()))
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mode is None else mode)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)  # O_CREAT's mode is masked by umask
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if mode is None:
            os.chmod(str(tmp), 0o666 & ~_umask())
        os.replace(str(tmp), str(path))
    except BaseException:
        if os.path.exists(str(tmp)):
            os.unlink(str(tmp))
        raise


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current
