"""One SSH connection to a ready target (readiness.py): pinned host keys, cloud-init, commands, SFTP."""
import logging
import re
import select
import shlex
import socket
import time

import paramiko

from mxlab.hosts import backoff, hostkeys, keep, readiness
from mxlab.errors import CommandTimeout, HostUnreachable, MxlabError, RemoteCommandError

log = logging.getLogger(__name__)

# `cloud-init status --wait`: 0 done, 2 done with recoverable errors (cloud-init >= 23.4), else failed.
_CLOUD_INIT = ("command -v cloud-init >/dev/null 2>&1 || { echo no-cloud-init; exit 0; }; "
               "cloud-init status --wait >/dev/null 2>&1; rc=$?; "
               "[ $rc = 0 ] || cloud-init status --long 2>&1 | tail -n 20; exit $rc")
# The same check ahead of the session's first command (a round trip fewer than a command of its own): its exit
# code and output framed at the start of stderr; the command runs only when cloud-init is done (0 or 2), else its
# stdin is read away (a run's inputs stream in meanwhile: the sender must not meet a closed channel) and it exits.
_CLOUD_INIT_FIRST = ('ci=$( { %s; } 2>&1 ); rc=$?; '
                     'printf "MXLAB-CLOUD-INIT %%s\\n%%s\\nMXLAB-CLOUD-INIT-END\\n" "$rc" "$ci" >&2; '
                     '[ $rc = 0 ] || [ $rc = 2 ] || { cat >/dev/null; exit %d; }\n')
_CLOUD_INIT_FAILED = 213
CLOUD_INIT_FRAME_END = "\nMXLAB-CLOUD-INIT-END\n"  # where the frame ends: a streaming reader waits for it
_CLOUD_INIT_FRAME = re.compile(r"MXLAB-CLOUD-INIT (-?[0-9]+)\n(.*?)" + re.escape(CLOUD_INIT_FRAME_END), re.S)


# Every command runs in its own process group under this guard. sshd leaves a command without a terminal
# running when its channel closes (the operator's mxlab killed, the laptop gone), so a pip install or a model
# fetch would go on unseen beside the next prepare's. The guard ends the command's group (TERM, then KILL)
# once the session's sshd is gone: its shell's parent, or that parent's parent, changed. Detached processes
# (the agent's runs, the warm agent) start their own session with setsid and are not in the group.
_GUARD = r"""exec 3<&0
setsid bash -c "$1" mxlab-command "${@:2}" <&3 3<&- &
c=$!
exec 3<&-
p=$PPID
ppid_of() { local s; s=$(cat /proc/$1/stat 2>/dev/null) || return 0; s=${s##*) }; set -- $s; echo "$2"; }
pp=$(ppid_of $p)
( while kill -0 $c 2>/dev/null; do
    if [ "$(ppid_of $$)" != "$p" ] || [ "$(ppid_of $p)" != "$pp" ]; then
      kill -TERM -- -$c 2>/dev/null; sleep 3; kill -KILL -- -$c 2>/dev/null; exit 0
    fi
    sleep 1
  done ) </dev/null >/dev/null 2>&1 &
w=$!
wait $c; rc=$?
kill $w 2>/dev/null
exit $rc"""


def guarded(command, *args):
    """The exec line that runs `command` (its $1... `args`) with bash in its own process group, ended when its
    channel is lost."""
    return " ".join(["bash", "-c", shlex.quote(_GUARD), "mxlab-guard", shlex.quote(command)]
                    + [shlex.quote(a) for a in args])


def start_command(chan, command):
    """chan.exec_command(command) without waiting for the server's answer: across a far network that wait is a
    round trip, and stdin sent meanwhile reaches the command, as sshd takes a channel's messages in order.
    A refusal still ends it: paramiko closes the channel, which its reader sees as a lost connection."""
    m = paramiko.Message()
    m.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("exec")
    m.add_boolean(True)
    m.add_string(command)
    chan.transport._send_user_message(m)  # paramiko==3.5.1, pinned: exec_command's own first half


def load_identity(path):
    try:
        return paramiko.PKey.from_path(str(path))
    except FileNotFoundError:
        raise MxlabError("identity %s: no such file" % path)
    except (paramiko.SSHException, ValueError, TypeError) as exc:
        # The exception text never contains key material, only what failed to parse.
        raise MxlabError("identity %s: not a private key paramiko can use (%s)" % (path, exc))


class Session:
    """A ready, authenticated connection; exec() runs a command, sftp() gives file access."""

    def __init__(self, target, timeout=backoff.READY_TIMEOUT):
        self.target = target
        self.timeout = timeout
        self.client = None
        self._sftp = None
        self._home = None
        self._cloud_init_pending = False  # connect()'s wait, done by the first command (see _CLOUD_INIT_FIRST)

    # ---- connection ---------------------------------------------------------------------
    def connect(self, wait_cloud_init=True, quick_timeout=None):
        """Open the connection to a target readiness.ready() has made ready; wait for cloud-init.
        quick_timeout: one attempt bounded by these seconds, no retries (readiness.reach's guess)."""
        self._open(quick_timeout)
        # Across a far network a command of its own costs round trips: the first command checks it instead
        # (exec); SFTP and bare channels check it first (cloud_init_checked).
        self._cloud_init_pending = bool(wait_cloud_init)
        return self

    def _open(self, quick_timeout=None):
        t = self.target
        if keep.wanted():
            held = keep.connect(t)
            if held is not None:
                self.client = held
                return
        self._open_direct(quick_timeout)
        if keep.wanted():
            keep.start_holder(t)  # for the next run; this one goes on directly

    def _open_direct(self, quick_timeout=None):
        t = self.target
        pkey = load_identity(t.identity)
        client = paramiko.SSHClient()  # no host keys of its own: PinnedKeyPolicy checks every key
        client.set_missing_host_key_policy(hostkeys.PinnedKeyPolicy(t))

        def attempt():
            try:
                _connect()
            except BaseException:
                client.close()  # a failed connect leaves a transport (and its thread) behind
                raise

        def _connect():
            sock = socket.create_connection((t.host, t.port), timeout=quick_timeout or 15)
            # Without it, each SFTP request waited ~40 ms here: paramiko writes a request in pieces, Nagle
            # holds the last piece until the server ACKs the first, and the server delays its ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                client.connect(t.host, port=t.port, username=t.user, pkey=pkey, look_for_keys=False,
                               allow_agent=False, timeout=quick_timeout or 15, banner_timeout=quick_timeout or 30,
                               auth_timeout=quick_timeout or 30, sock=sock)
            except paramiko.AuthenticationException as exc:
                sock.close()
                raise MxlabError("%s (%s): authentication as %r with key %s failed (%s): is it the key for "
                                 "this host and user?" % (t.label, t.address, t.user, t.identity, exc))
            except BaseException:
                sock.close()  # also when paramiko failed before its transport took the socket over
                raise
        if quick_timeout:
            attempt()
        else:
            backoff.retry(attempt, min(self.timeout, 60), "%s (%s): SSH connection" % (t.label, t.address),
                          retry_on=(OSError, EOFError, paramiko.SSHException))
        transport = client.get_transport()
        transport.set_keepalive(5)  # notice a dead peer while streaming progress
        self.client = client

    def reconnect(self):
        """After a dropped connection: the same host, once its SSH server answers again."""
        self.close()
        readiness.wait_ssh(self.target, self.timeout)
        self._open()

    def wait_cloud_init(self):
        """Block until cloud-init is done (hosts without cloud-init count as done). Returns a warning
        when it finished with recoverable errors (exit 2: the host is usable, the operator should know)."""
        self._cloud_init_pending = False
        rc, out, err = self.exec(_CLOUD_INIT, timeout=self.timeout)
        return self._cloud_init_verdict(rc, (out + err).strip()[-300:])

    def cloud_init_checked(self):
        """connect()'s cloud-init wait, now, unless a command did it already."""
        if self._cloud_init_pending:
            self.wait_cloud_init()

    def _cloud_init_verdict(self, rc, detail):
        if rc == 2:
            warning = "%s: cloud-init finished with recoverable errors (exit 2); going on: %s" % (
                self.target.label, detail)
            log.warning(warning)
            return warning
        if rc != 0:
            raise HostUnreachable("%s: cloud-init did not finish cleanly (exit %d): %s"
                                  % (self.target.label, rc, detail))
        return None

    def close(self):
        for thing in (self._sftp, self.client):
            try:
                if thing is not None:
                    thing.close()
            except Exception:  # closing a dead connection must not hide the real error
                pass
        self._sftp = None
        self.client = None
        self._cloud_init_pending = False  # a reconnect's connect() asks again

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- use ----------------------------------------------------------------------------
    def exec(self, command, timeout=None, stdin_data=None, on_stdout=None):
        """Run `command` with bash; return (exit status, stdout, stderr) as text.

        stdout and stderr are read together (neither can fill its window and stall the other);
        `timeout` (default: the session's, at least 300 s) bounds the whole command.
        """
        timeout = timeout or max(self.timeout, 300)
        deadline = time.monotonic() + timeout
        command, cloud_init = self.first_command(command)
        if cloud_init:
            timeout = max(timeout, self.timeout)
        chan = self.client.get_transport().open_session(timeout=30)
        try:
            chan.settimeout(1.0)
            start_command(chan, guarded(command))
            if stdin_data is not None:
                chan.sendall(stdin_data.encode("utf-8") if isinstance(stdin_data, str) else stdin_data)
            chan.shutdown_write()
            out, err, pending = [], [], b""
            while True:
                got = False
                if chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(65536))
                    got = True
                if chan.recv_ready():
                    data = chan.recv(65536)
                    got = True
                    if data:
                        pending += data
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            text = line.decode("utf-8", "replace") + "\n"
                            out.append(text)
                            if on_stdout:
                                on_stdout(text)
                if not got:
                    if (chan.eof_received or chan.closed) and not chan.recv_ready() and not chan.recv_stderr_ready():
                        break  # both streams drained (or the connection is gone)
                    self._check_deadline(deadline, timeout)
                    select.select([chan], [], [], 0.2)
            while not chan.exit_status_ready():  # a closed channel counts as ready (status -1)
                self._check_deadline(deadline, timeout)
                time.sleep(0.02)
            if pending:
                text = pending.decode("utf-8", "replace")
                out.append(text)
                if on_stdout:
                    on_stdout(text)
            rc = chan.recv_exit_status()
            if rc == -1:  # closed without an exit-status message
                raise EOFError("SSH connection lost while running a command")
            err = b"".join(err).decode("utf-8", "replace")
            return rc, "".join(out), self.after_cloud_init(err) if cloud_init else err
        finally:
            chan.close()

    def first_command(self, command):
        """(`command`, False); or, for the session's first command while connect()'s cloud-init wait is pending,
        (the wait and then `command`, True): its stderr then starts with the wait's frame, for
        after_cloud_init. For commands started on a channel() of their own (run.py's start-and-follow)."""
        cloud_init, self._cloud_init_pending = self._cloud_init_pending, False
        if cloud_init:
            return _CLOUD_INIT_FIRST % (_CLOUD_INIT, _CLOUD_INIT_FAILED) + command, True
        return command, False

    def after_cloud_init(self, err):
        """stderr without _CLOUD_INIT_FIRST's frame, once its verdict is taken (HostUnreachable: failed)."""
        frame = _CLOUD_INIT_FRAME.match(err)
        if frame is None:
            raise EOFError("SSH connection lost while checking cloud-init")
        self._cloud_init_verdict(int(frame.group(1)), frame.group(2).strip()[-300:])
        return err[frame.end():]

    def _check_deadline(self, deadline, timeout):
        if time.monotonic() > deadline:
            raise CommandTimeout("%s: command timed out after %.0f s" % (self.target.label, timeout))

    def check(self, command, what, timeout=None, on_stdout=None):
        rc, out, err = self.exec(command, timeout=timeout, on_stdout=on_stdout)
        if rc != 0:
            raise RemoteCommandError("%s: %s failed (exit %d): %s"
                                     % (self.target.label, what, rc, (err or out).strip()[-800:]))
        return out

    def channel(self, first_command=False):
        """A new session channel for a command that exec() does not run (streams, locks). `first_command`: its
        command comes from first_command(), which waits for cloud-init where connect()'s wait is pending."""
        if not first_command:
            self.cloud_init_checked()
        return self.client.get_transport().open_session(timeout=30)

    def sftp(self):
        if self._sftp is None:
            self.cloud_init_checked()
            self._sftp = self.client.open_sftp()
        return self._sftp

    def home(self):
        """The login's home folder, asked once per session (or told by a command that printed it)."""
        if self._home is None:
            self._home = self.sftp().normalize(".")
        return self._home

    def knows_home(self, home):
        """A command printed $HOME: home() need not ask."""
        self._home = home

