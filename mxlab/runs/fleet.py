"""Run on one host or many: bounded parallelism, a progress bar per host, a result per host.

Each host is independent: its failure is recorded in its HostResult and never stops the others
or loses their saved results.
"""
import logging
import posixpath

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from mxlab.remote import host
from mxlab.runs import DEFAULT_PARALLEL, fanout
from agent import contract
from mxlab.remote.run import HostResult, Interrupted, NotReady, run_on_host
from mxlab.results import rundir
from mxlab.hosts.session import Session
from mxlab.hosts.backoff import READY_TIMEOUT

log = logging.getLogger(__name__)


INTERRUPTED = "interrupted"  # a host's status when the operator stopped waiting: its agent goes on, on the host


def run_one(target, spec, run_id, timeout, on_progress, say, start=False, stop=None, attach=False):
    result = HostResult(label=target.label, address=target.address)
    session = Session(target, timeout=timeout)
    try:
        step = lambda message: on_progress(None, None, message)  # noqa: E731
        host.reach(session, timeout, start=start, on_step=step)
        result.address = target.address  # the live one (a restarted instance has a new address)
        # A host an earlier run left ready: the run's own command checks that (two round trips fewer).
        ready = None if attach else host.prepared(session, env=spec.env, engine=spec.engine, say=say)
        if ready is None:
            remote_env, name = host.install_agent(session, env=spec.env, engine=spec.engine, say=say, on_step=step)
        if stop is not None and stop.is_set():
            raise Interrupted("%s: interrupted before its agent started" % target.label)
        on_progress(None, None, "running")
        try:
            result = run_on_host(session, spec, run_id, ready.prefix if ready else remote_env.prefix,
                                 None if ready else name, on_progress, stop=stop, attach=attach, ready=ready)
        except NotReady as exc:  # not as the last run left it: install_agent from what the check saw
            remote_env, name = host.install_agent(session, env=spec.env, engine=spec.engine, say=say,
                                                  on_step=step, looked=exc.output)
            result = run_on_host(session, spec, run_id, remote_env.prefix, name, on_progress, stop=stop)
    except Interrupted as exc:
        result.status, result.error = INTERRUPTED, str(exc)
        result.run_dir = result.run_dir or posixpath.join("~", contract.REMOTE_ROOT, contract.RUNS_DIR, run_id)
    except Exception as exc:  # a failure (or a bug) on one host must not cost the other hosts their results
        result.error = host.failure_text(target, exc)
    finally:
        session.close()
    return result


def kept_hosts(store):
    """{label: HostResult} of the hosts whose run in this run folder ended (ok or partial): a resumed run keeps
    them as they are."""
    kept = {}
    for entry in rundir.load_summary(store.dir) or []:
        if entry.get("status") not in ("ok", "partial"):
            continue
        path = rundir.host_file(store.dir, entry["host"])
        kept[entry["host"]] = rundir.host_result(entry, rundir.read_jsonl(path) if path.is_file() else [])
    return kept


def run_fleet(targets, spec, run_id, store, console, parallel=DEFAULT_PARALLEL, timeout=READY_TIMEOUT, start=False,
              resume=False):
    """Run `spec` on every target; save each host's results (and the summary) as it finishes; return HostResults
    in order. `start`: start stopped lab instances (else they fail, saying so). `resume`: the hosts that ended
    in this run folder are kept, the others follow the agent an interrupted mxlab started (or start one).
    Ctrl-C: what finished is saved, the summary marks the rest interrupted (their agents go on), and
    KeyboardInterrupt goes up with `store.interrupted` naming them."""
    fleet = _Fleet(targets, spec, run_id, store, console, timeout, start, resume)
    with fleet.lines:
        try:
            ordered = fanout.fan_out(targets, fleet.work, parallel, on_done=fleet.finished,
                                     name=lambda t: t.label)
        except fanout.FanOutInterrupted:
            store.interrupted = [t.label for t in targets if t.label not in fleet.done]
            save_summary(store, targets, fleet.done, run_id)
            raise
    store.save_summary(ordered)
    return ordered


class _Fleet:
    """One run_fleet: each host's line, its run, and what is saved as it finishes."""

    def __init__(self, targets, spec, run_id, store, console, timeout, start, resume):
        self.targets, self.spec, self.run_id, self.store = targets, spec, run_id, store
        self.timeout, self.start, self.resume = timeout, start, resume
        self.kept = kept_hosts(store) if resume else {}
        self.done = dict(self.kept)  # label -> HostResult of the hosts that ended
        self.tasks = {}  # label -> its progress line
        self.lines = fanout.HostLines(console, TextColumn("{task.fields[host]:>14}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))

    def work(self, target, stop):
        task = self.tasks[target.label] = self.lines.add("waiting", total=None, host=target.label)

        def on_progress(done, total, message):
            kw = {"description": (message or "")[:60]}
            if total:
                kw.update(total=total, completed=done)
            self.lines.update(task, **kw)

        if target.label in self.kept:
            self.lines.update(task, description="kept from the interrupted run")
            return self.kept[target.label]
        return run_one(target, self.spec, self.run_id, self.timeout, on_progress, self.lines.say, self.start,
                       stop=stop, attach=self.resume)

    def finished(self, target, res):
        """A host ended: its results and the summary saved (after each host: a killed mxlab leaves them too)."""
        if res.status == INTERRUPTED or target.label in self.kept:
            return
        try:
            self.store.save_host(res)
        except OSError as exc:
            res.error = (res.error + "; " if res.error else "") + "saving results failed: %s" % exc
            res.status = "failed"
        self.done[target.label] = res
        save_summary(self.store, self.targets, self.done, self.run_id)
        self.lines.update(self.tasks[target.label],
                          description=res.status if not res.error else res.status + ": " + res.error[:50])


def save_summary(store, targets, done, run_id):
    """summary.json with the hosts that ended and, for the rest, an interrupted entry naming where their agent
    runs (the remote run folder that `--resume` follows)."""
    entries = []
    for t in targets:
        entries.append(done.get(t.label) or HostResult(
            label=t.label, address=t.address, status=INTERRUPTED,
            error="not finished when this summary was written (interrupted, or still running); --resume follows it",
            run_dir=posixpath.join("~", contract.REMOTE_ROOT, contract.RUNS_DIR, run_id)))
    store.save_summary(entries)
