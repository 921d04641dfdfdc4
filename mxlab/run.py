"""One classification run on one host: start the agent detached, follow it, collect its results.

The agent runs under setsid/nohup with its own run directory (~/.mxlab-agent/runs/<id>/:
inputs/, results.jsonl, agent.log, pid, exit_code), so a dropped SSH connection does not stop
it: we reconnect, wait for exit_code and fetch what it wrote.
"""
import json
import logging
import posixpath
import re
import shlex
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import paramiko

from mxlab import backoff
from mxlab.errors import HostUnreachable
from mxlab.install import REMOTE_ROOT

log = logging.getLogger(__name__)

_PROGRESS_RE = re.compile(r"(\d+)\s*/\s*(\d+)")
# What a dropped connection looks like from paramiko.
CONNECTION_ERRORS = (EOFError, OSError, socket.error, paramiko.SSHException)

EXIT_MEANING = {0: "all inputs classified", 3: "some inputs failed", 2: "agent usage error", 1: "agent fatal error"}


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
        plan.append((path, "inputs/" + name, item))
    return plan


def progress_of(text):
    """(done, total) from the agent's last progress line ('classified 3/8 inputs'), or None."""
    for line in reversed(text.splitlines()):
        m = _PROGRESS_RE.search(line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


class RemoteRun:
    """Drives one agent run on an open Session. `on_progress(done, total, message)` gets live updates."""

    def __init__(self, session, spec, run_id, env_prefix, on_progress=None, reconnect_timeout=120,
                 poll=0.3, liveness_every=3.0):
        self.session = session
        self.spec = spec
        self.run_id = run_id
        self.env_prefix = env_prefix
        self.on_progress = on_progress or (lambda done, total, msg: None)
        self.reconnect_timeout = reconnect_timeout
        self.poll = poll
        self.liveness_every = liveness_every  # seconds between checks that the agent's pid still runs
        self.vanished = False  # the agent's process went away without writing exit_code
        self.root = posixpath.join(session.home(), REMOTE_ROOT)
        self.run_dir = posixpath.join(self.root, "runs", run_id)
        self.log_offset = 0
        self.log_text = ""
        self.reconnects = 0
        self.names = {}  # agent's image name -> operator's input
        self.dirs = []  # (remote dir/, operator's dir/) for files found in uploaded directories

    # ---- start --------------------------------------------------------------------------
    def _upload(self, local, remote_rel, sftp):
        dest = posixpath.join(self.run_dir, remote_rel)
        if local.is_dir():
            sftp.mkdir(dest)
            for child in sorted(local.iterdir()):
                if child.is_file() or child.is_dir():
                    self._upload(child, remote_rel + "/" + child.name, sftp)
            return
        sftp.put(str(local), dest)

    def start(self):
        sftp = self.session.sftp()
        for d in ("runs", "runs/" + self.run_id, "runs/%s/inputs" % self.run_id):
            try:
                sftp.mkdir(posixpath.join(self.root, d))
            except IOError:
                pass  # exists
        args = []
        for local, arg, original in plan_uploads(self.spec.inputs):
            if local is not None:
                self._upload(local, arg, sftp)
                remote = posixpath.join(self.run_dir, arg)
                self.names[remote] = original
                if local.is_dir():
                    self.dirs.append((remote.rstrip("/") + "/", original.rstrip("/") + "/"))
                args.append(remote)
            else:
                args.append(arg)
        agent = ["python", "-m", "agent", "classify", "--model", ",".join(self.spec.models),
                 "--top-k", str(self.spec.top_k), "--out", posixpath.join(self.run_dir, "results.jsonl")]
        if self.spec.batch_size:
            agent += ["--batch-size", str(self.spec.batch_size)]
        if self.spec.zoo:
            agent += ["--zoo", self.spec.zoo]
        agent += ["--"] + args if any(a.startswith("-") for a in args) else args
        rd = shlex.quote(self.run_dir)
        inner = ("cd %s && { %s; } >/dev/null 2>>%s/agent.log && %s 2>>%s/agent.log; "
                 "echo $? > %s/exit_code.tmp && mv %s/exit_code.tmp %s/exit_code"
                 % (shlex.quote(self.root), self.env_prefix, rd, " ".join(shlex.quote(a) for a in agent),
                    rd, rd, rd, rd))
        # The failure of env activation also has to produce an exit code: wrap in a subshell.
        inner = "( %s ) || { [ -f %s/exit_code ] || echo 1 > %s/exit_code; }" % (inner, rd, rd)
        cmd = ("cd %s && printf '%%s\\n' %s > %s/command && "
               "setsid nohup bash -c %s </dev/null >/dev/null 2>&1 & echo $! > %s/pid"
               % (rd, shlex.quote(" ".join(agent)), rd, shlex.quote(inner), rd))
        self.session.check(cmd, "starting the agent")
        log.info("%s: agent started in %s", self.session.target.label, self.run_dir)

    # ---- follow -------------------------------------------------------------------------
    def _poll_once(self):
        transport = self.session.client.get_transport() if self.session.client else None
        if transport is None or not transport.is_active():
            raise EOFError("SSH transport closed")
        sftp = self.session.sftp()
        try:
            with sftp.open(posixpath.join(self.run_dir, "agent.log")) as fh:
                fh.seek(self.log_offset)
                chunk = fh.read()
        except FileNotFoundError:  # not written yet; other OSErrors are a lost connection
            chunk = b""
        if chunk:
            self.log_offset += len(chunk)
            self.log_text += chunk.decode("utf-8", "replace")
            prog = progress_of(self.log_text)
            last = self.log_text.strip().splitlines()[-1] if self.log_text.strip() else ""
            self.on_progress(prog[0] if prog else None, prog[1] if prog else None, last)
        try:
            with sftp.open(posixpath.join(self.run_dir, "exit_code")) as fh:
                text = fh.read().decode().strip()
            return int(text) if text else 1
        except FileNotFoundError:
            return None

    def _reconnect(self):
        label = self.session.target.label
        self.reconnects += 1
        log.warning("%s: connection lost; reconnecting (the agent keeps running on the host)", label)
        self.on_progress(None, None, "connection lost, reconnecting")
        try:
            backoff.retry(self.session.reconnect, self.reconnect_timeout, "%s: reconnecting" % label,
                          retry_on=CONNECTION_ERRORS + (HostUnreachable,))
        except TimeoutError as exc:
            raise HostUnreachable("%s. The agent keeps running on the host: its results will be in "
                                  "%s/results.jsonl (e.g. `mxlab ssh ... -- cat %s/results.jsonl`)."
                                  % (exc, self.run_dir, self.run_dir))

    def _agent_alive(self):
        """False only when the run's pid file names a process that no longer exists (or is a zombie)."""
        pid_file = shlex.quote(posixpath.join(self.run_dir, "pid"))
        rc, out, _ = self.session.exec(
            "pid=$(cat %s 2>/dev/null) || { echo nopid; exit 0; }; "
            "if { kill -0 \"$pid\" 2>/dev/null || [ -d \"/proc/$pid\" ]; } "
            "&& ! grep -qs ') Z ' \"/proc/$pid/stat\"; then echo alive; else echo gone; fi"
            % pid_file, timeout=60)
        return not (rc == 0 and out.strip() == "gone")

    def wait(self):
        """Follow the log until the agent exits; returns its exit status.

        A process that is gone without an exit code (killed -9, host rebooted) counts as exit 1,
        with `vanished` set, instead of waiting for an exit code that will never come.
        """
        next_check = time.monotonic() + self.liveness_every
        while True:
            try:
                code = self._poll_once()
                if code is None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.liveness_every
                    if not self._agent_alive():
                        code = self._poll_once()  # it may have written exit_code just before leaving
                        if code is None:
                            self.vanished = True
                            return 1
            except CONNECTION_ERRORS:
                self._reconnect()
                continue
            if code is not None:
                return code
            time.sleep(self.poll)

    # ---- collect ------------------------------------------------------------------------
    def _read_results(self):
        sftp = self.session.sftp()
        final = posixpath.join(self.run_dir, "results.jsonl")
        try:
            with sftp.open(final) as fh:
                return fh.read().decode("utf-8", "replace"), True
        except FileNotFoundError:
            pass
        # Killed before it could rename: its temporary file still holds every finished line.
        partial = [n for n in sftp.listdir(self.run_dir) if n.startswith(".results.jsonl.")]
        for name in sorted(partial):
            with sftp.open(posixpath.join(self.run_dir, name)) as fh:
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
        """The agent's result records, with image names mapped back to the operator's inputs."""
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
        return records


def run_on_host(session, spec, run_id, env_prefix, environment, on_progress=None):
    """Start, follow and collect one run; returns a HostResult (never raises for agent failures)."""
    target = session.target
    result = HostResult(label=target.label, address=target.address, environment=environment)
    run = RemoteRun(session, spec, run_id, env_prefix, on_progress)
    result.run_dir = run.run_dir
    run.start()
    code = run.wait()
    result.exit_code = code
    result.records = run.collect()
    result.reconnects = run.reconnects
    if code == 0:
        result.status = "ok"
    elif code == 3:
        result.status = "partial"
        result.error = "some inputs failed: %d error record(s)" % sum(1 for r in result.records if "error" in r)
    elif run.vanished:
        result.status = "failed"
        result.error = ("%s (%s): the agent process is gone without an exit code (killed or host rebooted); "
                        "%d result(s) kept from %s" % (target.label, target.address, len(result.records),
                                                       run.run_dir))
    else:
        result.status = "failed"
        tail = [l for l in run.log_text.strip().splitlines() if l.strip()][-3:]
        result.error = "agent exited %d (%s): %s" % (code, EXIT_MEANING.get(code, "unexpected"),
                                                    " | ".join(tail) or "no output in agent.log")
    return result
