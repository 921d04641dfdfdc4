"""Run on one host or many: bounded parallelism, a progress bar per host, a result per host.

Each host is independent: its failure is recorded in its HostResult and never stops the others
or loses their saved results.
"""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mxlab import install, readiness
from mxlab.errors import MxlabError, UsageError
from mxlab.remote_env import RemoteEnv
from mxlab.run import CONNECTION_ERRORS, HostResult, run_on_host
from mxlab.session import Session

log = logging.getLogger(__name__)


def run_one(target, spec, run_id, timeout, on_progress, say, start=False):
    result = HostResult(label=target.label, address=target.address)
    session = Session(target, timeout=timeout)
    try:
        on_progress(None, None, "connecting")
        readiness.reach(target, session, timeout, start=start)
        result.address = target.address  # the live one (a restarted instance has a new address)
        on_progress(None, None, "uploading agent")
        install.upload_agent(session)
        on_progress(None, None, "preparing environment")
        env = RemoteEnv(session, say=say)
        name = env.ensure(spec.env, engine=spec.engine)
        on_progress(None, None, "running")
        result = run_on_host(session, spec, run_id, env.prefix, name, on_progress)
    except UsageError as exc:
        result.error = str(exc)
    except MxlabError as exc:
        result.error = str(exc)
    except CONNECTION_ERRORS as exc:
        result.error = "%s (%s): connection failed: %s" % (target.label, target.address, exc or type(exc).__name__)
    except Exception as exc:  # a bug on one host must not cost the other hosts their results
        log.debug("%s: unexpected error", target.label, exc_info=True)
        result.error = "%s: unexpected %s: %s" % (target.label, type(exc).__name__, exc)
    finally:
        session.close()
    return result


def run_fleet(targets, spec, run_id, store, console, parallel=8, timeout=300, start=False):
    """Run `spec` on every target; save each host's results as it finishes; return HostResults in order.
    `start`: start stopped lab instances (else they fail, saying so)."""
    lock = threading.Lock()
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

        res = run_one(target, spec, run_id, timeout, on_progress, say, start)
        try:
            store.save_host(res)
        except OSError as exc:
            res.error = (res.error + "; " if res.error else "") + "saving results failed: %s" % exc
            res.status = "failed"
        progress.update(task, description=res.status if not res.error else res.status + ": " + res.error[:50])
        return res

    with progress:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
            results = list(pool.map(work, targets))
    store.save_summary(results)
    return results
