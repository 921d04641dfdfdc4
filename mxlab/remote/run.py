"""One classification run on one host: start the agent detached, follow it, collect its results.

The agent runs under setsid/nohup with its own run directory (~/.mxlab-agent/runs/<id>/:
inputs/, results.jsonl, agent.log, pid, exit_code; names from agent.contract), so a dropped SSH
connection does not stop it: we reconnect, wait for exit_code and fetch what it wrote. Its
progress comes from its events in agent.log (mxlab.remote.agent_events).

Across a far network each round trip costs: one command makes the run folder, unpacks the inputs from a tar
stream on its stdin, starts the agent and then stays to follow it (agent.log's new bytes on its stderr; once
exit_code exists, the exit code and the results, framed, on its stdout), so a run waits for a few round trips,
not one per file and poll. A lost connection or anything unexpected on that channel falls back to following
over SFTP (reconnecting as needed), which is also how an agent started earlier is followed (attach).
"""
import json
import logging
import posixpath
import re
import select
import shlex
import socket
import tarfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import paramiko

from agent import contract
from mxlab.hosts import backoff, readiness
from mxlab.hosts.session import CLOUD_INIT_FRAME_END, guarded, start_command
from mxlab.remote.agent_events import AgentLog
from mxlab.errors import CommandTimeout, HostUnreachable, RemoteCommandError

log = logging.getLogger(__name__)

# What a dropped connection looks like from paramiko. (mxlab's own GaveUp and CommandTimeout are
# not OSErrors: a wait that has ended, or a slow command, never reads as one.)
CONNECTION_ERRORS = (EOFError, OSError, socket.error, paramiko.SSHException)
# Events worth a log line (-v) besides downloads at each quarter: a non-terminal log still shows them.
_LOGGED_EVENTS = ("classify", "engine", "resume", "retry", "verified", "warning", "error", "done")


# The start-and-follow command ($1 run dir, $2 the agent's command line for the `command` file, $3 the detached
# command, $4 seconds between liveness checks, $5 the results' temporary-file prefix, $6 1: inputs on stdin).
# Until the STARTED line its messages go to stdout (a failed start's reason); then stdout carries only the
# frames and stderr only agent.log's bytes. `cat` on one open descriptor continues where the last one stopped.
_START_AND_FOLLOW = r"""exec 4>&2 2>&1
mkdir -p "$1/inputs" && cd "$1" || exit 1
if [ "$6" = 1 ]; then tar -xf - || exit 1; fi
printf '%s\n' "$2" > command && : >> agent.log || exit 1
setsid nohup bash -c "$3" </dev/null >/dev/null 2>&1 &
pid=$!
echo "$pid" > pid || exit 1
echo "MXLAB-STARTED $pid"
exec 2>/dev/null 3<agent.log
alive() { { kill -0 "$pid" || [ -d "/proc/$pid" ]; } && ! grep -qs ') Z ' "/proc/$pid/stat"; }
nap=0.02 check=$((SECONDS + $4)) state=
while :; do
  [ -e exit_code ] && state=exit
  if [ -z "$state" ] && [ "$SECONDS" -ge "$check" ]; then
    check=$((SECONDS + $4))
    alive || { [ -e exit_code ] && state=exit || state=vanished; }
  fi
  cat <&3 >&4 || exit 1
  [ -n "$state" ] && break
  [ "$SECONDS" -ge 2 ] && nap=0.1
  sleep $nap
done
if [ "$state" = exit ]; then echo "MXLAB-EXIT $(cat exit_code)"; else echo MXLAB-VANISHED; fi
kind=none f=
if [ -f results.jsonl ]; then kind=complete f=results.jsonl
else for t in "$5"*; do [ -f "$t" ] && { kind=partial f=$t; break; }; done; fi
if [ -n "$f" ]; then size=$(( $(wc -c < "$f") )); echo "MXLAB-RESULTS $kind $size"; head -c "$size" "$f"
else echo "MXLAB-RESULTS none 0"; fi
echo MXLAB-END"""
_STARTED = re.compile(rb"MXLAB-STARTED [0-9]+\n")
# After the END frame, the channel's close (every byte of stderr before it) is awaited this long at most.
_CLOSE_WAIT_S = 10.0


# The exit status of a `ready` check (host.Prepared) that found the host not as the last run left it.
NOT_READY_EXIT = 214


class NotReady(Exception):
    """The run's command found the host not ready (its `ready` check failed) and started nothing: `output` is
    what the check printed instead (host.Prepared.script)."""

    def __init__(self, output):
        super().__init__("the host is not ready for the agent yet")
        self.output = output


class _Unexpected(Exception):
    """The follow command's channel ended or said something else than its frames: follow over SFTP instead."""


class _ChannelWriter:
    """What tarfile writes to: the start command's stdin."""

    def __init__(self, chan):
        self.chan = chan

    def write(self, data):
        self.chan.sendall(data)
        return len(data)


def is_url(item):
    return urllib.parse.urlparse(item).scheme in ("http", "https")


@dataclass
class RunSpec:
    """What to classify; the same for every host in a fleet run."""

    models: List[str]
    inputs: List[str]
    top_k: int = 5
    batch_size: Optional[int] = None
    zoo: Optional[str] = None
    env: Optional[str] = None
    engine: str = "mxnet"  # the agent's --engine (onnxruntime/auto install agent/requirements-onnx.txt)


@dataclass
class HostResult:
    label: str
    address: str
    status: str = "failed"  # ok | partial | failed
    records: list = field(default_factory=list)
    error: Optional[str] = None
    exit_code: Optional[int] = None
    environment: Optional[str] = None
    run_dir: Optional[str] = None
    reconnects: int = 0
    partial_results: bool = False  # records recovered from the agent's temporary file: the run did not finish
    warm_agent: Optional[bool] = None  # the host's warm agent (mxlab prepare) ran it; None: no word from the agent
    warm_reason: Optional[str] = None  # which warm agent, or why a fresh agent ran instead


class _Stopped(Exception):
    """Carries readiness.not_running()'s error out of a reconnect's retries (which retry on HostUnreachable)."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class Interrupted(Exception):
    """The operator stopped waiting (Ctrl-C): the agent goes on, on the host, in its run folder."""


def plan_uploads(inputs):
    """[(local path or None, argument for the agent)] with remote names relative to the run dir.

    Local files go to inputs/<name> (a number prefix only where names collide); directories keep
    their files under inputs/<dir name>/; URLs pass through.
    """
    plan, used = [], set()
    for i, item in enumerate(inputs):
        if is_url(item):
            plan.append((None, item, item))
            continue
        path = Path(item)
        name = path.resolve().name or "input"
        if name in used:
            name = "%d_%s" % (i, name)
        used.add(name)
        plan.append((path, contract.INPUTS_DIR + "/" + name, item))
    return plan


class RemoteRun:
    """Drives one agent run on an open Session. `on_progress(done, total, message)` gets live updates."""

    def __init__(self, session, spec, run_id, env_prefix, on_progress=None, reconnect_timeout=120,
                 poll=0.3, liveness_every=3.0, liveness_timeout=60, first_poll=0.04, stop=None, ready=None):
        self.session = session
        self.ready = ready  # host.Prepared: its check runs first in the start command (no readiness command)
        self.stop = stop  # a threading.Event: set, and wait() stops following (Interrupted); the agent goes on
        self.spec = spec
        self.run_id = run_id
        self.env_prefix = env_prefix
        self.on_progress = on_progress or (lambda done, total, msg: None)
        self.reconnect_timeout = reconnect_timeout
        self.poll = poll
        self.first_poll = first_poll  # a warm agent's one-photo run ends in ~0.2 s: look often for 1 s, then less
        self.liveness_every = liveness_every  # seconds between checks that the agent's pid still runs
        self.liveness_timeout = liveness_timeout
        self.vanished = False  # the agent's process went away without writing exit_code
        self.root = posixpath.join(session.home(), contract.REMOTE_ROOT)
        self.run_dir = posixpath.join(self.root, contract.RUNS_DIR, run_id)
        self.log_offset = 0
        self.agent_log = AgentLog(on_event=self._show)
        self._fetch_quarters = {}  # file -> quarter last logged
        self.reconnects = 0
        self.names = {}  # agent's image name -> operator's input
        self.dirs = []  # (remote dir/, operator's dir/) for files found in uploaded directories
        self._stream = None  # the start command's channel while it follows the agent
        self._out = b""  # what it wrote on stdout, not yet taken
        self._streamed = None  # (results text, complete) as the follow command sent them
        self._cloud_init = None  # stderr so far while the start command's cloud-init frame is still coming

    # ---- start --------------------------------------------------------------------------
    def _path(self, name):
        return posixpath.join(self.run_dir, name)

    def started_before(self):
        """Whether this run's agent was started on the host already (an interrupted mxlab's run, resumed)."""
        try:
            self.session.sftp().stat(self._path(contract.PID_FILE))
            return True
        except FileNotFoundError:
            return False

    def attach(self):
        """Follow an agent started earlier with the same inputs: the names mapping only, nothing uploaded."""
        self._inputs()
        log.info("%s: following the agent already started in %s", self.session.target.label, self.run_dir)

    def start(self):
        """Upload the inputs and start the agent detached: one command, which then stays to follow it."""
        args = self._inputs()
        files = [(local, arg) for local, arg, _ in plan_uploads(self.spec.inputs) if local is not None]
        agent, inner = self._agent_command(args)
        every = max(1, int(round(self.liveness_every)))
        prefix = contract.results_temp_prefix(contract.RESULTS_FILE)
        # The session's first command also waits for cloud-init (its frame first on stderr, see _pump).
        script, cloud_init = self.session.first_command((self.ready.script if self.ready else "")
                                                        + _START_AND_FOLLOW)
        self._cloud_init = b"" if cloud_init else None
        chan = self.session.channel(first_command=True)
        try:
            chan.settimeout(120)  # sends wait for the window this long at most; reads take only what is there
            start_command(chan, guarded(script, self.run_dir, " ".join(agent), inner, str(every), prefix,
                                        "1" if files else "0"))
            if files:
                with tarfile.open(fileobj=_ChannelWriter(chan), mode="w|") as tar:
                    for local, arg in files:
                        self._pack(tar, local, arg)
            chan.shutdown_write()
            deadline = time.monotonic() + max(self.session.timeout, 300)
            while not _STARTED.search(self._out):
                if not self._pump(chan):
                    rc = chan.recv_exit_status() if chan.exit_status_ready() else -1
                    if rc == -1:
                        raise EOFError("SSH connection lost while starting the agent")
                    if rc == NOT_READY_EXIT and self.ready is not None:
                        raise NotReady(self._out.decode("utf-8", "replace"))
                    said = self._out.decode("utf-8", "replace").strip()[-800:]
                    raise RemoteCommandError("%s: starting the agent failed (exit %d): %s"
                                             % (self.session.target.label, rc, said))
                if time.monotonic() > deadline:
                    raise CommandTimeout("%s: starting the agent timed out" % self.session.target.label)
        except BaseException:
            chan.close()
            raise
        self._stream = chan
        started = _STARTED.search(self._out)
        if self.ready is not None:
            self.ready.took(self._out[:started.start()].decode("utf-8", "replace"))
        self._out = self._out[started.end():]
        log.info("%s: agent started in %s", self.session.target.label, self.run_dir)

    def _pack(self, tar, local, arcname):
        """`local` (a file, or a folder with its files and folders; symlinks followed) into the tar stream."""
        if local.is_dir():
            info = tarfile.TarInfo(arcname)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(info)
            for child in sorted(local.iterdir()):
                if child.is_file() or child.is_dir():
                    self._pack(tar, child, arcname + "/" + child.name)
            return
        with open(str(local), "rb") as fh:  # a symlink's target, as SFTP put read it
            info = tarfile.TarInfo(arcname)
            st = local.stat()
            info.size, info.mode, info.mtime = st.st_size, 0o644, int(st.st_mtime)
            tar.addfile(info, fh)

    def _pump(self, chan, wait=0.2):
        """Take what the follow command sent (stderr: agent.log's bytes, fed to AgentLog; stdout: kept in _out);
        False once its channel has closed and everything is read."""
        got = False
        while chan.recv_stderr_ready():
            data = chan.recv_stderr(65536)
            if not data:
                break
            got = True
            if self._cloud_init is not None:  # the cloud-init frame, then agent.log's bytes
                data = self._after_cloud_init(data)
            self.log_offset += len(data)
            self.agent_log.feed(data)
        while chan.recv_ready():
            data = chan.recv(65536)
            if not data:
                break
            got = True
            self._out += data
        if got:
            return True
        if chan.closed or (chan.eof_received and not chan.get_transport().is_active()):
            return chan.recv_ready() or chan.recv_stderr_ready()
        select.select([chan], [], [], wait)
        return True

    def _after_cloud_init(self, data):
        """What of stderr's `data` follows the cloud-init frame (b"" until it has all come); the frame's verdict
        taken (HostUnreachable: cloud-init failed)."""
        self._cloud_init += data
        end = self._cloud_init.find(CLOUD_INIT_FRAME_END.encode())
        if end < 0:
            return b""
        end += len(CLOUD_INIT_FRAME_END)
        frame, rest, self._cloud_init = self._cloud_init[:end], self._cloud_init[end:], None
        self.session.after_cloud_init(frame.decode("utf-8", "replace"))
        return rest

    def _inputs(self):
        """The agent's input arguments, and the mapping of its image names back to the operator's inputs."""
        args = []
        for local, arg, original in plan_uploads(self.spec.inputs):
            if local is not None:
                remote = posixpath.join(self.run_dir, arg)
                self.names[remote] = original
                if local.is_dir():
                    self.dirs.append((remote.rstrip("/") + "/", original.rstrip("/") + "/"))
                args.append(remote)
            else:
                args.append(arg)
        return args

    def _agent_command(self, args):
        """(the agent's argv, the detached command that runs it and writes exit_code)."""
        # --warm: the host's warm agent (mxlab prepare) runs it if it can, else this process does.
        agent = ["python", "-m", "agent", "classify", contract.EVENTS_FLAG, "--warm",
                 "--model", ",".join(self.spec.models), "--top-k", str(self.spec.top_k),
                 "--out", self._path(contract.RESULTS_FILE)]
        if self.spec.batch_size:
            agent += ["--batch-size", str(self.spec.batch_size)]
        if self.spec.zoo:
            agent += ["--zoo", self.spec.zoo]
        if self.spec.engine != "mxnet":
            agent += ["--engine", self.spec.engine]
        agent += ["--"] + args if any(a.startswith("-") for a in args) else args
        log_file, exit_file = (shlex.quote(self._path(n)) for n in (contract.LOG_FILE, contract.EXIT_CODE_FILE))
        inner = ("cd %s && { %s; } >/dev/null 2>>%s && %s 2>>%s; echo $? > %s.tmp && mv %s.tmp %s"
                 % (shlex.quote(self.root), self.env_prefix, log_file, " ".join(shlex.quote(a) for a in agent),
                    log_file, exit_file, exit_file, exit_file))
        # The failure of env activation also has to produce an exit code: wrap in a subshell.
        inner = "( %s ) || { [ -f %s ] || echo %d > %s; }" % (inner, exit_file, contract.EXIT_FATAL, exit_file)
        return agent, inner

    # ---- follow -------------------------------------------------------------------------
    def _poll_once(self):
        transport = self.session.client.get_transport() if self.session.client else None
        if transport is None or not transport.is_active():
            raise EOFError("SSH transport closed")
        sftp = self.session.sftp()
        try:
            with sftp.open(self._path(contract.LOG_FILE)) as fh:
                fh.seek(self.log_offset)
                chunk = fh.read()
        except FileNotFoundError:  # not written yet; other OSErrors are a lost connection
            chunk = b""
        if chunk:
            self.log_offset += len(chunk)
            self.agent_log.feed(chunk)
        try:
            with sftp.open(self._path(contract.EXIT_CODE_FILE)) as fh:
                text = fh.read().decode().strip()
            return int(text) if text else contract.EXIT_FATAL
        except FileNotFoundError:
            return None

    def _show(self, evt):
        agent_log = self.agent_log
        self.on_progress(agent_log.done, agent_log.total, agent_log.message)
        if evt["event"] == "fetch":
            quarter = 4 * evt["bytes"] // evt["total"] if evt["total"] else None
            if self._fetch_quarters.get(evt["file"], -1) == quarter:
                return
            self._fetch_quarters[evt["file"]] = quarter
        elif evt["event"] not in _LOGGED_EVENTS:
            return
        if evt["event"] == "warning":  # something to know (a corrupted cache refetched, ...): shown without -v
            log.warning("%s: %s", self.session.target.label, agent_log.message)
            return
        log.info("%s: %s", self.session.target.label, agent_log.message)

    def _reconnect(self):
        """Reconnect within reconnect_timeout; at once readiness.not_running()'s error when the lab instance is
        stopped or gone (asked before each try: the stop ended the agent, no SSH server comes back)."""
        target = self.session.target
        stopped = readiness.stopped_now(target)
        if stopped is not None:
            raise stopped
        label = target.label
        self.reconnects += 1
        log.warning("%s: connection lost; reconnecting (the agent keeps running on the host)", label)
        self.on_progress(None, None, "connection lost, reconnecting")
        results = self._path(contract.RESULTS_FILE)

        def attempt():
            gone = readiness.stopped_now(target)
            if gone is not None:
                raise _Stopped(gone)
            return self.session.reconnect()

        try:
            backoff.retry(attempt, self.reconnect_timeout, "%s: reconnecting" % label,
                          retry_on=CONNECTION_ERRORS + (HostUnreachable,),
                          advice="The agent keeps running on the host: its results will be in %s (e.g. `mxlab ssh "
                                 "... -- cat %s`)." % (results, results))
        except _Stopped as exc:
            raise exc.error from None

    def _agent_alive(self):
        """False only when the run's pid file names a process that no longer exists (or is a zombie)."""
        pid_file = shlex.quote(self._path(contract.PID_FILE))
        try:
            rc, out, _ = self.session.exec(
                "pid=$(cat %s 2>/dev/null) || { echo nopid; exit 0; }; "
                "if { kill -0 \"$pid\" 2>/dev/null || [ -d \"/proc/$pid\" ]; } "
                "&& ! grep -qs ') Z ' \"/proc/$pid/stat\"; then echo alive; else echo gone; fi"
                % pid_file, timeout=self.liveness_timeout)
        except CommandTimeout as exc:  # a slow host is not a dropped connection, nor a dead agent
            log.info("%s; asking again later", exc)
            return True
        return not (rc == 0 and out.strip() == "gone")

    def wait(self):
        """Follow the log until the agent exits; returns its exit status.

        A process that is gone without an exit code (killed -9, host rebooted) counts as exit 1,
        with `vanished` set, instead of waiting for an exit code that will never come.
        """
        if self._stream is not None:
            try:
                return self._follow_stream()
            except (_Unexpected,) + CONNECTION_ERRORS as exc:
                log.info("%s: following the agent over SFTP instead (%s)", self.session.target.label,
                         exc or type(exc).__name__)
            finally:
                self._stream.close()
                self._stream = None
        next_check = time.monotonic() + self.liveness_every
        interval, began = self.first_poll, time.monotonic()
        while True:
            if self.stop is not None and self.stop.is_set():
                raise Interrupted("%s: interrupted; the agent goes on in %s" % (self.session.target.label,
                                                                                self.run_dir))
            try:
                code = self._poll_once()
                if code is None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.liveness_every
                    if not self._agent_alive():
                        code = self._poll_once()  # it may have written exit_code just before leaving
                        if code is None:
                            self.vanished = True
                            return contract.EXIT_FATAL
            except CONNECTION_ERRORS:
                self._reconnect()
                continue
            if code is not None:
                return code
            time.sleep(interval)
            if time.monotonic() - began > 1.0:  # not a warm one-photo run: back off to `poll`
                interval = min(self.poll, interval * 2)

    def _follow_stream(self):
        """The agent's exit status from the follow command's frames; _Unexpected when they are not all there."""
        chan = self._stream
        ended = None  # when the END frame came
        while self._pump(chan):
            if self.stop is not None and self.stop.is_set():
                raise Interrupted("%s: interrupted; the agent goes on in %s" % (self.session.target.label,
                                                                                self.run_dir))
            if ended is None and self._out.endswith(b"MXLAB-END\n"):
                ended = time.monotonic()
            if ended is not None and time.monotonic() - ended > _CLOSE_WAIT_S:
                break
        status, _, rest = self._out.partition(b"\n")
        header, _, rest = rest.partition(b"\n")
        words = header.split()
        try:
            if len(words) != 3 or words[0] != b"MXLAB-RESULTS" or words[1] not in (b"complete", b"partial", b"none"):
                raise ValueError(header)
            size = int(words[2])
            if rest[size:] != b"MXLAB-END\n":
                raise ValueError("results cut short")
            if status == b"MXLAB-VANISHED":
                code, self.vanished = contract.EXIT_FATAL, True
            elif status.startswith(b"MXLAB-EXIT"):
                text = status[len(b"MXLAB-EXIT"):].strip()
                code = int(text) if text else contract.EXIT_FATAL
            else:
                raise ValueError(status)
        except ValueError as exc:
            raise _Unexpected("the follow command's output ended or was not its frames: %s" % str(exc)[:80])
        self._streamed = rest[:size].decode("utf-8", "replace"), words[1] == b"complete"
        return code

    # ---- collect ------------------------------------------------------------------------
    def _read_results(self):
        if self._streamed is not None:
            return self._streamed
        sftp = self.session.sftp()
        try:
            with sftp.open(self._path(contract.RESULTS_FILE)) as fh:
                return fh.read().decode("utf-8", "replace"), True
        except FileNotFoundError:
            pass
        # Killed before it could rename: its temporary file still holds every finished line.
        prefix = contract.results_temp_prefix(contract.RESULTS_FILE)
        for name in sorted(n for n in sftp.listdir(self.run_dir) if n.startswith(prefix)):
            with sftp.open(self._path(name)) as fh:
                return fh.read().decode("utf-8", "replace"), False
        return "", False

    def local_name(self, image):
        if image in self.names:
            return self.names[image]
        for remote, local in self.dirs:
            if image and image.startswith(remote):
                return local + image[len(remote):]
        return image

    def collect(self):
        """(records, complete): the agent's result records, with image names mapped back to the
        operator's inputs; complete is False when they were recovered from its temporary file."""
        while True:
            try:
                text, complete = self._read_results()
                break
            except CONNECTION_ERRORS:
                self._reconnect()
        records = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill: everything before it is kept
            rec["image"] = self.local_name(rec.get("image"))
            records.append(rec)
        return records, complete


def run_on_host(session, spec, run_id, env_prefix, environment, on_progress=None, stop=None, attach=False,
                ready=None):
    """Start (`attach`: or follow, when this run's agent was started there before), follow and collect one run;
    returns a HostResult (never raises for agent failures; Interrupted when `stop` is set meanwhile).
    `ready`: a host.Prepared whose check the start command runs first (NotReady: it failed, nothing started);
    it names the environment."""
    target = session.target
    result = HostResult(label=target.label, address=target.address, environment=environment)
    run = RemoteRun(session, spec, run_id, env_prefix, on_progress, stop=stop, ready=ready)
    result.run_dir = run.run_dir
    if attach and run.started_before():
        run.attach()
    else:
        run.start()
        if ready is not None:
            result.environment = ready.environment
    code = run.wait()
    result.exit_code = code
    result.records, complete = run.collect()
    result.partial_results = not complete
    result.reconnects = run.reconnects
    if run.agent_log.warm is not None:
        result.warm_agent, result.warm_reason = run.agent_log.warm["used"], run.agent_log.warm["reason"]
    errors = sum(1 for r in result.records if "error" in r)
    if run.vanished:
        result.status = "failed"
        result.error = ("%s (%s): the agent process is gone without an exit code (killed or host rebooted); "
                        "%d partial result(s) kept from %s" % (target.label, target.address, len(result.records),
                                                               run.run_dir))
    elif code not in (contract.EXIT_OK, contract.EXIT_SOME_FAILED):
        result.status = "failed"
        failure = run.agent_log.failure() or "no output in agent.log"
        if contract.DISK_FULL + ":" in failure:  # named first, with the host: the operator has to free space there
            result.error = "%s; agent exited %d" % (contract.on_host(failure, target.label), code)
        else:
            result.error = "agent exited %d (%s): %s" % (code, contract.exit_meaning(code), failure)
        if result.partial_results and result.records:
            result.error += "; %d partial result(s) recovered" % len(result.records)
    elif result.partial_results:  # it said it finished, but its results never reached their name
        result.status = "partial"
        result.error = "%d result(s) recovered from the agent's temporary file" % len(result.records)
    elif code == contract.EXIT_SOME_FAILED:
        result.status = "partial"
        result.error = "some inputs failed: %d error record(s)" % errors
    else:
        result.status = "ok"
    return result
