"""One SSH connection to a target: readiness (running, banner, cloud-init), pinned keys, commands."""
import logging
import select
import shlex
import socket
import time

import paramiko

from mxlab import backoff, hostkeys
from mxlab.aws import session as aws_session
from mxlab.errors import CommandTimeout, HostUnreachable, MxlabError, RemoteCommandError

log = logging.getLogger(__name__)


def describe_instance(instance_id, session_factory=None):
    """The instance's DescribeInstances record, or None."""
    ec2 = (session_factory or aws_session)().client("ec2")
    res = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return res[0]["Instances"][0] if res and res[0]["Instances"] else None


def refresh_target(target, session_factory=None):
    """Set target.state, and target.host to the instance's live public address when it has one:
    a stopped and started instance gets a new public IP, so the stack's outputs go stale."""
    inst = describe_instance(target.instance_id, session_factory)
    target.state = inst["State"]["Name"] if inst else "unknown"
    live = inst and (inst.get("PublicIpAddress") or inst.get("PublicDnsName"))
    if live and live != target.host:
        log.info("%s: instance %s is now at %s (was %s)", target.label, target.instance_id, live, target.host)
        target.host = live
    return target.state


def wait_running(target, timeout, session_factory=None):
    def attempt():
        state = refresh_target(target, session_factory)
        if state in ("terminated", "shutting-down", "stopped", "stopping"):
            raise HostUnreachable("%s: instance %s is %s (start it or redeploy with `mxlab up`)"
                                  % (target.label, target.instance_id, state))
        if state != "running":
            raise LookupError("instance %s is %s" % (target.instance_id, state))
    try:
        backoff.retry(attempt, timeout, "%s: waiting for instance %s to run" % (target.label, target.instance_id),
                      retry_on=(LookupError,))
    except TimeoutError as exc:
        raise HostUnreachable(str(exc))


def read_banner(host, port, timeout=10):
    """The SSH identification string the server sends first; raises OSError if none comes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = b""
        while b"\n" not in data and len(data) < 256:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"SSH-"):
        raise OSError("no SSH banner from %s:%d (got %r)" % (host, port, data[:40]))
    return data.split(b"\r\n")[0].split(b"\n")[0].decode("ascii", "replace")


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

    def __init__(self, target, timeout=300, session_factory=None):
        self.target = target
        self.timeout = timeout
        self.session_factory = session_factory
        self.client = None
        self._sftp = None

    # ---- connection ---------------------------------------------------------------------
    def connect(self, wait_cloud_init=True):
        t = self.target
        if t.instance_id:
            wait_running(t, self.timeout, self.session_factory)
        try:
            banner = backoff.retry(lambda: read_banner(t.host, t.port), self.timeout,
                                   "%s (%s): waiting for the SSH server" % (t.label, t.address),
                                   retry_on=(OSError,))
        except TimeoutError as exc:
            raise HostUnreachable(str(exc))
        log.debug("%s: %s", t.label, banner)
        if t.pin_from_console:
            hostkeys.pin_from_console(t, self.timeout, self.session_factory)
        self._open()
        if wait_cloud_init:
            self.wait_cloud_init()
        return self

    def _open(self):
        t = self.target
        pkey = load_identity(t.identity)
        client = paramiko.SSHClient()
        client.get_host_keys().update(hostkeys.load(t.known_hosts))
        client.set_missing_host_key_policy(hostkeys.RejectUnknownKey(t))

        def attempt():
            try:
                _connect()
            except BaseException:
                client.close()  # a failed connect leaves a transport (and its thread) behind
                raise

        def _connect():
            try:
                client.connect(t.host, port=t.port, username=t.user, pkey=pkey, look_for_keys=False,
                               allow_agent=False, timeout=15, banner_timeout=30, auth_timeout=30)
            except paramiko.BadHostKeyException as exc:
                raise hostkeys.mismatch_error(t, exc)
            except paramiko.AuthenticationException as exc:
                raise MxlabError("%s (%s): authentication as %r with key %s failed (%s): is it the key for "
                                 "this host and user?" % (t.label, t.address, t.user, t.identity, exc))
        try:
            backoff.retry(attempt, min(self.timeout, 60), "%s (%s): SSH connection" % (t.label, t.address),
                          retry_on=(OSError, EOFError, paramiko.SSHException))
        except TimeoutError as exc:
            raise HostUnreachable(str(exc))
        transport = client.get_transport()
        transport.set_keepalive(5)  # notice a dead peer while streaming progress
        self.client = client

    def reconnect(self):
        self.close()
        self.connect(wait_cloud_init=False)

    def wait_cloud_init(self):
        """Block until cloud-init is done (hosts without cloud-init count as done)."""
        rc, out, err = self.exec("if command -v cloud-init >/dev/null 2>&1; then "
                                 "cloud-init status --wait >/dev/null 2>&1 || cloud-init status; fi",
                                 timeout=self.timeout)
        if rc != 0:
            raise HostUnreachable("%s: cloud-init did not finish cleanly: %s"
                                  % (self.target.label, (out + err).strip()[-300:]))

    def close(self):
        for thing in (self._sftp, self.client):
            try:
                if thing is not None:
                    thing.close()
            except Exception:  # closing a dead connection must not hide the real error
                pass
        self._sftp = None
        self.client = None

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
        chan = self.client.get_transport().open_session(timeout=30)
        try:
            chan.settimeout(1.0)
            chan.exec_command("bash -c %s" % shlex.quote(command))
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
            return rc, "".join(out), b"".join(err).decode("utf-8", "replace")
        finally:
            chan.close()

    def _check_deadline(self, deadline, timeout):
        if time.monotonic() > deadline:
            raise CommandTimeout("%s: command timed out after %.0f s" % (self.target.label, timeout))

    def check(self, command, what, timeout=None, on_stdout=None):
        rc, out, err = self.exec(command, timeout=timeout, on_stdout=on_stdout)
        if rc != 0:
            raise RemoteCommandError("%s: %s failed (exit %d): %s"
                                     % (self.target.label, what, rc, (err or out).strip()[-800:]))
        return out

    def sftp(self):
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def home(self):
        return self.sftp().normalize(".")

