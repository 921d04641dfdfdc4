"""A kept connection (opt-in: MXLAB_KEEP_CONNECTION=1 or `mxlab run --keep-connection`): a holder process
(keep_holder.py), one per host, keeps an authenticated SSH transport to it and serves an SSH server of its own
on a 0600 unix socket in a 0700 folder. A Session then connects to that socket instead of the host: across a
far network that saves the TCP handshake, the key exchange and the authentication (5 round trips); every
channel (commands, SFTP) is forwarded over the held transport, so nothing above Session changes.

The holder is only ever a shortcut: a missing, stale or dead one means the direct connection, as without it.
"""
import errno
import fcntl
import hashlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import paramiko

from mxlab.lab import statedir

log = logging.getLogger(__name__)

ENV = "MXLAB_KEEP_CONNECTION"
IDLE_ENV = "MXLAB_KEEP_IDLE"  # seconds without a channel before the holder exits
IDLE_DEFAULT = 600
USER = "mxlab-held"  # the name the client gives the holder (the socket's owner check is the authentication)
_SUN_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def wanted():
    return os.environ.get(ENV, "") not in ("", "0")


def idle_timeout():
    try:
        return max(0.5, float(os.environ.get(IDLE_ENV, IDLE_DEFAULT)))
    except ValueError:
        return IDLE_DEFAULT


def key(target):
    return "%s@%s:%d" % (target.user, target.host, target.port)


def _private_dir(path):
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError("%s: not a private folder of this user" % path)
    return path


def folder(create=True, home=None):
    """Where the holders' sockets live: <home>/keep (0700; home: ~/.mxlab), or a short one of this user's under
    the runtime or temp dir where that path is too long for a unix socket's name."""
    where = Path(home or statedir.home()) / "keep"
    if len(str(where)) + 40 > _SUN_PATH_MAX:
        where = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / ("mxlab-keep-%d" % os.getuid())
    return _private_dir(where) if create else where


def paths(target):
    """(socket, pid file, holder's public key file) for `target`'s holder."""
    name = hashlib.sha256((str(statedir.home()) + "|" + key(target)).encode()).hexdigest()[:16]
    base = folder() / name
    return base.with_suffix(".sock"), base.with_suffix(".pid"), base.with_suffix(".pub")


def hold_lock(pid_path):
    """The holder's lock (an open file, flock'ed), or None where another holder of that name has it: two first
    runs may each start one; the second exits, and a pid file whose lock is free names no live holder."""
    handle = open(str(pid_path.with_suffix(".lock")), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise


def _locked(pid_path):
    """Whether a live holder holds pid_path's lock (the pid in the file may since be anyone's)."""
    try:
        handle = open(str(pid_path.with_suffix(".lock")), "a")
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        handle.close()


def holders(home=None):
    """[(pid, socket)] of the live holders of `home` (default ~/.mxlab; the socket folder may be shared by
    several)."""
    home = str(home or statedir.home())
    found = []
    try:
        where = folder(create=False, home=home)  # `mxlab down` makes no folder
        pid_files = sorted(_private_dir(where).glob("*.pid")) if where.exists() else []  # no one else's pids
    except OSError:
        return found
    for pid_path in pid_files:
        try:
            pid, owner = pid_path.read_text().split("\n")[:2]
        except (OSError, ValueError):
            continue
        if owner == home and _locked(pid_path):
            found.append((int(pid), pid_path.with_suffix(".sock")))
    return found


def stop_all(home=None):
    """End the holders of `home` (default ~/.mxlab; `mxlab down`: their hosts are going); the number ended."""
    ended = 0
    for pid, _ in holders(home):
        try:
            os.kill(pid, signal.SIGTERM)
            ended += 1
        except OSError:
            pass
    return ended


class Held:
    """What Session keeps in `client`: the transport to the holder, as paramiko.SSHClient gives its own."""

    def __init__(self, transport):
        self.transport = transport

    def get_transport(self):
        return self.transport

    def open_sftp(self):
        return self.transport.open_sftp_client()

    def close(self):
        self.transport.close()


def connect(target):
    """A Held through `target`'s holder, or None (no holder, or one that did not answer as it should)."""
    try:
        sock_path, _, pub_path = paths(target)
        if not sock_path.exists():
            return None
        expected = pub_path.read_text().strip()
    except OSError as exc:
        log.debug("%s: no kept connection (%s)", target.label, exc)
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    transport = None
    try:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        transport = paramiko.Transport(sock)
        transport.start_client(timeout=10)
        offered = transport.get_remote_server_key()
        if "%s %s" % (offered.get_name(), offered.get_base64()) != expected:
            raise paramiko.SSHException("the holder's key is not the one it wrote")
        transport.auth_none(USER)
        transport.set_keepalive(5)
        log.info("%s: through the kept connection (%s)", target.label, sock_path)
        return Held(transport)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        log.info("%s: kept connection not usable (%s); connecting directly", target.label, exc or type(exc).__name__)
        if transport is not None:
            transport.close()
        sock.close()
        return None


def start_holder(target):
    """Start `target`'s holder, detached (it connects on its own; this run goes on directly)."""
    try:
        sock_path, _, _ = paths(target)
        with open(str(sock_path.with_suffix(".log")), "ab") as log_file:  # why a holder did not start
            proc = subprocess.Popen([sys.executable, "-m", "mxlab.hosts.keep_holder", str(sock_path)],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log_file,
                                    start_new_session=True, close_fds=True)
        proc.stdin.write(pickle.dumps(target))
        proc.stdin.close()
        log.info("%s: started a holder for the connection (pid %d)", target.label, proc.pid)
    except OSError as exc:
        log.info("%s: no holder started (%s)", target.label, exc)
