"""The holder of a kept connection (keep.py): `python -m mxlab.hosts.keep_holder SOCKET`, the target pickled on
stdin. It connects to the host as a Session does (pinned host keys), then serves an SSH server on SOCKET
(0600; callers of another uid refused) whose every channel is forwarded to the host over that one transport.
It exits after MXLAB_KEEP_IDLE seconds without a channel (default 600), when its transport to the host dies, or
on SIGTERM (`mxlab down`, tests), removing its socket and pid file."""
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time

import paramiko

from mxlab.hosts import keep
from mxlab.lab import statedir
from mxlab.hosts.session import Session


def _request(chan, kind, value):
    """chan's exec/subsystem request without waiting for the answer (as session.start_command): the client's
    bytes meanwhile queue in order behind it."""
    m = paramiko.Message()
    m.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string(kind)
    m.add_boolean(True)
    m.add_string(value)
    chan.transport._send_user_message(m)  # paramiko==3.5.1, pinned


class Holder(paramiko.ServerInterface):
    def __init__(self, upstream, idle):
        self.upstream = upstream
        self.idle = idle
        self.active = 0
        self.last = time.monotonic()
        self.lock = threading.Lock()
        self.spare = None  # a session channel opened ahead: a client's channel then costs no round trip to open
        self._refill()

    # ---- the local SSH server: the socket's owner check is the authentication -----------------------
    def get_allowed_auths(self, username):
        return "none"

    def check_auth_none(self, username):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        return self._forward(channel, "exec", command)

    def check_channel_subsystem_request(self, channel, name):
        return self._forward(channel, "subsystem", name)

    # ---- forwarding ------------------------------------------------------------------------------
    def _refill(self):
        try:
            spare = self.upstream.open_session(timeout=30)
        except Exception:
            return  # the next _take opens its own; a dead transport ends the holder
        with self.lock:
            old, self.spare = self.spare, spare
        if old is not None:
            old.close()

    def _take(self):
        with self.lock:
            up, self.spare = self.spare, None
        threading.Thread(target=self._refill, daemon=True).start()
        if up is None or up.closed:
            up = self.upstream.open_session(timeout=30)
        return up

    def _forward(self, down, kind, value):
        try:
            up = self._take()
            _request(up, kind, value if isinstance(value, str) else value.decode("utf-8", "surrogateescape"))
        except Exception:
            self.upstream.close()  # the held transport is no use: the client's next connection goes direct
            return False
        with self.lock:
            self.active += 1
        threading.Thread(target=self._carry, args=(down, up), daemon=True).start()
        return True

    def _carry(self, down, up):
        def out(recv, send):
            try:
                while True:
                    data = recv(65536)
                    if not data:
                        return
                    send(data)
            except Exception:
                up.close()
                down.close()

        def inward():
            try:
                while True:
                    data = down.recv(65536)
                    if not data:
                        if down.closed:
                            up.close()
                        else:
                            up.shutdown_write()
                        return
                    up.sendall(data)
            except Exception:
                up.close()

        threads = [threading.Thread(target=out, args=(up.recv, down.sendall), daemon=True),
                   threading.Thread(target=out, args=(up.recv_stderr, down.sendall_stderr), daemon=True),
                   threading.Thread(target=inward, daemon=True)]
        for thread in threads:
            thread.start()
        threads[0].join()
        threads[1].join()
        try:
            rc = up.recv_exit_status()
            if rc != -1:
                down.send_exit_status(rc)
            down.shutdown_write()
        except Exception:
            pass
        down.close()
        up.close()
        with self.lock:
            self.active -= 1
            self.last = time.monotonic()

    def idle_for(self):
        with self.lock:
            return 0 if self.active else time.monotonic() - self.last


def _peer_uid(conn):
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _listen(sock_path):
    """The socket at sock_path, 0600 (a stale one of a dead holder replaced: the lock says none lives)."""
    try:
        os.unlink(str(sock_path))
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(sock_path))
    finally:
        os.umask(old)
    os.chmod(str(sock_path), 0o600)
    server.listen(16)
    server.settimeout(0.5)
    return server


def serve(target, sock_path):
    sock_path, pid_path, pub_path = keep.paths(target)
    lock = keep.hold_lock(pid_path)  # held until this process ends
    if lock is None:
        return  # another run's holder for this host started first
    session = Session(target, timeout=30)
    session._open_direct(quick_timeout=15)
    upstream = session.client.get_transport()
    host_key = paramiko.ECDSAKey.generate()
    pid_path.write_text("%d\n%s\n" % (os.getpid(), statedir.home()))
    pub_path.write_text("%s %s\n" % (host_key.get_name(), host_key.get_base64()))  # before a client can ask
    server = _listen(sock_path)
    holder = Holder(upstream, keep.idle_timeout())
    stopping = []
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(True))
    clients = []
    try:
        while not stopping and upstream.is_active() and holder.idle_for() < holder.idle:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            if _peer_uid(conn) != os.getuid():
                conn.close()  # the socket's mode should already keep them out
                continue
            holder.last = time.monotonic()
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            try:
                transport.start_server(server=holder)
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()
                continue
            clients.append(transport)
            clients = [c for c in clients if c.is_active()]
    finally:
        for path in (sock_path, pid_path, pub_path):  # ours: the lock kept any other holder of the name out
            try:
                os.unlink(str(path))
            except OSError:
                pass
        server.close()
        for c in clients:
            c.close()
        session.close()


def main():
    os.environ.pop(keep.ENV, None)  # its own connection is the direct one
    target = pickle.loads(sys.stdin.buffer.read())
    serve(target, sys.argv[1])


if __name__ == "__main__":
    main()
