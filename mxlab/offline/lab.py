"""The whole lab on this machine, made of the real parts: `mxlab sandbox`, the demo and the tests share it.

OfflineLab starts, in order, and stops in reverse (also when interrupted part-way):
- the AWS API emulator (moto on 127.0.0.1, emulator.py), in this process;
- the local model zoo over HTTP (zoo_server.py), in this process;
- the pinned `npx cdk deploy --all` of the lab's stacks into the emulator (outputs where `mxlab up` puts them);
- one sshd per attendee instance (lab_host.py), listening on the instance's emulated public IP, logging in
  as this user with the instance's own throwaway home, trusting the key pair the stack made (read back from
  SSM), with the host keys that the instance's console output shows at first boot.
With `rtt_ms` (`mxlab sandbox --rtt MS [--bandwidth MBIT]`) the operator reaches the lab across a modelled
network (latency_relay.py): each instance's public address:port is a delaying relay, its sshd listening on
another port behind it, and the AWS API endpoint the lab hands out is a relay too (the lab's own deploy goes
straight to the emulator). The relays' counts (connections, round trips, bytes) are kept in
round-trips.json in the lab's folder (`MXLAB_SANDBOX_ROUND_TRIPS`).
Instances follow the emulator: a stop (StopInstances, the cost-guard alarm, a deadline) halts everything on
that instance; a start brings its sshd back on the new public IP with the same host keys and home; a
terminate removes it.

Every piece of state lives under one throwaway folder, removed on exit: MXLAB_HOME (keys, pinned host keys,
outputs), the instances, cdk.out, and the children's HOME, CDK_HOME and TMPDIR. What a killed lab leaves is
recorded (leftovers.py) and swept by the next start. Only the deploy log goes to `log_dir` when one is given.
"""
import contextlib
import io
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from cdk import cli as cdk_cli
from cdk import outputs as stack_outputs
from mxlab.offline import REPO_ROOT
from mxlab.offline import ec2_instances, leftovers, ssm_run_command
from mxlab.lab.targets import DEFAULT_STACK
from mxlab.offline.emulator import AwsEmulator
from mxlab.offline.lab_host import SshdHost, free_port
from mxlab.offline.latency_relay import LatencyNetwork, check_bandwidth, check_rtt, write_stats
from mxlab.offline.zoo_server import ZooServer

STACK = DEFAULT_STACK
ORGANISER = "mxlab-organiser"  # the IAM user of --enforce-iam
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


class OfflineLab:
    """Context manager: the lab's stacks deployed into the emulator, each attendee's instance an sshd.

    `say(text)` gets progress lines; `facts` (dict) records what was started (PIDs, ports, folders) as
    soon as it is known, for callers that check it is all gone afterwards (`on_fact` hears each change).
    `log_dir`: where the deploy log goes (kept); default the throwaway folder.
    `rtt_ms`: None, or the round-trip time (ms, 0 counts round trips without delay) between the operator and
    the lab, modelled by relays in front of every sshd and the AWS API; `bandwidth_mbit` paces their bytes.
    """

    def __init__(self, attendees=1, stack=STACK, instance_type=None, say=None, log_dir=None, on_fact=None,
                 conda_envs=("mxnet_p36",), throttle=0.0, host_python3=None, enforce_iam=False,
                 rtt_ms=None, bandwidth_mbit=None, zoo_dir=None):
        """zoo_dir: the local model zoo served to the hosts (default the checkout's build/zoo).
        enforce_iam: the emulator enforces IAM, and the lab is deployed and used as an organiser
        user with exactly `mxlab policy`'s policy (ORGANISER); `organiser` is then its credentials."""
        self.rtt_ms = None if rtt_ms is None else check_rtt(rtt_ms)
        self.bandwidth_mbit = check_bandwidth(bandwidth_mbit)
        if bandwidth_mbit is not None and rtt_ms is None:
            self.rtt_ms = 0  # a bandwidth alone: relays without delay
        self.network = None  # LatencyNetwork when modelled
        self.api_endpoint = None  # the AWS API as the operator reaches it
        self.sshd_port = None  # where the sshds listen behind the relays
        self.attendees = attendees
        self.zoo_dir = Path(zoo_dir) if zoo_dir else REPO_ROOT / "build" / "zoo"
        # An Ubuntu 24.04-like instance: this interpreter (e.g. a CPython 3.12) is its python3, no MXNet conda env.
        self.host_python3 = host_python3
        self.throttle = throttle
        self.enforce_iam = enforce_iam
        self.organiser = None
        self.stack = stack
        self.instance_type = instance_type
        self.conda_envs = conda_envs
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.log_dir = Path(log_dir) if log_dir else None
        self.on_fact = on_fact or (lambda facts: None)
        self.mark = leftovers.new_mark("lab")
        self.facts = {}
        self.state_dir = None
        self.emulator = None
        self.zoo = None
        self.outputs = None
        self.hosts = {}  # instance id -> SshdHost
        self.ssh_port = None
        self._lock = threading.Lock()
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

    @property
    def zoo_url(self):
        return self.zoo.url

    def instance_id(self, attendee):
        return self.outputs[stack_outputs.attendee(attendee, stack_outputs.INSTANCE_ID)]

    def host(self, attendee=1):
        """The SshdHost playing attendee `attendee`'s instance."""
        return self.hosts[self.instance_id(attendee)]

    def _child_env(self, env):
        # aws-cdk-lib as jsii unpacked it is no state of the lab: the organiser's cache, not one per lab's HOME.
        env[cdk_cli.PACKAGE_CACHE_VARIABLE] = str(cdk_cli.package_cache_root(env))
        env["TMPDIR"] = str(self.tmp_dir)
        env["HOME"] = str(self.home_dir)
        env["CDK_HOME"] = str(self.home_dir / ".cdk")
        env[leftovers.MARK_VARIABLE] = self.mark  # a killed lab's CDK CLI is swept by its mark
        return env

    def _as_organiser(self, env):
        """env with the organiser's keys instead of the emulator's own (--enforce-iam)."""
        if self.organiser:
            env.pop("AWS_SESSION_TOKEN", None)
            env.update(self.organiser)
        return env

    def variables(self):
        """What the plain commands (mxlab, the AWS CLI, boto3) need to use this lab, as `export` would set it."""
        aws = self._operator_aws(self._as_organiser(self.emulator.env({})))
        found = {key: aws[key] for key in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION",
                                            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_SESSION_TOKEN", "AWS_EC2_METADATA_DISABLED") if key in aws}
        if self.organiser:  # the administrator's keys, for what the organiser may not do (tests, by hand)
            admin = self.emulator.credentials
            found.update({"MXLAB_SANDBOX_ADMIN_ACCESS_KEY_ID": admin["AWS_ACCESS_KEY_ID"],
                          "MXLAB_SANDBOX_ADMIN_SECRET_ACCESS_KEY": admin["AWS_SECRET_ACCESS_KEY"]})
        found.update({"MXLAB_HOME": str(self.mxlab_home), "MXLAB_ZOO": self.zoo_url,
                      "MXLAB_SSH_PORT": str(self.ssh_port), "MXLAB_STACK": self.stack})
        if self.network is not None:
            found["MXLAB_SANDBOX_ROUND_TRIPS"] = str(self.round_trips_file)
        return found

    @property
    def round_trips_file(self):
        """The relays' counts as JSON (LatencyNetwork.stats()), rewritten as each connection opens or ends."""
        return self.state_dir / "round-trips.json"

    def round_trips(self):
        """The relays' counts now (LatencyNetwork.stats()); None without a modelled network."""
        return None if self.network is None else self.network.stats()

    def _operator_aws(self, env):
        if self.api_endpoint:
            env["AWS_ENDPOINT_URL"] = self.api_endpoint
        return env

    def env(self, base=None):
        """Environment for `mxlab ...` against this lab: emulator endpoint, fake credentials, own MXLAB_HOME.
        (MXLAB_SSH_PORT and MXLAB_ZOO are left out: the demo passes --ssh-port/--zoo explicitly.)"""
        env = self._operator_aws(self._as_organiser(self.emulator.env(base)))
        env["MXLAB_HOME"] = str(self.mxlab_home)
        env.pop("MXLAB_SSH_PORT", None)
        env.pop("MXLAB_ZOO", None)
        env.pop("MXLAB_STACK", None)
        return self._child_env(env)

    def mxlab(self, *args, log_path=None, cwd=REPO_ROOT):
        """Run `mxlab ARGS` (the project's CLI, a child process) against this lab; returns its exit status."""
        return run_child([sys.executable, "-m", "mxlab"] + [str(a) for a in args], env=self.env(),
                         log_path=log_path, cwd=cwd)

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
        """Stop everything; a Ctrl-C or SIGTERM now must not cut that short (it would leave an sshd or the
        emulator behind), so such signals wait until it is done. When an error or interrupt is already
        unwinding, they are redundant and dropped."""
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

    def _on_instance(self, event, instance_id, public_ip):
        """The emulator stopped, started or terminated an instance: do the same to its host."""
        with self._lock:
            host = self.hosts.get(instance_id)
            if host is None:
                return
            if event == "stop":
                self._unrelay(instance_id)
                host.halt()
            elif event == "start":
                host.address = public_ip
                host.start()
                self._relay(instance_id, host)
                self.say("instance %s started: sshd on %s:%d (same host keys)" % (instance_id, public_ip, host.port))
            elif event == "terminate":
                self._unrelay(instance_id)
                host.stop()
                del self.hosts[instance_id]

    def _run_command(self, instance_id, lines):
        """SSM Run Command on a hosted instance (ssm_run_command.py): its lines run with bash on this machine
        in the instance's home, /etc/ssh/ standing for the folder of its host keys. None: not hosted here."""
        with self._lock:
            host = self.hosts.get(instance_id)
        if host is None or host.dir is None:
            return None
        if lines is None:
            return 0, "", ""
        script = "\n".join(lines).replace("/etc/ssh/", str(host.dir) + "/")
        done = subprocess.run(["bash", "-c", script], cwd=str(host.home), capture_output=True, text=True,
                              timeout=60, env=dict(self._child_env(dict(os.environ)), HOME=str(host.home)))
        return done.returncode, done.stdout, done.stderr

    def _relay(self, instance_id, host):
        """The instance's public address:port, as the operator reaches it across the modelled network."""
        if self.network is not None:
            self.network.add(instance_id, (host.address, host.port), (host.address, host.listen_port))

    def _unrelay(self, instance_id):
        if self.network is not None:
            self.network.remove(instance_id)

    def _stop_hosts(self):
        with self._lock:
            for host in self.hosts.values():
                host.stop()
            self.hosts.clear()

    def _start(self):
        log_dir = self._make_state_dir()
        self._start_emulator()
        if self.rtt_ms is not None:
            self._model_network()
        self._start_zoo()
        user = self._deploy(log_dir)
        self._start_instances(user)
        self._stack.callback(ec2_instances.add_listener(self._on_instance))
        self._stack.callback(ssm_run_command.set_runner(self._run_command))
        return self

    def _make_state_dir(self):
        """The lab's temporary folder (recorded, so a dead lab's is swept next time); the log folder."""
        stack = self._stack
        for what, killed, removed in leftovers.sweep():
            self.say("swept the leftovers of a dead lab (%s): %d process(es) ended, %d folder(s) removed"
                     % (what, killed, len(removed)))
        self.state_dir = Path(tempfile.mkdtemp(prefix="mxlab-lab-"))
        leftovers.record(self.mark, [self.state_dir], "offline lab %s (pid %d)" % (self.stack, os.getpid()))
        stack.callback(leftovers.forget, self.mark)
        stack.callback(shutil.rmtree, str(self.state_dir), True)
        stack.callback(leftovers.kill_marked, self.mark)  # a CDK CLI still running when interrupted
        for folder in (self.mxlab_home, self.tmp_dir, self.home_dir, self.state_dir / "instances"):
            folder.mkdir(mode=0o700)
        self._fact(state_dir=str(self.state_dir))
        log_dir = self.log_dir or self.state_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        return log_dir

    def _start_emulator(self):
        """The AWS API emulator, throttling and enforcing IAM as asked (the organiser its IAM user)."""
        stack = self._stack
        self.say("starting the AWS API emulator on 127.0.0.1")
        self.emulator = AwsEmulator(enforce_iam=self.enforce_iam)
        stack.callback(self.emulator.stop)
        self.emulator.start()
        self._fact(emulator_port=self.emulator.port)
        if self.throttle:
            self.say("the emulator throttles %d %% of EC2, CloudFormation, SSM and Service Quotas calls"
                     % round(self.throttle * 100))
            self.emulator.set_throttle(self.throttle)
        if self.enforce_iam:
            from mxlab.lab import iam_policy
            from mxlab.offline.account import ACCOUNT_ID
            lab = iam_policy.Lab(self.stack, self.emulator.region, ACCOUNT_ID)
            self.organiser = self.emulator.add_user(
                ORGANISER, iam_policy.split(iam_policy.organiser_policy(lab)))
            self.say("IAM enforced: the lab is deployed and used as IAM user %s, with exactly the policy "
                     "`mxlab policy --stack %s` prints" % (ORGANISER, self.stack))

    def _model_network(self):
        """Relays with the asked round trip between the operator and the lab, the AWS API first."""
        stack = self._stack
        self.say("modelling the network to the lab: %g ms round trip%s (relays on 127.0.0.1)"
                 % (self.rtt_ms, ", %g Mbit/s" % self.bandwidth_mbit if self.bandwidth_mbit else ""))
        self.network = LatencyNetwork(self.rtt_ms, self.bandwidth_mbit,
                                      on_change=lambda stats: write_stats(self.round_trips_file, stats))
        stack.callback(self.network.close)
        api = self.network.add("aws-api", ("127.0.0.1", 0), ("127.0.0.1", self.emulator.port))
        self.api_endpoint = "http://%s:%d" % api
        self._fact(api_relay_port=api[1])

    def _start_zoo(self):
        stack = self._stack
        self.say("serving the local model zoo (%s) over HTTP on 127.0.0.1" % os.path.relpath(str(self.zoo_dir)))
        self.zoo = ZooServer(str(self.zoo_dir))
        self.zoo.start()
        stack.callback(self.zoo.stop)
        self._fact(zoo_port=self.zoo.port)

    def _deploy(self, log_dir):
        """`cdk deploy --all` of the real app into the emulator, the outputs and context saved where
        `mxlab up` saves them; returns the user every instance logs in as."""
        user = pwd.getpwuid(os.getuid()).pw_name  # every instance logs in as this user (its own home each)
        self._fact(lab_user=user)
        deploy_log = log_dir / "deploy.log"
        context = {"ssh_cidr": SSH_CIDR, "ssh_user": user, "stack_name": self.stack,
                   "attendees": str(self.attendees)}
        if self.instance_type:
            context["instance_type"] = self.instance_type
        self.say("deploying the lab (%d attendee%s) into the emulator: npx cdk deploy --all -c ssh_cidr=%s (log: %s)"
                 % (self.attendees, "" if self.attendees == 1 else "s", SSH_CIDR, deploy_log))
        # Where `mxlab up` writes the outputs, so `mxlab run` finds the stack as after `mxlab up`.
        outputs_file = self.mxlab_home / self.stack / "outputs.json"
        outputs_file.parent.mkdir(mode=0o700)
        # Its own cdk.out: the CLI locks the folder, and other CDK runs may share the checkout.
        argv, env = self.emulator.cdk_command(
            "deploy", context, outputs_file=outputs_file,
            extra=["--all", "--output", str(self.state_dir / "cdk.out")])
        code = run_child(argv, env=self._child_env(self._as_organiser(env)), log_path=deploy_log,
                         cwd=cdk_cli.app_dir(self.state_dir / "cdk-app"))
        if code != 0:
            tail = deploy_log.read_text(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError("cdk deploy failed (exit %d); last lines of %s:\n%s"
                               % (code, deploy_log, "\n".join(tail)))
        # ... and the context, as `mxlab up` saves it: a later `mxlab up` starts from it (mxlab/lab/redeploy.py).
        (outputs_file.parent / "context.json").write_text(json.dumps(context, indent=2, sort_keys=True) + "\n")
        every = json.loads(outputs_file.read_text())
        self.outputs = {}
        for outputs in every.values():  # shard stacks: attendee outputs are numbered lab-wide
            self.outputs.update(outputs)
        return user

    def _start_instances(self, user):
        """The instances: an sshd each on its (loopback) public IP, one port for all."""
        stack = self._stack
        stack.callback(self._stop_hosts)
        self.ssh_port = free_port()
        self.sshd_port = free_port() if self.network is not None else None
        ssm = self.emulator.boto3_client("ssm")
        image = {"conda_envs": self.conda_envs}
        if self.host_python3:
            # Its venv needs CPython 3.11 from uv (the mirror stands for GitHub) and pip's wheels (the wheelhouse).
            from mxlab.offline.lab_host import ensure_wheelhouse
            from mxlab.offline.python_mirror import ensure_mirror
            image = {"conda_envs": (), "python3": self.host_python3, "python_downloads": ensure_mirror(),
                     "wheelhouse": ensure_wheelhouse(python3=self.host_python3)}
        for n in range(1, self.attendees + 1):
            ip = self.outputs[stack_outputs.attendee(n, stack_outputs.PUBLIC_IP)]
            host = SshdHost(address=ip, port=self.ssh_port, parent_dir=str(self.state_dir / "instances"),
                            cloud_init="done",
                            listen_port=self.sshd_port, **image)
            self.say("starting attendee %d's instance: sshd on %s:%d, user %s, conda env %s%s"
                     % (n, ip, self.ssh_port, user, ",".join(image["conda_envs"]) or "none",
                        ", python3 %s" % self.host_python3 if self.host_python3 else ""))
            with self._lock:
                self.hosts[self.instance_id(n)] = host
            host.start()
            self._relay(self.instance_id(n), host)
            # It trusts the key pair the stack made (the private key waits in SSM for mxlab) ...
            parameter = self.outputs[stack_outputs.attendee(n, stack_outputs.PRIVATE_KEY_PARAMETER)]
            private = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
            host.authorize(_public_key_line(private))
            # ... and "boots" printing its host keys on the console, as cloud-init does (first boot only).
            self.emulator.set_console_output(self.instance_id(n), host.console_output())
            if n == 1:
                self._fact(sshd_pid=host.proc.pid, sshd_address=ip, sshd_port=self.ssh_port, sshd_dir=str(host.dir))
