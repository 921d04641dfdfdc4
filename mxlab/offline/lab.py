"""The whole lab on this machine, made of the real parts: the demo and the end-to-end test share it.

OfflineLab starts, in order, and stops in reverse (also when interrupted part-way):
- the AWS API emulator (moto on 127.0.0.1, mxlab/offline/emulator.py), in this process;
- the local model zoo over HTTP (mxlab/offline/zoo_server.py), in this process;
- the pinned `npx cdk deploy` of the lab stack into the emulator (outputs where `mxlab up` puts them);
- a throwaway sshd (mxlab/offline/lab_host.py) as the lab instance: it listens on the instance's public
  IP (the emulator hands out loopback addresses), its login user is the stack's `ssh_user` (a
  throwaway user as root, else this user with a throwaway home), it trusts the key pair the stack
  created (read back from SSM), and its host keys are what the emulated console output shows.

Every piece of state lives under one throwaway folder, removed on exit: MXLAB_HOME (keys, pinned
host keys, outputs), cdk.out, and the children's HOME, CDK_HOME and TMPDIR; the sshd host removes
its own folder (and user). Only the deploy log goes to `log_dir` when one is given.
"""
import contextlib
import io
import json
import os
import pwd
import shutil
import signal
import subprocess
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from mxlab.offline import REPO_ROOT
if str(REPO_ROOT) not in sys.path:  # cdk/ is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from mxlab.offline.emulator import AwsEmulator  # noqa: E402
from mxlab.offline import lab_host as sshd_host  # noqa: E402
from mxlab.offline.lab_host import SshdHost, free_port  # noqa: E402
from mxlab.offline.zoo_server import ZooServer  # noqa: E402

STACK = "MxnetLab"
# The emulator hands out 127.0.0.x public IPs; SSH is allowed from loopback only.
SSH_CIDR = "127.0.0.1/32"


def run_child(argv, env=None, log_path=None, cwd=REPO_ROOT, grace=5.0):
    """Run argv in its own process group; on any exception (Ctrl-C, SIGTERM) stop the whole group.

    Its own group, so that the CDK CLI (node), the CDK app's python and jsii's node are all
    stopped together; the terminal's Ctrl-C then reaches only us, and we pass it on.
    """
    out = open(log_path, "ab") if log_path else None
    try:
        proc = subprocess.Popen(argv, env=env, cwd=str(cwd), start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT if out else None)
        try:
            return proc.wait()
        except BaseException:
            _stop_group(proc, grace)
            raise
    finally:
        if out:
            out.close()


def _stop_group(proc, grace):
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            # The leader is gone; members may still be running.
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def _public_key_line(private_key_text):
    """'type base64' of an OpenSSH private key (the key pair's public half, as authorized_keys takes it)."""
    import paramiko
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            key = cls.from_private_key(io.StringIO(private_key_text))
        except (paramiko.SSHException, ValueError):
            continue
        return "%s %s" % (key.get_name(), key.get_base64())
    raise ValueError("the stack's private key is not an ed25519, ECDSA or RSA key")


class SelfLoginSshdHost(SshdHost):
    """The lab instance for a run without root: sshd as this user, who is also its login user.

    SshdHost makes a throwaway login user (useradd: root only). Here the sshd's `SetEnv HOME` and
    SFTP start folder (`internal-sftp -d`) point at the throwaway DLAMI-like home instead, so the
    agent, its runs, model cache and env choice land there and never in the real home.
    (A workaround kept here until mxlab/offline/lab_host.py offers it; it reuses that module's parts.)
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.user = pwd.getpwuid(os.getuid()).pw_name

    def _make_user(self):
        # SshdHost._make_user's home, less useradd/chown; self.uid stays None, so stop() does not
        # kill every process of this user (the demo's own included).
        self.home.mkdir()
        bashrc = ["# DLAMI-like: conda on PATH for interactive shells only"]
        if self.conda_envs:
            conda = self.home / "anaconda3"
            (conda / "bin").mkdir(parents=True)
            (conda / "bin" / "activate").write_text(sshd_host._ACTIVATE)
            for name in self.conda_envs:
                env = conda / "envs" / name
                subprocess.run([sshd_host.SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(env)], check=True)
                purelib = subprocess.run([str(env / "bin" / "python"), "-c",
                                          "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                         check=True, capture_output=True, text=True).stdout.strip()
                Path(purelib, "project-venv.pth").write_text(sshd_host.project_site_packages() + "\n")
            bashrc.append('case $- in *i*) export PATH="$HOME/anaconda3/bin:$PATH";; esac')
        (self.home / ".bashrc").write_text("\n".join(bashrc) + "\n")

    def start(self):
        # SshdHost.start with the two config lines above; no /run/sshd (only root's sshd needs it).
        self.dir = Path(tempfile.mkdtemp(prefix="mxlab-sshd-"))
        sshd_host._keygen(self.dir / "ssh_host_ed25519_key")
        sshd_host._keygen(self.dir / "ssh_host_ecdsa_key", "ecdsa")
        sshd_host._keygen(self.identity)
        (self.dir / "authorized_keys").write_text((self.dir / "user_key.pub").read_text().strip() + "\n")
        self._make_user()
        config = sshd_host._SSHD_CONFIG.format(port=self.port, address=self.address, dir=self.dir, user=self.user)
        config = config.replace("Subsystem sftp internal-sftp",
                                "SetEnv HOME=%s\nSubsystem sftp internal-sftp -d %s" % (self.home, self.home))
        (self.dir / "sshd_config").write_text(config)
        conf = str(self.dir / "sshd_config")
        subprocess.run([sshd_host.SSHD, "-t", "-f", conf], check=True)
        self.proc = subprocess.Popen([sshd_host.SSHD, "-D", "-f", conf, "-E", str(self.dir / "sshd.log")])
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((self.address, self.port), timeout=2) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "sshd.log").read_text() if (self.dir / "sshd.log").exists() else ""
                    self.stop()
                    raise RuntimeError("sshd on %s did not start: %s" % (self.hostspec, log[-500:]))
                time.sleep(0.1)

    def stop(self):
        # The agent runs detached (setsid) in the home: stop it by PID before the sshd goes.
        if self.dir is not None:
            for pid in _processes_in(self.dir):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        super().stop()


def _processes_in(folder):
    """PIDs (not ours) whose working directory is inside `folder`."""
    found, prefix = [], str(folder).rstrip("/") + "/"
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cwd = os.readlink("/proc/%s/cwd" % entry)
            except OSError:
                continue
            if (cwd + "/").startswith(prefix):
                found.append(int(entry))
    return found


def lab_host(**kw):
    """The lab instance: a throwaway login user as root (DLAMI-like), else this user (see above)."""
    return SshdHost(**kw) if os.geteuid() == 0 else SelfLoginSshdHost(**kw)


class OfflineLab:
    """Context manager: the lab stack deployed into the emulator, its instance played by an sshd.

    `say(text)` gets progress lines; `facts` (dict) records what was started (PIDs, ports,
    folders) as soon as it is known, for callers that check it is all gone afterwards.
    `log_dir`: where the deploy log goes (kept); default the throwaway folder.
    """

    def __init__(self, say=None, log_dir=None, on_fact=None, stack=STACK):
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.stack = stack
        self.log_dir = Path(log_dir) if log_dir else None
        self.on_fact = on_fact or (lambda facts: None)
        self.facts = {}
        self.state_dir = None
        self.emulator = None
        self.zoo = None
        self.host = None
        self.outputs = None
        self._stack = None

    def _fact(self, **kw):
        self.facts.update(kw)
        self.on_fact(dict(self.facts))

    # ---- what callers use -----------------------------------------------------------------
    @property
    def mxlab_home(self):
        return self.state_dir / "mxlab-home"

    @property
    def tmp_dir(self):
        """TMPDIR of the children: what a killed CDK app (jsii runtime) leaves goes with the state."""
        return self.state_dir / "tmp"

    @property
    def home_dir(self):
        """HOME of the children: the CDK CLI's and SDKs' caches (~/.cdk, ~/.cache) go with the state.
        (The CDK CLI finds its home in the password database: CDK_HOME overrides that.)"""
        return self.state_dir / "home"

    def _child_env(self, env):
        env["TMPDIR"] = str(self.tmp_dir)
        env["HOME"] = str(self.home_dir)
        env["CDK_HOME"] = str(self.home_dir / ".cdk")
        return env

    @property
    def ssh_port(self):
        return self.host.port

    @property
    def zoo_url(self):
        return self.zoo.url

    def env(self, base=None):
        """Environment for `mxlab ...` against this lab: emulator endpoint, fake credentials, own MXLAB_HOME."""
        env = self.emulator.env(base)
        env["MXLAB_HOME"] = str(self.mxlab_home)
        env.pop("MXLAB_SSH_PORT", None)
        env.pop("MXLAB_ZOO", None)
        env.pop("MXLAB_STACK", None)
        return self._child_env(env)

    def mxlab(self, *args, log_path=None):
        """Run `mxlab ARGS` (the project's CLI, a child process) against this lab; returns its exit status."""
        return run_child([sys.executable, "-m", "mxlab"] + [str(a) for a in args], env=self.env(),
                         log_path=log_path)

    # ---- life cycle -----------------------------------------------------------------------
    def __enter__(self):
        self._stack = contextlib.ExitStack()
        try:
            self._start()
        except BaseException:
            self._close(unwinding=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self._close(unwinding=exc_type is not None)

    def _close(self, unwinding):
        """Stop everything; a Ctrl-C or SIGTERM now must not cut that short (it would leave an sshd,
        its login user or the emulator behind), so such signals wait until it is done. When an
        error or interrupt is already unwinding, they are redundant and dropped."""
        if threading.current_thread() is not threading.main_thread():
            self._stack.close()
            return
        held = []
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, lambda signum, frame: held.append(signum)) for sig in signals}
        try:
            self._stack.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if held and not unwinding:
            self.say("stopped everything the lab started; now handling the signal received meanwhile")
            signal.raise_signal(held[0])

    def _start(self):
        stack = self._stack
        self.state_dir = Path(tempfile.mkdtemp(prefix="mxlab-demo-"))
        stack.callback(shutil.rmtree, str(self.state_dir), True)
        self.mxlab_home.mkdir(mode=0o700)
        self.tmp_dir.mkdir(mode=0o700)
        self.home_dir.mkdir(mode=0o700)
        self._fact(state_dir=str(self.state_dir))
        log_dir = self.log_dir or self.state_dir
        log_dir.mkdir(parents=True, exist_ok=True)

        self.say("starting the AWS API emulator on 127.0.0.1")
        self.emulator = AwsEmulator()
        stack.callback(self.emulator.stop)
        self.emulator.start()
        self._fact(emulator_port=self.emulator.port)

        self.say("serving the local model zoo (build/zoo) over HTTP on 127.0.0.1")
        self.zoo = ZooServer(str(REPO_ROOT / "build" / "zoo"))
        self.zoo.start()
        stack.callback(self.zoo.stop)
        self._fact(zoo_port=self.zoo.port)

        # The login user is chosen now: the stack is deployed with it as its ssh_user.
        self.host = lab_host(conda_envs=("mxnet_p36",))
        stack.callback(self.host.stop)
        self._fact(lab_user=self.host.user)

        deploy_log = log_dir / "deploy.log"
        self.say("deploying the lab stack into the emulator: npx cdk deploy -c ssh_cidr=%s (log: %s)"
                 % (SSH_CIDR, deploy_log))
        # Where `mxlab up` writes the outputs, so `mxlab run` finds the stack as after `mxlab up`.
        outputs_file = self.mxlab_home / self.stack / "outputs.json"
        outputs_file.parent.mkdir(mode=0o700)
        # Its own cdk.out: the CLI locks the folder, and other CDK runs may share the checkout.
        argv, env = self.emulator.cdk_command(
            "deploy", {"ssh_cidr": SSH_CIDR, "ssh_user": self.host.user, "stack_name": self.stack},
            outputs_file=outputs_file, stack=self.stack, extra=["--output", str(self.state_dir / "cdk.out")])
        code = run_child(argv, env=self._child_env(env), log_path=deploy_log)
        if code != 0:
            tail = deploy_log.read_text(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError("cdk deploy failed (exit %d); last lines of %s:\n%s"
                               % (code, deploy_log, "\n".join(tail)))
        self.outputs = json.loads(outputs_file.read_text())[self.stack]

        # The instance: an sshd on its (loopback) public IP.
        ip = self.outputs["Attendee1PublicIp"]
        self.host.address = ip
        self.host.port = free_port(ip)
        self.say("starting the lab instance: sshd on %s:%d, user %s, conda env mxnet_p36"
                 % (ip, self.host.port, self.host.user))
        self.host.start()
        self._fact(sshd_pid=self.host.proc.pid, sshd_address=ip, sshd_port=self.host.port,
                   sshd_dir=str(self.host.dir))
        # It trusts the key pair the stack made (the private key waits in SSM for mxlab) ...
        ssm = self.emulator.boto3_client("ssm")
        private = ssm.get_parameter(Name=self.outputs["Attendee1PrivateKeyParameter"],
                                    WithDecryption=True)["Parameter"]["Value"]
        self.host.authorize(_public_key_line(private))
        # ... and "boots" printing its host keys on the console, as cloud-init does.
        self.emulator.set_console_output(self.outputs["Attendee1InstanceId"], self.host.console_output())
        return self

