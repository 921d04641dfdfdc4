"""Run on one host or many: bounded parallelism, a progress bar per host, a result per host.

Each host is independent: its failure is recorded in its HostResult and never stops the others
or loses their saved results.
"""
import logging
import posixpath
import threading

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mxlab.remote import host
from agent import contract
from mxlab.remote.run import HostResult, Interrupted, run_on_host
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
        remote_env, name = host.install_agent(session, env=spec.env, engine=spec.engine, say=say, on_step=step)
        if stop is not None and stop.is_set():
            raise Interrupted("%s: interrupted before its agent started" % target.label)
        on_progress(None, None, "running")
        result = run_on_host(session, spec, run_id, remote_env.prefix, name, on_progress, stop=stop, attach=attach)
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


def run_fleet(targets, spec, run_id, store, console, parallel=8, timeout=READY_TIMEOUT, start=False, resume=False):
    """Run `spec` on every target; save each host's results (and the summary) as it finishes; return HostResults
    in order. `start`: start stopped lab instances (else they fail, saying so). `resume`: the hosts that ended
    in this run folder are kept, the others follow the agent an interrupted mxlab started (or start one).
    Ctrl-C: what finished is saved, the summary marks the rest interrupted (their agents go on), and
    KeyboardInterrupt goes up with `store.interrupted` naming them."""
    lock = threading.Lock()
    kept = kept_hosts(store) if resume else {}
    stop = threading.Event()
    done = dict(kept)  # label -> HostResult
    progress = Progress(TextColumn("{task.fields[host]:>14}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.description}"), console=console,
                        transient=False)

    def work(target):
        task = progress.add_task("waiting", total=None, host=target.label)

        def on_progress(done, total, message):
            kw = {"description": (message or "")[:60]}
            if total:
                kw.update(total=total, completed=done)
            progress.update(task, **kw)

        def say(message):
            with lock:
                progress.console.print(message, markup=False, highlight=False, soft_wrap=True)

        if target.label in kept:
            progress.update(task, description="kept from the interrupted run")
            return kept[target.label]
        res = run_one(target, spec, run_id, timeout, on_progress, say, start, stop=stop, attach=resume)
        if res.status == INTERRUPTED:
            return res
        try:
            store.save_host(res)
        except OSError as exc:
            res.error = (res.error + "; " if res.error else "") + "saving results failed: %s" % exc
            res.status = "failed"
        with lock:
            done[target.label] = res
            save_summary(store, targets, done, run_id)  # after each host: a killed mxlab leaves it too
        progress.update(task, description=res.status if not res.error else res.status + ": " + res.error[:50])
        return res

    results = {}
    slots = threading.Semaphore(max(1, min(parallel, len(targets))))

    def bounded(target):
        with slots:
            if stop.is_set():  # interrupted before this host's turn: nothing started there
                results[target.label] = HostResult(label=target.label, address=target.address,
                                                   status=INTERRUPTED, error="not started: interrupted")
                return
            results[target.label] = work(target)

    with progress:
        # Daemon threads, joined in a loop: Ctrl-C reaches this thread at once, and nothing waits for a host.
        threads = [threading.Thread(target=bounded, args=(t,), daemon=True, name="run-%s" % t.label)
                   for t in targets]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.2)
        except KeyboardInterrupt:
            stop.set()  # each host's follower stops within a poll; its agent goes on, on the host
            for t in threads:
                t.join(2.0)
            with lock:
                store.interrupted = [t.label for t in targets if t.label not in done]
                save_summary(store, targets, done, run_id)
            raise
    ordered = [results.get(t.label) or done[t.label] for t in targets]
    store.save_summary(ordered)
    return ordered


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
