"""A real OpenSSH lab host on loopback: generated host and user keys, a throwaway home that looks like a
Deep Learning AMI's (or has no conda at all), for the sandbox, the demo and the tests.

The login user is the user running it (root or not): the host's sshd runs as that user and logs in as
that user, but every session gets the host's own throwaway home (`SetEnv HOME`, the SFTP start folder, and
the home's .bashrc changing into it), so the agent, its runs, model cache, venv and workspaces land there,
never in the real home. No other user is involved, so the host can read a checkout in a private (0700)
folder: the conda env `mxnet_p36` is a venv made with the system python3 whose site-packages point at the
project venv's packages (real MXNet, numpy, OpenCV).

Everything the host runs carries its mark (leftovers.py): halt() ends it all by PID, as an instance stop
does, and a killed owner's hosts are swept by the next start.

Usable from tests (fixtures_sshd.py), from scripts, and as `python -m mxlab.offline.lab_host
[--no-conda] [--port P]` (prints the connection facts as JSON and serves until interrupted).
"""
import argparse
import hashlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from mxlab.offline import REPO_ROOT, leftovers
from mxlab import status_codes
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SYSTEM_PYTHON = "/usr/bin/python3"
WHEELHOUSE = REPO_ROOT / "build" / "wheelhouse"
# One pip cache for every sandbox host: a room of hosts downloads JupyterLab (prepare's notebook) once.
HOST_PIP_CACHE = REPO_ROOT / "build" / "host-pip-cache"
# Where a host's enabled systemd user units are (mxlab/workshop/notebook_server.py): an instance start runs them.
USER_UNITS_WANTED = Path(".config") / "systemd" / "user" / "default.target.wants"

_ACTIVATE = r'''# conda-like `activate` (test double of the DLAMI's ~/anaconda3/bin/activate)
_mx_env="${1:-base}"
_mx_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
if [ ! -d "$_mx_root/envs/$_mx_env" ]; then
    echo "Could not find conda environment: $_mx_env" >&2
    return 1 2>/dev/null || exit 1
fi
export CONDA_DEFAULT_ENV="$_mx_env"
export CONDA_PREFIX="$_mx_root/envs/$_mx_env"
export PATH="$_mx_root/envs/$_mx_env/bin:$PATH"
'''

# cloud-init as a lab instance has it (the test machine has none): `status [--wait] [--long]` answers from
# ~/.instance/cloud-init-status: done (exit 0), recoverable (exit 2: "done, with recoverable errors",
# cloud-init >= 23.4) or error (exit 1).
_CLOUD_INIT = r"""#!/bin/sh
state="$(cat "$HOME/.instance/cloud-init-status" 2>/dev/null || echo done)"
[ "$1" = status ] || { echo "cloud-init (sandbox model): only 'status' is modelled" >&2; exit 1; }
case "$state" in
  done) echo "status: done"; exit 0 ;;
  recoverable) echo "status: done"; echo "extended_status: degraded done"
               echo "recoverable_errors:"; echo "WARNING:"
               echo "        - Failed to set locale en_US.UTF-8 (sandbox model)"; exit 2 ;;
  *) echo "status: error"; echo "errors:"
     echo "        - ('scripts_user', RuntimeError('runparts: 1 failed'))"; exit 1 ;;
esac
"""

_SSHD_CONFIG = """Port {port}
ListenAddress {address}
HostKey {dir}/ssh_host_ed25519_key
HostKey {dir}/ssh_host_ecdsa_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin {root_login}
AllowUsers {user}
X11Forwarding no
PrintMotd no
SetEnv HOME={home} {mark_variable}={mark}
Subsystem sftp internal-sftp -d {home}
"""


def free_port(address="127.0.0.1"):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _keygen(path, kind="ed25519"):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "mxlab-test", "-f", str(path)],
                   check=True, stdout=subprocess.DEVNULL)


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc/%s/stat" % entry).read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def project_site_packages():
    return sysconfig.get_paths()["purelib"] if sys.prefix != sys.base_prefix else str(
        REPO_ROOT / ".venv" / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages")


JUPYTER_REQUIREMENTS = REPO_ROOT / "mxlab" / "workshop" / "requirements-jupyterlab.txt"


def python_version_of(python3):
    """'X.Y' of an interpreter (None: this machine's)."""
    if python3 is None:
        return "%d.%d" % sys.version_info[:2]
    return subprocess.run([python3, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], check=True,
                          capture_output=True, text=True).stdout.strip()


def ensure_wheelhouse(requirements=(REPO_ROOT / "agent" / "requirements.txt",
                                    REPO_ROOT / "agent" / "requirements-python.txt"), python3=None):
    """Download the agent's pinned wheels (and uv's, for hosts whose python3 is too new) once (package
    registry) so venv installs need no index. python3: the hosts' own python3 where it is not this machine's
    (e.g. 3.12, as on Ubuntu 24.04): JupyterLab's venv is made with it, so its compiled wheels (cffi,
    pyzmq, ...) are fetched for that version too, as PyPI would serve them to that host."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(b"".join(Path(r).read_bytes() for r in requirements)).hexdigest()[:16]
    stamp = WHEELHOUSE / (".done-" + digest)
    if not stamp.exists():
        argv = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(WHEELHOUSE)]
        for path in requirements:
            argv += ["-r", str(path)]
        subprocess.run(argv, check=True)
        stamp.touch()
    # prepare's JupyterLab (a venv of its own) and the MXNet env's ipykernel: resolved on their own (their
    # pins need not agree with the agent's), downloaded once for every host that installs from here.
    version = python_version_of(python3)
    digest = hashlib.sha256(JUPYTER_REQUIREMENTS.read_bytes()).hexdigest()[:16]
    stamp = WHEELHOUSE / (".done-jupyter-%s-%s" % (version, digest))
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version",
                        version, "-d", str(WHEELHOUSE), "-r", str(JUPYTER_REQUIREMENTS)], check=True)
        stamp.touch()
    return WHEELHOUSE


class SshdHost:
    """One sshd on `address:port` with its own home. conda_envs: env names to lay out ([] = no conda).
    listen_port: where sshd itself listens on `address` when something else (a latency relay) holds
    `address:port`, the address clients use (known_hosts, hostspec); default `port`.

    start() makes the host (keys, home) the first time and starts its sshd; halt() ends everything running
    on it (sshd, sessions, detached agents) but keeps keys and home, as an instance stop does, and a later
    start() brings it back (on a new `address` if one was set meanwhile); stop() halts and removes it all.
    """

    def __init__(self, address="127.0.0.1", port=None, conda_envs=("mxnet_p36",), wheelhouse=None,
                 extra_authorized=(), parent_dir=None, cloud_init=None, python3=None, python_downloads=None,
                 listen_port=None):
        self.address = address
        self.port = port or free_port(address)
        self._listen_port = listen_port
        self.conda_envs = list(conda_envs)
        self.wheelhouse = wheelhouse
        self.extra_authorized = list(extra_authorized)
        self.parent_dir = parent_dir
        self.cloud_init = cloud_init  # None: no cloud-init on the host; else its status (see _CLOUD_INIT)
        # The host's `python3` (None: this machine's): e.g. a CPython 3.12, as on an Ubuntu 24.04 AMI.
        self.python3 = python3
        # uv's downloads list for `uv python install` (python_mirror.py): the host's way to GitHub.
        self.python_downloads = python_downloads
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.mark = leftovers.new_mark("host")
        self.dir = None
        self.proc = None

    # ---- facts for clients ----------------------------------------------------------------
    @property
    def home(self):
        return self.dir / "home"

    @property
    def identity(self):
        return self.dir / "user_key"

    @property
    def known_hosts(self):
        return self.dir / "known_hosts"

    @property
    def listen_port(self):
        """Where sshd listens on `address`: `port` itself unless a relay holds that."""
        return self._listen_port or self.port

    @property
    def hostspec(self):
        return "%s:%d" % (self.address, self.port)

    def host_key_lines(self):
        """'type base64' for each host key, as cloud-init prints them."""
        return [" ".join((self.dir / name).read_text().split()[:2])
                for name in ("ssh_host_ecdsa_key.pub", "ssh_host_ed25519_key.pub")]

    def console_output(self, prefix="ec2: "):
        """A first-boot log like an EC2 instance's, carrying this host's keys in cloud-init's block."""
        lines = ["[    0.000000] Linux version 5.15.0-1051-aws (buildd@lcy02-amd64-022)",
                 "[   12.345678] cloud-init[612]: Cloud-init v. 23.1 running 'modules:final'",
                 "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
                 "256 SHA256:notakeyjustafingerprint root@ip-10-0-0-12 (ED25519)",
                 "-----END SSH HOST KEY FINGERPRINTS-----",
                 "-----BEGIN SSH HOST KEY KEYS-----"]
        lines += [prefix + line + " root@ip-10-0-0-12" for line in self.host_key_lines()]
        lines += ["-----END SSH HOST KEY KEYS-----",
                  "[   20.000000] cloud-init[700]: Cloud-init v. 23.1 finished"]
        return "\n".join(lines) + "\n"

    def authorize(self, public_key_line):
        with open(self.dir / "authorized_keys", "a") as fh:
            fh.write(public_key_line.strip() + "\n")

    # ---- life cycle -----------------------------------------------------------------------
    def _make(self):
        self.dir = Path(tempfile.mkdtemp(prefix="mxlab-sshd-", dir=self.parent_dir))
        leftovers.record(self.mark, [self.dir], "lab host %s" % self.dir.name)
        _keygen(self.dir / "ssh_host_ed25519_key")
        _keygen(self.dir / "ssh_host_ecdsa_key", "ecdsa")
        _keygen(self.identity)
        (self.dir / "authorized_keys").write_text(
            "".join(l.strip() + "\n" for l in [(self.dir / "user_key.pub").read_text()] + self.extra_authorized))
        self._make_home()

    def start(self):
        if self.dir is None:
            self._make()
        entry = self.address if self.port == 22 else "[%s]:%d" % (self.address, self.port)
        self.known_hosts.write_text("".join("%s %s\n" % (entry, l) for l in self.host_key_lines()))
        config = self.dir / "sshd_config"
        config.write_text(_SSHD_CONFIG.format(
            port=self.listen_port, address=self.address, dir=self.dir, user=self.user, home=self.home,
            root_login="prohibit-password" if os.getuid() == 0 else "no",
            mark_variable=leftovers.MARK_VARIABLE, mark=self.mark))
        if os.getuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # root's sshd wants its privsep folder
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
        self._launch()
        self._start_user_units()
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((self.address, self.listen_port), timeout=2) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "sshd.log").read_text() if (self.dir / "sshd.log").exists() else ""
                    self.stop()
                    raise RuntimeError("sshd on %s did not start: %s" % (self.hostspec, log[-500:]))
                time.sleep(0.1)
        return self

    def _launch(self):
        env = dict(os.environ)
        env[leftovers.MARK_VARIABLE] = self.mark
        self.proc = subprocess.Popen([SSHD, "-D", "-f", str(self.dir / "sshd_config"),
                                      "-E", str(self.dir / "sshd.log")], env=env)
        leftovers.add_pid(self.mark, self.proc.pid)

    def _start_user_units(self):
        """The boot of a host with lingering systemd user units, as far as the lab needs it: no user manager
        here, so each enabled unit's ExecStart runs once, detached, with the host's mark (halt() ends it)."""
        wanted = self.home / USER_UNITS_WANTED
        for unit in sorted(wanted.glob("*.service")) if wanted.is_dir() else []:
            lines = [l.split("=", 1)[1].strip() for l in unit.read_text().splitlines() if l.startswith("ExecStart=")]
            if not lines:
                continue
            env = dict(os.environ, HOME=str(self.home))
            env[leftovers.MARK_VARIABLE] = self.mark
            proc = subprocess.Popen(["bash", "-c", lines[0].replace("%h", str(self.home))], cwd=str(self.home),
                                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            leftovers.add_pid(self.mark, proc.pid)

    def _make_home(self):
        self.home.mkdir()
        # sshd starts each session in the user's passwd home: go to this host's own home instead.
        bashrc = ['cd "$HOME" 2>/dev/null', "# DLAMI-like: conda on PATH for interactive shells only"]
        tools = self.home / ".instance" / "bin"
        if self.cloud_init or self.python3:
            tools.mkdir(parents=True)
            bashrc.insert(1, 'export PATH="$HOME/.instance/bin:$PATH"  # the instance\'s own tools')
        if self.cloud_init:
            (tools / "cloud-init").write_text(_CLOUD_INIT)
            (tools / "cloud-init").chmod(0o755)
            self.set_cloud_init(self.cloud_init)
        if self.python3:
            (tools / "python3").symlink_to(self.python3)
        if self.python_downloads:
            bashrc.insert(1, "export UV_PYTHON_DOWNLOADS_JSON_URL=%s  # the sandbox's python-build-standalone"
                          % shlex.quote(str(self.python_downloads)))
        if self.conda_envs:
            conda = self.home / "anaconda3"
            (conda / "bin").mkdir(parents=True)
            (conda / "bin" / "activate").write_text(_ACTIVATE)
            site_line = project_site_packages()
            for name in self.conda_envs:
                env = conda / "envs" / name
                subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(env)], check=True)
                purelib = subprocess.run([str(env / "bin" / "python"), "-c",
                                          "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                         check=True, capture_output=True, text=True).stdout.strip()
                Path(purelib, "project-venv.pth").write_text(site_line + "\n")
            bashrc.append('case $- in *i*) export PATH="$HOME/anaconda3/bin:$PATH";; esac')
        (self.home / ".bashrc").write_text("\n".join(bashrc) + "\n")
        pip_conf = self.home / ".config" / "pip" / "pip.conf"
        pip_conf.parent.mkdir(parents=True)
        HOST_PIP_CACHE.mkdir(parents=True, exist_ok=True)
        text = "[global]\ncache-dir = %s\n" % HOST_PIP_CACHE
        if self.wheelhouse:
            # The host's pip mirror: the same pinned wheels, no index needed.
            text += "find-links = %s\nno-index = true\n" % self.wheelhouse
        pip_conf.write_text(text)

    def set_cloud_init(self, status):
        """What `cloud-init status` says on this host from now on: done, recoverable or error."""
        (self.home / ".instance" / "cloud-init-status").write_text(status + "\n")

    def kill_sessions(self):
        """Kill the per-connection sshd processes: every client connection drops at once."""
        killed = []
        sessions = _children(self.proc.pid)
        # Each connection is a privileged monitor plus the user's unprivileged child: kill both.
        for pid in sessions + [g for p in sessions for g in _children(p)]:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        return killed

    def pause(self):
        """The SSH server goes away: open connections drop, no listener; running agents are untouched."""
        self.kill_sessions()
        self.proc.terminate()
        self.proc.wait(10)

    def resume(self):
        self._launch()

    def halt(self):
        """End everything running on the host (an instance stop); keys and home stay."""
        if self.proc is not None:
            leftovers.kill_marked(self.mark, [self.proc.pid])
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def stop(self):
        self.halt()
        if self.dir is not None:
            leftovers.kill_marked(self.mark)  # also what a paused host's sessions left running
            shutil.rmtree(self.dir, ignore_errors=True)
            leftovers.forget(self.mark)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mxlab.offline.lab_host", description=__doc__.splitlines()[0])
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--no-conda", action="store_true", help="no conda env: exercises the venv fallback")
    p.add_argument("--wheelhouse", action="store_true", help="point the host's pip at build/wheelhouse")
    p.add_argument("--python3", metavar="PATH", help="the host's python3 (e.g. a CPython 3.12, as on Ubuntu "
                   "24.04); uv's `python install` then gets CPython 3.11 from build/python-mirror")
    args = p.parse_args(argv)
    downloads = None
    if args.python3:
        from mxlab.offline.python_mirror import ensure_mirror
        downloads = ensure_mirror()
    host = SshdHost(args.address, args.port, conda_envs=() if args.no_conda else ("mxnet_p36",),
                    wheelhouse=ensure_wheelhouse(python3=args.python3) if args.wheelhouse else None,
                    python3=args.python3, python_downloads=downloads)
    host.start()
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        print(json.dumps({"host": host.hostspec, "user": host.user, "identity": str(host.identity),
                          "known_hosts": str(host.known_hosts), "home": str(host.home)}), flush=True)
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
    return status_codes.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
