"""`mxlab prepare`: every host ready before the room arrives.

On each host, in parallel: wait until it is ready, upload the agent, ensure its environment, fetch the
models into the host's cache (the agent's own `fetch`, whose events say how many bytes moved: a second
prepare moves none), then leave a warm agent with those models bound (agent serve; --no-warm: none)
and classify one bundled photo with each model through it (the smoke test); lay out the attendee's
workspace (workspace.py) and serve it with JupyterLab on the host's 127.0.0.1 (notebook_server.py; the
default, --no-notebook skips both unless --workspace asks for the workspace). The readiness of each host is
kept in ~/.mxlab/<stack>/prepare.json for `mxlab handout`'s organiser page.
"""
import json
import logging
import posixpath
import shlex
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from rich.markup import escape
from rich.progress import TextColumn, TimeElapsedColumn
from rich.table import Table

from agent import contract
from mxlab.lab import statedir
from mxlab.remote import host as remote_host
from mxlab.runs import DEFAULT_PARALLEL, fanout
from mxlab.workshop import notebook_server, workspace
from mxlab.atomic import write_atomic
from mxlab.errors import RemoteCommandError
from mxlab.hosts.host_lock import HostLock
from mxlab.hosts.session import Session
from mxlab.hosts.backoff import READY_TIMEOUT
from mxlab import status_codes

log = logging.getLogger(__name__)

READINESS_FILE = "prepare.json"
PREPARE_DIR = "prepare"  # REMOTE_ROOT/prepare/: the smoke photo
FETCH_TIMEOUT_S = 3 * 3600  # a cold cache of the big zoo models over a slow link; a rerun resumes
SMOKE_TIMEOUT_S = 900


@dataclass
class HostReadiness:
    """One host's state after `prepare`; `ready` only when every step passed."""

    label: str
    address: str
    attendee: Optional[int] = None
    instance_id: Optional[str] = None
    ready: bool = False
    error: Optional[str] = None
    environment: Optional[str] = None
    activate: Optional[str] = None  # the shell command that activates it (the env.sh snippet)
    models: List[str] = field(default_factory=list)  # cached and verified
    bytes_moved: int = 0  # model bytes the fetch transferred
    files_fetched: int = 0
    smoke: Dict[str, str] = field(default_factory=dict)  # model -> top-1 label of the smoke photo
    warm_agent: Optional[dict] = None  # the warm agent's `serve --status` (pid, models, since, ...) when it runs
    warm_error: Optional[str] = None  # why none was left running (the host is ready all the same)
    workspace: Optional[str] = None
    workspace_models: List[dict] = field(default_factory=list)  # workspace.model_facts of each model
    notebook: Optional[dict] = None  # JupyterLab on the host: port there, kernel, what keeps it running (no token)
    seconds: float = 0.0
    prepared_at: Optional[str] = None


# ---- the agent's answers --------------------------------------------------------------------

def bytes_moved(event_lines):
    """(bytes transferred, files verified) from the agent's --events lines.

    A `fetch` event gives one file's bytes so far (counting a resumed file's earlier bytes), so what
    moved is each increase since the last event of that file or its `resume` offset.
    """
    moved, verified, last = 0, 0, {}
    for line in event_lines:
        evt = contract.parse(line)
        if evt is None:
            continue
        key = (evt.get("model"), evt.get("file"))
        if evt["event"] == "resume":
            last[key] = evt["offset"]
        elif evt["event"] == "fetch":
            seen = last.get(key, 0)
            moved += evt["bytes"] - seen if evt["bytes"] >= seen else evt["bytes"]
            last[key] = evt["bytes"]
        elif evt["event"] == "verified":
            verified += 1
    return moved, verified


def agent_failure(event_lines, fallback):
    """The agent's own `error` message(s), else the last lines it wrote."""
    errors = [evt["message"] for evt in map(contract.parse, event_lines) if evt and evt["event"] == "error"]
    if errors:
        return "; ".join(errors)
    return " | ".join(line.strip() for line in event_lines[-3:] if line.strip()) or fallback


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


# ---- one host -------------------------------------------------------------------------------

class HostPreparer:
    """Runs the agent's commands in the host's environment on an open Session."""

    def __init__(self, session, env_prefix, zoo=None):
        self.session = session
        self.env_prefix = env_prefix
        self.zoo = zoo
        self.root = posixpath.join(session.home(), contract.REMOTE_ROOT)
        self.smoke_warm = None  # the smoke classification's "warm" event

    def in_env(self, argv, exec_=False):
        """The shell command that runs `argv` in the agent's folder with the environment activated
        (`exec_`: in place of the shell, for a detached process whose pid is the shell's)."""
        return "cd %s && { %s; } >/dev/null 2>&1 && %s%s" % (
            shlex.quote(self.root), self.env_prefix, "exec " if exec_ else "", " ".join(shlex.quote(a) for a in argv))

    def agent(self, args, what, timeout):
        """(stdout, stderr event lines) of `python -m agent ARGS --events` in the environment."""
        argv = ["python", "-m", "agent"] + args[:1] + [contract.EVENTS_FLAG] + args[1:]
        if self.zoo:
            argv += ["--zoo", self.zoo]
        rc, out, err = self.session.exec(self.in_env(argv), timeout=timeout)
        lines = err.splitlines()
        if rc != 0:
            failure = agent_failure(lines, "no output")
            if contract.DISK_FULL + ":" in failure:  # what to do is the operator's: say that first, naming the host
                raise RemoteCommandError("%s (%s stopped; nothing half-written is kept: free space there and "
                                         "run it again)" % (contract.on_host(failure, self.session.target.label),
                                                            what))
            raise RemoteCommandError("%s: %s failed (agent exit %d, %s): %s" % (
                self.session.target.label, what, rc, contract.exit_meaning(rc), failure))
        return out, lines

    def fetch(self, models):
        """({model: {symbol, params, synset}: cache paths}, bytes moved, files fetched)."""
        out, events = self.agent(["fetch"] + list(models), "fetching %s" % ",".join(models), FETCH_TIMEOUT_S)
        files = {rec["model"]: rec["files"] for rec in json_lines(out) if "model" in rec and "files" in rec}
        missing = [m for m in models if m not in files]
        if missing:
            raise RemoteCommandError("%s: the agent's fetch did not report %s" % (self.session.target.label,
                                                                                 ", ".join(missing)))
        moved, fetched = bytes_moved(events)
        return files, moved, fetched

    def start_warm(self, models, idle_s, timeout=SMOKE_TIMEOUT_S):
        """Start the warm agent (`agent serve`, detached, replacing a running one) with `models` bound;
        returns its status once it answers. Raises RemoteCommandError if it ends or never answers."""
        label = self.session.target.label
        folder = posixpath.join(self.root, contract.WARM_DIR)
        serve = ["python", "-m", "agent", "serve", contract.EVENTS_FLAG, "--preload", ",".join(models),
                 "--idle-timeout", str(idle_s)] + (["--zoo", self.zoo] if self.zoo else [])
        # The inner shell starts in the login directory (bash reads .bashrc under sshd): in_env cds again.
        inner = self.in_env(serve, exec_=True)
        log_file = shlex.quote(posixpath.join(folder, contract.WARM_LOG))
        out = self.session.check(
            "cd %s && mkdir -p %s && chmod 700 %s && { setsid nohup bash -c %s </dev/null >%s 2>&1 & echo $!; }"
            % (shlex.quote(self.root), contract.WARM_DIR, contract.WARM_DIR, shlex.quote(inner), log_file),
            "starting the warm agent")
        pid = int(out.strip())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc, out, _ = self.session.exec(
                "%s 2>/dev/null || { kill -0 %d 2>/dev/null && echo starting || echo gone; }"
                % (self.in_env(["python", "-m", "agent", "serve", "--status"]), pid), timeout=60)
            lines = json_lines(out)
            if lines and lines[0].get("pid") == pid:
                return lines[0]
            if out.strip().endswith("gone"):
                _, tail, _ = self.session.exec("tail -n 5 %s" % log_file)
                raise RemoteCommandError("%s: the warm agent ended while binding %s: %s" % (
                    label, ",".join(models), agent_failure(tail.splitlines(), "nothing in %s" % log_file)))
            time.sleep(0.5)
        raise RemoteCommandError("%s: the warm agent did not answer within %d s (its log: ~/%s/%s/%s)"
                                 % (label, timeout, contract.REMOTE_ROOT, contract.WARM_DIR, contract.WARM_LOG))

    def stop_warm(self):
        """Stop the warm agent if one runs (prepare --no-warm): its memory back, every run fresh."""
        rc, out, _ = self.session.exec(self.in_env(["python", "-m", "agent", "serve", "--stop"]) + " 2>/dev/null",
                                       timeout=120)
        return rc == 0

    def smoke(self, models):
        """{model: top-1 label} of the bundled photo (through the warm agent when one runs: proving it);
        an error record fails the host."""
        sftp = self.session.sftp()
        folder = posixpath.join(self.root, PREPARE_DIR)
        try:
            sftp.mkdir(folder)
        except IOError:
            pass  # exists
        photo = posixpath.join(folder, workspace.SMOKE_PHOTO)
        sftp.put(str(workspace.photo_path()), photo)
        out, events = self.agent(["classify", "--warm", "--model", ",".join(models), "--top-k", "1", photo],
                                 "the smoke classification", SMOKE_TIMEOUT_S)
        self.smoke_warm = next((evt for evt in map(contract.parse, events) if evt and evt["event"] == "warm"),
                               None)
        top = {}
        for rec in json_lines(out):
            if "error" in rec:
                raise RemoteCommandError("%s: smoke classification with %s failed: %s"
                                         % (self.session.target.label, rec.get("model"), rec["error"]))
            if rec.get("top"):
                top[rec["model"]] = rec["top"][0]["label"]
        missing = [m for m in models if m not in top]
        if missing:
            raise RemoteCommandError("%s: smoke classification gave no result for %s"
                                     % (self.session.target.label, ", ".join(missing)))
        return top

    def catalogue(self):
        """{model: catalogue entry} as the agent on the host sees it with this zoo."""
        out, _ = self.agent(["models", "--json"], "reading the model catalogue", 300)
        return json.loads(out)["models"]

    def activation(self):
        """The env.sh snippet: the exact command that activates the environment on this host."""
        with self.session.sftp().open(posixpath.join(self.root, contract.ENV_FILE)) as fh:
            text = fh.read().decode("utf-8")
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        return " && ".join(lines)


def prepare_one(target, models, zoo=None, env=None, lay_out=False, timeout=READY_TIMEOUT, start=False,
                on_progress=None, say=None, warm_idle=contract.WARM_IDLE_S, notebook=False):
    """Make one host ready; never raises: a failure is the HostReadiness's error. `warm_idle`: seconds a
    warm agent waits for work (None: leave none); `notebook`: JupyterLab serving the workspace (laid out)."""
    on_progress = on_progress or (lambda message: None)
    began = time.monotonic()
    result = HostReadiness(label=target.label, address=target.address, attendee=target.attendee,
                           instance_id=target.instance_id)
    session = Session(target, timeout=timeout)
    try:
        remote_host.reach(session, timeout, start=start, on_step=on_progress)
        result.address = target.address
        on_progress("waiting for the host's set-up lock")
        with HostLock(session, say, wait_s=timeout) as lock:  # one organiser at a time sets a host up
            _prepare_locked(session, lock, result, models, zoo, env, lay_out or notebook, on_progress, say,
                            warm_idle, notebook)
        result.ready = True
    except Exception as exc:  # a failure (or a bug) on one host must not cost the others their preparation
        result.error = remote_host.failure_text(target, exc)
    finally:
        session.close()
    result.seconds = round(time.monotonic() - began, 1)
    result.prepared_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


def _prepare_locked(session, lock, result, models, zoo, env, lay_out, on_progress, say, warm_idle, notebook=False):
    """The steps of prepare_one that change the host, run while this mxlab holds its set-up lock (checked
    between steps: a lock taken over while this mxlab was suspended stops the host here)."""
    remote_env, result.environment = remote_host.install_agent(session, env=env, say=say, lock=False,  # held here
                                                               on_step=on_progress)
    host = HostPreparer(session, remote_env.prefix, zoo)
    result.activate = host.activation()
    lock.check()
    on_progress("fetching %s" % ",".join(models))
    files, result.bytes_moved, result.files_fetched = host.fetch(models)
    result.models = [m for m in models if m in files]
    lock.check()
    if warm_idle:
        on_progress("binding %s in the warm agent" % ",".join(models))
        try:
            result.warm_agent = host.start_warm(models, warm_idle)
        except RemoteCommandError as exc:  # runs still work, each with a fresh agent
            result.warm_error = str(exc)
            log.warning("%s", exc)
    elif host.stop_warm():
        log.info("%s: stopped the warm agent (--no-warm)", session.target.label)
    lock.check()
    on_progress("smoke classification")
    result.smoke = host.smoke(models)
    if result.warm_agent and not (host.smoke_warm and host.smoke_warm["used"]):
        result.warm_error = "the smoke classification did not run in the warm agent: %s" % (
            host.smoke_warm["reason"] if host.smoke_warm else "the agent did not say why")
        result.warm_agent = None
    if lay_out:
        lock.check()
        on_progress("laying out ~/%s" % workspace.WORKSPACE_DIR)
        result.workspace, result.workspace_models = workspace.lay_out(session, session.home(), result.activate,
                                                                      result.environment, files, host.catalogue())
    if notebook:
        lock.check()
        on_progress("JupyterLab")
        result.notebook = notebook_server.NotebookServer(session, remote_env.prefix, result.environment,
                                                         say).ensure()
    lock.check()




def prepare_fleet(targets, models, console, readiness_name, zoo=None, env=None, lay_out=False, timeout=READY_TIMEOUT,
                  start=False, parallel=DEFAULT_PARALLEL, warm_idle=contract.WARM_IDLE_S, notebook=False):
    """prepare_one on every target, `parallel` at once, a progress line each; HostReadiness in order. Each
    host's readiness is merged into `readiness_name`'s prepare.json as it finishes, so a Ctrl-C (or a killed
    mxlab) keeps what finished; on Ctrl-C the hosts that had not are named and KeyboardInterrupt goes up."""
    lines = fanout.HostLines(console, TextColumn("{task.fields[host]:>14}"), TimeElapsedColumn(),
                             TextColumn("{task.description}"))
    tasks = {}  # label -> its progress line

    def work(target, stop):  # `stop` unused: a host's commands end with mxlab's connections
        task = tasks[target.label] = lines.add("waiting", host=target.label)
        return prepare_one(target, models, zoo, env, lay_out, timeout, start,
                           lambda message: lines.update(task, description=escape(message[:70])), lines.say,
                           warm_idle, notebook)

    def finished(target, res):
        save_readiness(readiness_name, [res], models)
        lines.update(tasks[target.label],
                     description="ready" if res.ready else escape("NOT READY: " + (res.error or "")[:60]))

    with lines:
        try:
            return fanout.fan_out(targets, work, parallel, on_done=finished, name=lambda t: t.label)
        except fanout.FanOutInterrupted as stopped:
            lines.say("mxlab: interrupted: %s; %s had not finished (the same `mxlab prepare` again does them)" % (
                "the readiness of %s is saved in %s" % (", ".join(t.label for t in stopped.finished),
                                                        readiness_path(readiness_name))
                if stopped.finished else "no host had finished",
                ", ".join(t.label for t in stopped.unfinished + stopped.not_started)))
            raise


# ---- what the operator sees and keeps ---------------------------------------------------------

def human_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1000.0


def readiness_table(results, models, title="readiness"):
    table = Table(title=title)
    for col in ("host", "address", "env", "models cached", "fetched", "smoke top-1", "warm agent", "workspace",
                "notebook", "seconds", "ready"):
        table.add_column(col, justify="right" if col in ("seconds", "fetched") else "left")
    for r in results:
        smoke = "; ".join("%s: %s" % (m, r.smoke[m]) for m in models if m in r.smoke) or "-"
        table.add_row(escape(r.label), escape(r.address), escape(r.environment or "-"),
                      "%d/%d" % (len(r.models), len(models)),
                      human_bytes(r.bytes_moved) if r.ready or r.bytes_moved else "-",
                      escape(smoke), "pid %d" % r.warm_agent["pid"] if r.warm_agent else
                      ("[yellow]none[/]" if r.warm_error else "-"),
                      "~/%s" % workspace.WORKSPACE_DIR if r.workspace else "-",
                      "port %d" % r.notebook["port"] if r.notebook else "-", "%.0f" % r.seconds,
                      "ready" if r.ready else "[bold red]NOT READY[/]")
    return table


def readiness_path(name):
    return statedir.stack_dir(name) / READINESS_FILE


def load_readiness(name):
    """{host label: readiness dict} from the last `prepare` (empty before the first)."""
    path = statedir.home() / name / READINESS_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text()).get("hosts", {})
    except ValueError:
        log.warning("%s: not JSON; ignoring the earlier readiness", path)
        return {}


def save_readiness(name, results, models):
    """Merge these hosts' readiness into ~/.mxlab/<name>/prepare.json (other hosts' entries stay)."""
    hosts = load_readiness(name)
    for r in results:
        hosts[r.label] = dict(asdict(r), wanted_models=list(models))
    path = readiness_path(name)
    write_atomic(path, json.dumps({"schema": 1, "hosts": hosts}, indent=2, sort_keys=True) + "\n")
    return path


def report(results, saved, out, err):
    """The summary under the table; 0 only when every host is ready, else 1 naming the others and why."""
    moved = sum(r.bytes_moved for r in results)
    ready = [r for r in results if r.ready]
    if ready and moved == 0:
        out.print("no model bytes moved: every model was already in the cache of %s" % (
            "every host" if len(ready) == len(results) else "the ready hosts"), markup=False, highlight=False)
    else:
        out.print("model bytes moved: %s (%d file(s) fetched)" % (human_bytes(moved),
                                                               sum(r.files_fetched for r in results)),
                  markup=False, highlight=False)
    out.print("readiness saved to %s (for `mxlab handout`)" % saved, markup=False, highlight=False, soft_wrap=True)
    for r in results:
        if r.ready and r.warm_error:
            err.print("mxlab: %s is ready but has no warm agent (runs there start a fresh one): %s"
                      % (r.label, r.warm_error), markup=False, highlight=False, soft_wrap=True)
    failed = [r for r in results if not r.ready]
    if not failed:
        out.print("all %d host(s) ready" % len(results), markup=False, highlight=False)
        return status_codes.SUCCESS
    err.print("mxlab: %d of %d host(s) NOT READY: %s" % (len(failed), len(results),
                                                         ", ".join(r.label for r in failed)),
              markup=False, highlight=False, soft_wrap=True)
    for r in failed:
        err.print("mxlab: %s not ready: %s" % (r.label, r.error), markup=False, highlight=False, soft_wrap=True)
    err.print("mxlab: fix what is named and run the same `mxlab prepare` again (what is done is kept)",
              markup=False, highlight=False)
    return status_codes.FAILED
