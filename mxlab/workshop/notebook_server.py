"""JupyterLab on a lab host, reachable only through SSH (`mxlab prepare`, unless --no-notebook).

On the host, in ~/.mxlab-agent/jupyter/:
  venv/        a Python 3 venv of its own with the pinned JupyterLab (workshop/requirements-jupyterlab.txt):
               the server never imports MXNet, so it never touches the MXNet environment;
  venv/share/jupyter/kernels/mxnet/  the kernel: the host's MXNet environment (env.sh, the conda
               mxnet_p36/mxnet_p27 env or the agent's venv) running ipykernel, pinned to what its Python runs;
  token        the attendee's random token (0600, made on the host, read back only by `mxlab handout` into
               that attendee's folder: never printed, logged or kept in the organiser's files);
  port         the server's port on the host (8888, or the next free one: in the sandbox every instance shares
               this machine's loopback, so each gets its own port and only its own tunnel reaches it);
  start.sh     what starts it: bound to 127.0.0.1 (no security-group change: port 22 stays the only way in),
               the token from the file, ~/mxnet-lab as its folder; server.log its log.
It is kept running across an instance stop/start by a systemd user unit (mxlab-jupyter.service, lingering
so it starts at boot without a login) where the host has a systemd user manager; where it has none (the
sandbox's hosts), prepare starts it itself and the unit is enabled as systemd would (a link in
default.target.wants), which the sandbox's instance start runs (offline/lab_host.py); a server that died is
started again by the next `prepare` or `mxlab notebook`.
"""
import hashlib
import json
import logging
import posixpath
import shlex
import time
from pathlib import Path

from agent import contract
from mxlab.errors import RemoteCommandError

log = logging.getLogger(__name__)

JUPYTER_DIR = "jupyter"  # under ~/.mxlab-agent
REQUIREMENTS = Path(__file__).resolve().parent / "requirements-jupyterlab.txt"
KERNEL_NAME = "mxnet"  # the workshop notebook's kernelspec name
FIRST_PORT = 8888
SERVER_PYTHON = (3, 10)  # jupyterlab 4.6's Requires-Python
PORT_TRIES = 40
UNIT = "mxlab-jupyter.service"
START_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 1800
# ipykernel for the MXNet env's Python, where it has none: the last release each Python runs.
IPYKERNEL_FOR = {(2, 7): "ipykernel==4.10.1", (3, 5): "ipykernel==5.1.4", (3, 6): "ipykernel==5.5.6",
                 (3, 7): "ipykernel==6.16.2", (3, 8): "ipykernel==6.29.5"}
IPYKERNEL_LATEST = "ipykernel==7.4.0"  # as in requirements-jupyterlab.txt (the sandbox's wheelhouse has it)

_START = """#!/bin/bash
# JupyterLab for the MXNet lab, written by `mxlab prepare`: 127.0.0.1 only (reach it through SSH), the token
# from the 0600 file beside this script (JUPYTER_TOKEN: never on a command line, never in the log).
cd "$HOME/{root}/{jupyter}" || exit 1
JUPYTER_TOKEN="$(cat token)" || exit 1
export JUPYTER_TOKEN
mkdir -p "$HOME/{workspace}"
as_root=""
[ "$(id -u)" = 0 ] && as_root=--allow-root  # the sandbox's hosts log in as whoever runs them
exec venv/bin/jupyter lab $as_root --no-browser --ip=127.0.0.1 --port="$(cat port)" --ServerApp.port_retries=0 \\
    --ServerApp.root_dir="$HOME/{workspace}" --KernelSpecManager.allowed_kernelspecs={kernel} \\
    --MappingKernelManager.default_kernel_name={kernel} >>server.log 2>&1
"""

# JupyterLab's own settings: no update check or news prompt (a lab host has no business asking jupyter.org).
_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"}}

_UNIT = """[Unit]
Description=JupyterLab for the MXNet lab (mxlab prepare; reach it through SSH)

[Service]
ExecStart=%h/{root}/{jupyter}/start.sh
Restart=on-failure
RestartSec=3

[Install]
WantedBy=default.target
"""

# Asked on the host with the server venv's Python: the token is read there and sent as a header, never printed.
_STATUS = r"""
import json, sys
try:
    from urllib.request import Request, urlopen
except ImportError:
    from urllib2 import Request, urlopen
port = open('port').read().strip()
token = open('token').read().strip()
out = {'port': int(port)}
try:
    for name, path in (('status', '/api/status'), ('sessions', '/api/sessions')):
        req = Request('http://127.0.0.1:%s%s' % (port, path), headers={'Authorization': 'token ' + token})
        out[name] = json.loads(urlopen(req, timeout=5).read().decode('utf-8'))
except Exception as exc:
    out['error'] = '%s: %s' % (type(exc).__name__, exc)
    print(json.dumps(out))
    sys.exit(1)
print(json.dumps(out))
"""

_FREE_PORT = r"""
import socket, sys
port = int(sys.argv[1])
for p in range(port, port + %d):
    s = socket.socket()
    # As the server binds (tornado sets it): a port whose last connections are in TIME_WAIT is free.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(('127.0.0.1', p))
    except socket.error:
        continue
    finally:
        s.close()
    print(p)
    break
""" % PORT_TRIES


def ipykernel_for(version):
    """The ipykernel requirement for a Python (major, minor)."""
    return IPYKERNEL_FOR.get(tuple(version), IPYKERNEL_LATEST)


def requirements_digest():
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]


class NotebookServer:
    """JupyterLab on the host of an open Session; env_prefix: what activates the MXNet environment."""

    def __init__(self, session, env_prefix=None, environment=None, say=None):
        self.session = session
        self.env_prefix = env_prefix
        self.environment = environment
        self.say = say or (lambda message: log.info("%s", message))
        self.home = session.home()
        self.dir = posixpath.join(self.home, contract.REMOTE_ROOT, JUPYTER_DIR)
        self.venv = posixpath.join(self.dir, "venv")

    @property
    def label(self):
        return self.session.target.label

    def _in_dir(self, command):
        return "cd %s && %s" % (shlex.quote(self.dir), command)

    # ---- set-up ---------------------------------------------------------------------------
    def ensure(self):
        """Install, register the kernel, start (or keep) it; returns what prepare keeps (no token)."""
        self.session.check("mkdir -p %s && chmod 700 %s" % (shlex.quote(self.dir), shlex.quote(self.dir)),
                           "making ~/%s/%s" % (contract.REMOTE_ROOT, JUPYTER_DIR))
        self.install()
        kernel = self.register_kernel()
        self._write_token()
        changed = self._write_start()
        kept_by = self._enable_unit()
        status = self.status()
        if status is None or changed:  # not running, or running as an older start.sh said
            status = self.start(kept_by)
        return {"port": status["port"], "kernel": kernel, "kept_running_by": kept_by,
                "started": (status.get("status") or {}).get("started")}

    def install(self):
        """The server venv with the pinned JupyterLab, once per requirements file (its digest marks it)."""
        ready = posixpath.join(self.venv, ".mxlab-ready-" + requirements_digest())
        rc, _, _ = self.session.exec("test -e %s" % shlex.quote(ready), timeout=60)
        if rc == 0:
            return
        probe = "import sys; print('%d.%d' % sys.version_info[:2])"
        rc, out, _ = self.session.exec("python3 -c %s" % shlex.quote(probe), timeout=60)
        version = out.strip()
        if rc != 0 or tuple(int(x) for x in version.split(".")) < SERVER_PYTHON:
            raise RemoteCommandError(
                "%s: JupyterLab (%s) needs python3 %d.%d or later for its own venv, and the host's python3 is %s: "
                "install a newer python3 there, or prepare with --no-notebook (the workshop then runs in a terminal)"
                % (self.label, REQUIREMENTS.name, SERVER_PYTHON[0], SERVER_PYTHON[1], version or "missing"))
        reqs = posixpath.join(self.dir, "requirements-jupyterlab.txt")
        self.session.sftp().put(str(REQUIREMENTS), reqs)
        self.say("%s: installing JupyterLab in its own venv (~/%s/%s/venv)" % (self.label, contract.REMOTE_ROOT,
                                                                             JUPYTER_DIR))
        self.session.check(self._in_dir(
            "rm -f venv/.mxlab-ready-* && python3 -m venv venv 2>&1 && venv/bin/python -m pip install "
            "--disable-pip-version-check -q -r requirements-jupyterlab.txt 2>&1 && touch %s" % shlex.quote(ready)),
            "installing JupyterLab", timeout=INSTALL_TIMEOUT_S)

    def register_kernel(self):
        """The `mxnet` kernel: ipykernel in the MXNet env (installed where missing), started through env.sh
        so that it has exactly the environment the agent runs in. Returns its display name."""
        env = "{ %s; } >/dev/null 2>&1 && " % self.env_prefix
        probe = "import sys; print('%d.%d' % sys.version_info[:2]); import ipykernel"
        rc, out, _ = self.session.exec(env + "python -c %s" % shlex.quote(probe), timeout=120)
        if rc != 0:
            version = tuple(int(x) for x in (out.strip().splitlines() or ["3.8"])[0].split("."))
            pin = ipykernel_for(version)
            self.say("%s: installing %s in %s for the notebook's kernel" % (self.label, pin, self.environment))
            self.session.check(env + "python -m pip install --disable-pip-version-check -q %s 2>&1"
                               % shlex.quote(pin), "installing %s in %s" % (pin, self.environment),
                               timeout=INSTALL_TIMEOUT_S)
        display = "MXNet (%s)" % (self.environment or "the lab's environment").split(" (WARNING")[0]
        # --norc and back to the notebook's folder: bash reads ~/.bashrc when it thinks sshd started it (a
        # server started from an SSH session passes SSH_CLIENT on), and activating may change folders.
        spec = {"argv": ["bash", "--norc", "-c", "d=\"$PWD\"; { %s; } >/dev/null 2>&1; cd \"$d\" && exec python -m "
                         "ipykernel_launcher -f \"$0\"" % self.env_prefix, "{connection_file}"],
                "display_name": display, "language": "python"}
        folder = posixpath.join(self.venv, "share", "jupyter", "kernels", KERNEL_NAME)
        self.session.check("mkdir -p %s" % shlex.quote(folder), "making the kernel's folder")
        with self.session.sftp().open(posixpath.join(folder, "kernel.json"), "w") as fh:
            fh.write(json.dumps(spec, indent=1).encode("utf-8"))
        return display

    def _write_token(self):
        # Made on the host, 0600 from its creation; an existing one is kept (the handout already has it).
        self.session.check(self._in_dir(
            "[ -s token ] || ( umask 077 && python3 -c 'import secrets; print(secrets.token_hex(24))' > token.tmp "
            "&& mv token.tmp token ); chmod 600 token"), "making the notebook's token")

    def _write_start(self):
        """start.sh and JupyterLab's settings; True when start.sh changed (a running server is restarted)."""
        text = _START.format(root=contract.REMOTE_ROOT, jupyter=JUPYTER_DIR, workspace="mxnet-lab",
                             kernel=KERNEL_NAME)
        path = posixpath.join(self.dir, "start.sh")
        try:
            with self.session.sftp().open(path) as fh:
                old = fh.read().decode("utf-8", "replace")
        except IOError:
            old = None
        with self.session.sftp().open(path, "w") as fh:
            fh.write(text.encode("utf-8"))
        self.session.sftp().chmod(path, 0o700)
        settings = posixpath.join(self.venv, "share", "jupyter", "lab", "settings")
        self.session.check("mkdir -p %s" % shlex.quote(settings), "making JupyterLab's settings folder")
        with self.session.sftp().open(posixpath.join(settings, "overrides.json"), "w") as fh:
            fh.write(json.dumps(_OVERRIDES, indent=1).encode("utf-8"))
        return old is not None and old != text

    def _enable_unit(self):
        """Write and enable the systemd user unit; returns what keeps the server running."""
        units = posixpath.join(self.home, ".config", "systemd", "user")
        wants = posixpath.join(units, "default.target.wants")
        self.session.check("mkdir -p %s" % shlex.quote(wants), "making the systemd user unit folder")
        with self.session.sftp().open(posixpath.join(units, UNIT), "w") as fh:
            fh.write(_UNIT.format(root=contract.REMOTE_ROOT, jupyter=JUPYTER_DIR).encode("utf-8"))
        rc, _, _ = self.session.exec("systemctl --user show-environment >/dev/null 2>&1", timeout=60)
        if rc == 0:
            # Lingering: the user's manager (and the unit) starts at boot, with nobody logged in.
            self.session.exec('loginctl enable-linger "$USER" 2>/dev/null || sudo -n loginctl enable-linger '
                              '"$USER" 2>/dev/null', timeout=60)
            self.session.check("systemctl --user daemon-reload && systemctl --user enable %s 2>&1" % UNIT,
                               "enabling %s" % UNIT)
            return "systemd user unit %s" % UNIT
        # No user manager: enabled as `systemctl enable` would (the sandbox's instance start runs it).
        self.session.check("ln -sfn ../%s %s" % (UNIT, shlex.quote(posixpath.join(wants, UNIT))),
                           "enabling %s" % UNIT)
        return "started by mxlab (no systemd user manager: %s enabled for boot)" % UNIT

    # ---- running ---------------------------------------------------------------------------
    def status(self):
        """The server's /api/status and /api/sessions asked with its token on the host, or None when no
        server of this host answers (a port another host's server holds refuses our token)."""
        rc, out, _ = self.session.exec(self._in_dir("[ -s port ] && venv/bin/python -c %s"
                                                    % shlex.quote(_STATUS)), timeout=60)
        if rc != 0:
            return None
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None

    def start(self, kept_by):
        """Start the server (a free port the first time, or when its port is taken); its status once it
        answers. Raises RemoteCommandError naming the log's last lines when it cannot start."""
        rc, out, _ = self.session.exec(self._in_dir("cat port 2>/dev/null"), timeout=60)
        port = int(out.strip()) if rc == 0 and out.strip().isdigit() else FIRST_PORT
        for _ in range(PORT_TRIES):
            port = self._free_port(port)
            self.session.check(self._in_dir("echo %d > port" % port), "saving the notebook's port")
            if kept_by.startswith("systemd"):
                self.session.check("systemctl --user restart %s" % UNIT, "starting %s" % UNIT)
                pid = None
            else:
                self._stop_detached()
                out = self.session.check(self._in_dir(
                    "{ setsid nohup ./start.sh </dev/null >/dev/null 2>&1 & echo $! > server.pid; cat server.pid; }"),
                    "starting JupyterLab")
                pid = int(out.strip())
            status, died = self._wait(pid)
            if status:
                self.say("%s: JupyterLab listening on the host's 127.0.0.1:%d" % (self.label, port))
                return status
            if not died:
                break
            _, tail, _ = self.session.exec(self._in_dir("tail -n 5 server.log"), timeout=60)
            if "already in use" not in tail:
                raise RemoteCommandError("%s: JupyterLab did not start: %s" % (self.label, " | ".join(
                    line.strip() for line in tail.splitlines() if line.strip())[-600:]))
            port += 1  # taken meanwhile (another instance of the sandbox): the next one
        raise RemoteCommandError("%s: JupyterLab did not answer within %d s (its log: ~/%s/%s/server.log)"
                                 % (self.label, START_TIMEOUT_S, contract.REMOTE_ROOT, JUPYTER_DIR))

    def _free_port(self, port):
        out = self.session.check(self._in_dir("venv/bin/python -c %s %d" % (shlex.quote(_FREE_PORT), port)),
                                 "finding a free port for JupyterLab")
        if not out.strip():
            raise RemoteCommandError("%s: no free port for JupyterLab from %d to %d" % (self.label, port,
                                                                                      port + PORT_TRIES))
        return int(out.strip())

    def _stop_detached(self):
        # Waits for it to end: its port is free again for the new one (the handout's tunnel points at it).
        self.session.exec(self._in_dir(
            "if [ -s server.pid ]; then p=$(cat server.pid); kill $p 2>/dev/null; "
            "for i in $(seq 100); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; fi; rm -f server.pid; true"),
            timeout=60)

    def _wait(self, pid):
        """(status, None) once it answers; (None, True) when its process ended; (None, False) on timeout."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            status = self.status()
            if status:
                return status, None
            if pid is not None:
                rc, _, _ = self.session.exec("kill -0 %d 2>/dev/null" % pid, timeout=60)
                if rc != 0:
                    return None, True
            time.sleep(1)
        return None, False

    def access(self):
        """(port on the host, token) for the attendee's handout: read from the 0600 files, never shown."""
        sftp = self.session.sftp()
        try:
            with sftp.open(posixpath.join(self.dir, "port")) as fh:
                port = int(fh.read().decode("utf-8").strip())
            with sftp.open(posixpath.join(self.dir, "token")) as fh:
                token = fh.read().decode("utf-8").strip()
        except (IOError, ValueError):
            return None, None
        return port, token


def kept_running_by(session):
    """What keeps a host's server running (as `ensure` set it up): the systemd user unit, or mxlab."""
    rc, _, _ = session.exec("systemctl --user show-environment >/dev/null 2>&1", timeout=60)
    return "systemd user unit %s" % UNIT if rc == 0 else "started by mxlab"


def ensure_running(session, say=None):
    """(port on the host, token) of the host's server, started again first if it died; None when the host was
    never prepared with the notebook."""
    server = NotebookServer(session, say=say)
    port, token = server.access()
    if token is None:
        return None
    if server.status() is None:
        server.say("%s: JupyterLab was not answering: starting it again" % server.label)
        server.start(kept_running_by(session))
        port, token = server.access()
    return port, token
