"""One fan-out over hosts, for run, run --shard and prepare: bounded parallelism, a line per host, Ctrl-C.

The work runs in daemon threads and the main thread only waits (polling), so Ctrl-C reaches it at once and a
host that hangs never holds the command up: on Ctrl-C the work is told to stop (an Event it is given), gets a
short grace to return, and FanOutInterrupted goes up with what had finished; what has not is left to the
process's end. What must survive a Ctrl-C (or a kill) is saved by on_done, as each host finishes.
"""
import threading
import time

from rich.progress import Progress

from mxlab.runs import DEFAULT_PARALLEL

GRACE_S = 2.0  # after Ctrl-C: work that was told to stop returns within a poll or two
POLL_S = 0.2  # how often the main thread looks up from waiting (a Ctrl-C is handled between looks)


class FanOutInterrupted(KeyboardInterrupt):
    """Ctrl-C during a fan-out. `results`: per item, its result, or None where it had not finished;
    `finished`, `unfinished` (started, not ended), `not_started`: the items, in their order."""

    def __init__(self, items, results, started):
        super().__init__("interrupted")
        self.results = results
        self.finished = [item for item, ended in zip(items, results) if ended is not None]
        self.unfinished = [item for item, ended, began in zip(items, results, started) if began and ended is None]
        self.not_started = [item for item, began in zip(items, started) if not began]


def fan_out(items, work, parallel=DEFAULT_PARALLEL, on_done=None, on_stop=None, name=str, grace=GRACE_S, poll=POLL_S):
    """[work(item, stop) for item in items], at most `parallel` at once, in the items' order.

    `stop` (a threading.Event) is set on Ctrl-C: work that waits should look at it and return. on_done(item,
    result) runs in the worker as each item finishes, one at a time, never after FanOutInterrupted went up.
    on_stop() runs in the main thread at once on Ctrl-C (for what work waits on besides `stop`). `name(item)`
    names the worker thread while it runs the item. Work returns None only where it has no result: an item
    is finished when its result is not None. An exception out of work (a bug) ends its item and is raised
    here once every item has ended."""
    items = list(items)
    run = _Run(items, work, on_done, name)
    threads = [threading.Thread(target=run.worker, daemon=True, name="fanout-%d" % n)
               for n in range(max(1, min(parallel, len(items))))]
    try:  # starting too: a Ctrl-C may come while the first threads already work
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(poll)
    except KeyboardInterrupt:
        run.stop.set()
        if on_stop is not None:
            on_stop()
        deadline = time.monotonic() + grace
        for t in threads:
            if t.ident is not None:  # begun (a start that Ctrl-C cut short may have begun all the same)
                t.join(max(0.0, deadline - time.monotonic()))
        raise run.interrupted() from None
    if run.errors:
        raise run.errors[0]
    return run.results


class _Run:
    """The shared state of one fan-out: the next item, each item's result; the lock orders on_done."""

    def __init__(self, items, work, on_done, name):
        self.items, self.work, self.on_done, self.name = items, work, on_done, name
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.next = 0
        self.started = [False] * len(items)
        self.results = [None] * len(items)
        self.errors = []
        self.closed = False  # FanOutInterrupted went up: what ends later is not reported

    def take(self):
        with self.lock:
            if self.stop.is_set() or self.next >= len(self.items):
                return None  # after a Ctrl-C, an item whose turn had not come is not started
            index, self.next = self.next, self.next + 1
            self.started[index] = True
            return index

    def worker(self):
        while True:
            index = self.take()
            if index is None:
                return
            item = self.items[index]
            threading.current_thread().name = "fanout-%s" % self.name(item)
            try:
                result = self.work(item, self.stop)
                with self.lock:
                    if self.closed:
                        return
                    if self.on_done is not None and result is not None:
                        self.on_done(item, result)
                    self.results[index] = result
            except BaseException as exc:  # a bug in one host's work: the others go on; raised at the end
                self.errors.append(exc)

    def interrupted(self):
        with self.lock:  # an on_done under way ends first; none runs after this
            self.closed = True
            return FanOutInterrupted(self.items, list(self.results), list(self.started))


class HostLines:
    """A rich Progress (a line per host, or one for the whole run) and say(): a message printed above the
    lines, one writer at a time."""

    def __init__(self, console, *columns):
        self.progress = Progress(*columns, console=console, transient=False)
        self._lock = threading.Lock()

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def add(self, description, **fields):
        return self.progress.add_task(description, **fields)

    def update(self, task, **kw):
        self.progress.update(task, **kw)

    def say(self, message):
        with self._lock:
            self.progress.console.print(message, markup=False, highlight=False, soft_wrap=True)
