"""`mxlab run --shard`: one set of images split across the hosts, each image classified once.

The inputs are expanded to single images (a folder gives its image files as the agent takes them).
One queue cuts chunks of consecutive inputs as hosts ask for work, so a slow host takes less. Each host
is prepared once (ready, connect, agent, environment), then runs the agent once per chunk in a remote
run folder of its own, uploading only that chunk's files. Every agent run pays a start (Python, MXNet,
the model) that can cost more than classifying dozens of images, so chunk sizes adapt: a small first
chunk per host measures its start and its time per image, then each chunk is at least big enough to be
worth a start of its own, at most about a minute of work (a lost chunk costs little), and otherwise the
host's fair share of what is left. `--chunk-size N` fixes the size instead.

A chunk that fails on a host (the instance stopped, the connection gone for good, the agent failed)
goes back to the front of the queue, less the inputs whose results were collected, and that host takes
no more work. Only when every host has failed are chunks left over: the run fails and names the
inputs without results. Saved beside the results: each host's file after every chunk it finishes (so
`--resume RUN_ID` can do only what has no result yet), one merged results.jsonl in input order,
summary.json (per host: its chunks and their seconds, the chunks moved away from it) and shard.json
(every chunk, who ran it, what moved where, what has no result).
"""
import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent import contract
from agent.inputs import IMAGE_EXTENSIONS
from mxlab.remote import host as remote_host
from mxlab.results import rundir, tables
from mxlab.runs import fanout
from mxlab.atomic import write_atomic
from mxlab.errors import UsageError
from mxlab.remote.run import HostResult, RemoteRun, RunSpec, is_url
from mxlab.hosts.session import Session
from mxlab.hosts.backoff import READY_TIMEOUT
from mxlab import status_codes

log = logging.getLogger(__name__)

CHUNKS_PER_HOST = 4  # first chunks: small enough that every host starts with some and is measured
FIRST_CHUNK_MAX = 8
CHUNK_SECONDS = 60.0  # adaptive chunks hold about this much classifying at most: a lost chunk costs little
MAX_CHUNK = 1000  # inputs in one agent run at most
MISSING_SHOWN = 10  # an --input-list's missing entries named in its error; the rest are counted
RECONNECT_TIMEOUT = 60  # a host whose connection is gone this long gives its chunk to the others


# ---- the pure pieces -------------------------------------------------------------------------

def read_input_list(path):
    """The inputs in FILE, one a line (blank lines and lines starting with # skipped); relative paths are
    taken as typed, from the current folder, as on the command line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError("--input-list %s: cannot read it (%s)" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise UsageError("--input-list %s: not a UTF-8 text file (expected one input a line)" % path)
    numbered = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    numbered = [(n, i) for n, i in numbered if i and not i.startswith("#")]
    if not numbered:
        raise UsageError("--input-list %s: no inputs in it (expected one file, folder or URL a line)" % path)
    # Every entry that is not there, named at once with its line: a list of 100 000 is not fixed one by one.
    missing = [(n, i) for n, i in numbered if not is_url(i) and not os.path.exists(i)]
    if missing:
        shown = ", ".join("line %d: %s" % (n, i) for n, i in missing[:MISSING_SHOWN])
        more = " (and %d more)" % (len(missing) - MISSING_SHOWN) if len(missing) > MISSING_SHOWN else ""
        raise UsageError("--input-list %s: %d of %d entries do not exist here: %s%s" % (
            path, len(missing), len(numbered), shown, more))
    return [i for _, i in numbered]


def expand_inputs(items):
    """Single inputs in order: a folder's image files (by extension, sorted, not recursive: as the agent
    takes a folder), files and URLs as given; each once. An empty folder stays one input (the agent
    reports it has no images)."""
    out, seen = [], set()
    for item in items:
        found = [item]
        if not is_url(item) and os.path.isdir(item):
            names = sorted(n for n in os.listdir(item)
                           if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))
            found = [os.path.join(item, n) for n in names] or [item]
        for one in found:
            if one not in seen:
                seen.add(one)
                out.append(one)
    return out


def first_chunk_size(count, hosts):
    """A host's first chunk, before anything is measured: about CHUNKS_PER_HOST a host, at most FIRST_CHUNK_MAX."""
    return max(1, min(FIRST_CHUNK_MAX, -(-count // (max(1, hosts) * CHUNKS_PER_HOST))))


def next_chunk_size(remaining, hosts, first, even, start_s=None, image_s=None):
    """Inputs for a host's next chunk. Unmeasured: `first`. Measured (`start_s`: an agent run's cost
    besides its images; `image_s`: an image's): its fair share of the `remaining` inputs among `hosts`
    working hosts, but no smaller than what one start costs in images (every chunk pays a start: a
    shrinking tail of tiny chunks would cost more than it balances) unless that is more than `even` (the
    run's inputs spread evenly over its hosts: every host should get work); at most CHUNK_SECONDS of
    classifying, so a lost chunk costs little and a slow host gets less."""
    if start_s is None or not image_s:
        want = first
    else:
        fair = -(-remaining // max(1, hosts))
        worth = int(start_s / image_s) + 1
        want = min(max(fair, min(worth, even)), max(1, int(CHUNK_SECONDS / image_s)))
    return max(1, min(want, MAX_CHUNK, max(1, remaining)))


@dataclass
class Chunk:
    id: int
    indexes: List[int]  # positions in the run's input list
    failed_on: List[str] = field(default_factory=list)  # hosts it failed on, in order


def plan_chunks(indexes, size):
    """Consecutive runs of `size` input positions, numbered from 1."""
    return [Chunk(n + 1, list(indexes[k:k + size])) for n, k in enumerate(range(0, len(indexes), size))]


def span(indexes):
    """Input positions as people count them, compactly: [0,1,2,5] -> "1-3,6"."""
    parts, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(run)
        run = [i]
    if run:
        parts.append(run)
    return ",".join("%d" % (r[0] + 1) if len(r) == 1 else "%d-%d" % (r[0] + 1, r[-1] + 1) for r in parts)


class ChunkQueue:
    """Chunks handed out as hosts ask: planned ones (`chunks`) first, then cut from `rest` (input positions)
    at the size the host asks for. take() waits while nothing is left but chunks are out (one may come
    back); None once nothing is left or out. A chunk given back goes to the front."""

    def __init__(self, chunks=(), rest=()):
        self._pending = deque(chunks)
        self._rest = list(rest)
        self._next_id = max([c.id for c in self._pending] + [0]) + 1
        self._out = 0
        self._cond = threading.Condition()
        self.moves = []  # {"chunk", "inputs", "from", "to", "reason"}, in the order they happened
        self.closed = False

    def take(self, host, size=1):
        with self._cond:
            while not self._pending and not self._rest and self._out and not self.closed:
                self._cond.wait(0.5)
            if self.closed or not (self._pending or self._rest):
                return None
            if self._pending:
                chunk = self._pending.popleft()
            else:
                chunk = Chunk(self._next_id, self._rest[:max(1, size)])
                self._rest = self._rest[max(1, size):]
                self._next_id += 1
            self._out += 1
            for move in self.moves:
                if move["chunk"] == chunk.id and move["to"] is None:
                    move["to"] = host
            return chunk

    def done(self, chunk):
        with self._cond:
            self._out -= 1
            self._cond.notify_all()

    def give_back(self, chunk, indexes, host, reason):
        """`chunk` failed on `host`; its `indexes` (those still without results) go to the other hosts."""
        with self._cond:
            self._out -= 1
            if indexes:
                self._pending.appendleft(Chunk(chunk.id, list(indexes), chunk.failed_on + [host]))
                self.moves.append({"chunk": chunk.id, "inputs": span(indexes), "from": host, "to": None,
                                   "reason": reason})
            self._cond.notify_all()

    def close(self):
        """Hand out nothing more (Ctrl-C)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def remaining(self):
        """Inputs not handed out (given back or not yet cut)."""
        with self._cond:
            return len(self._rest) + sum(len(c.indexes) for c in self._pending)

    def left(self):
        """What no host has taken: the chunks given back and planned, and the inputs not yet cut (one chunk)."""
        with self._cond:
            return list(self._pending) + ([Chunk(self._next_id, list(self._rest))] if self._rest else [])


def record_key(rec):
    return rec.get("image"), rec.get("model")


def merge_records(inputs, records, models):
    """Each (image, model) once (the first seen wins), in input order and then model order; records of
    images not among `inputs` (an earlier run's, resumed with other inputs) after, as they came."""
    position = {item: i for i, item in enumerate(inputs)}
    model_rank = {m: i for i, m in enumerate(models)}
    seen, known, other = set(), [], []
    for n, rec in enumerate(records):
        key = record_key(rec)
        if key in seen:
            continue
        seen.add(key)
        if rec.get("image") in position:
            known.append(((position[rec["image"]], model_rank.get(rec.get("model"), len(models)), n), rec))
        else:
            other.append(rec)
    return [rec for _, rec in sorted(known, key=lambda pair: pair[0])] + other


def done_inputs(records, models):
    """Inputs that have a record (a result or an error) for every model."""
    have = {}
    for rec in records:
        have.setdefault(rec.get("image"), set()).add(rec.get("model"))
    return {image for image, got in have.items() if set(models) <= got}


def todo_indexes(inputs, records, models):
    """Positions of the inputs still without a record for some model: what a resumed run does."""
    done = done_inputs(records, models)
    return [i for i, item in enumerate(inputs) if item not in done]


def load_saved(run_dir):
    """({host label: records}, [summary entries]) of a run folder: what `--resume` starts from."""
    per_host = {label: rundir.read_jsonl(p) for label, p in rundir.host_files(run_dir).items()}
    try:
        summary = rundir.load_summary(run_dir) or []
    except (OSError, ValueError):
        summary = []
    return per_host, summary


# ---- the run ---------------------------------------------------------------------------------

@dataclass
class ShardedRun:
    """What a sharded run did: per-host results, the chunks, the moves, the inputs without results."""

    run_id: str
    inputs: List[str]
    models: List[str]
    hosts: List[HostResult]
    chunks: dict  # chunk id -> {"inputs": span, "host": who finished it (or None), "failed_on": [...]}
    moves: list
    records: list  # merged, in input order
    missing: List[str]
    chunk_size: object  # the fixed --chunk-size, or "adaptive"
    resumed: int = 0  # inputs that already had results (--resume)

    def errors(self):
        return sum(1 for r in self.records if "error" in r)


class _Host:
    """One host's worker state (its thread owns it; the lock guards what the progress bar reads)."""

    def __init__(self, target, records=()):
        self.target = target
        self.result = HostResult(label=target.label, address=target.address, status="ok",
                                 records=list(records))
        self.chunks = []  # ids of the chunks it finished
        self.live = 0  # inputs done in its current chunk
        self.start_s = None  # measured: seconds an agent run costs besides its images (start, model, upload)
        self.prepare_s = None  # ready, connect, agent upload, environment
        self.chunk_s = {}  # chunk id -> seconds its agent run took here (start to results collected)
        self.image_s = None  # measured: seconds of classifying an image (all models)
        self.state = "waiting"
        self.failed = False


    def measure(self, seconds, records, count):
        """Learn from a chunk: the model time the agent reports per image, and the rest of the wall time."""
        model_s = sum(float(r.get("ms") or 0) for r in records) / 1000.0
        if not count or not model_s:
            return
        self.image_s = model_s / count
        self.start_s = max(0.0, seconds - model_s)


def _prepare(session, target, spec, timeout, start, say, host):
    """The host ready for the agent (remote/host.py, as for a plain run); returns the environment's prefix."""
    def step(message):
        host.state = message

    remote_host.reach(session, timeout, start=start, on_step=step)
    host.result.address = target.address
    remote_env, host.result.environment = remote_host.install_agent(session, env=spec.env, engine=spec.engine,
                                                                    say=say, on_step=step)
    return remote_env.prefix


def _run_chunk(session, spec, remote_id, env_prefix, on_progress, reconnect_timeout):
    """(records, error): the chunk's records as collected, and None when the agent finished (exit 0 or 3)."""
    run = RemoteRun(session, spec, remote_id, env_prefix, on_progress, reconnect_timeout=reconnect_timeout)
    run.start()
    code = run.wait()
    records, complete = run.collect()
    if run.vanished:
        return records, "the agent process is gone without an exit code (killed or host rebooted)"
    if code not in (contract.EXIT_OK, contract.EXIT_SOME_FAILED):
        return records, "agent exited %d (%s): %s" % (code, contract.exit_meaning(code),
                                                     run.agent_log.failure() or "no output in agent.log")
    if not complete:
        return records, "the agent's results never reached their name (recovered from its temporary file)"
    return records, None


def run_sharded(targets, spec, run_id, store, console, timeout=READY_TIMEOUT, start=False, size=None, resume=False,
                reconnect_timeout=RECONNECT_TIMEOUT):
    """Classify spec.inputs (expanded) across `targets`, each input once; returns a ShardedRun.
    `resume`: the run folder holds an earlier try of this run id; only inputs without results are done."""
    run = _Sharded(targets, spec, run_id, store, console, timeout, start, size, resume, reconnect_timeout)
    _save_plan(store.dir, run_id, run.inputs, size or "adaptive", run.chunks, run.queue.moves, [])
    with run.lines:
        try:
            # A worker per host, each taking chunks until none is left. Ctrl-C closes the queue at once and
            # waits for no host: each host's file already holds what it finished, --resume goes on from there.
            fanout.fan_out(run.hosts, run.work, parallel=len(run.hosts), on_stop=run.queue.close,
                           name=lambda h: h.target.label, grace=0)
        except fanout.FanOutInterrupted:
            run.lines.say("mxlab: interrupted: finished chunks are saved in %s; the same command with --resume %s "
                          "does the rest" % (store.dir, run_id))
            raise
    return run.finish()


class _Sharded:
    """One run_sharded: its inputs, the chunk queue, each host's worker, the progress line, what is saved."""

    def __init__(self, targets, spec, run_id, store, console, timeout, start, size, resume, reconnect_timeout):
        self.spec, self.run_id, self.store, self.timeout, self.start = spec, run_id, store, timeout, start
        self.size, self.reconnect_timeout = size, reconnect_timeout
        self.inputs = expand_inputs(spec.inputs)
        self.saved, self.old_summary = load_saved(store.dir) if resume else ({}, [])
        self.earlier = [rec for recs in self.saved.values() for rec in recs]
        self.todo = todo_indexes(self.inputs, self.earlier, spec.models)
        self.queue = ChunkQueue(plan_chunks(self.todo, size)) if size else ChunkQueue(rest=self.todo)
        self.first = first_chunk_size(len(self.todo), len(targets))
        self.even = -(-len(self.todo) // max(1, len(targets)))
        self.chunks = {}  # id -> {"inputs", "host", "failed_on"}, as chunks are handed out
        for c in self.queue.left() if size else ():
            self.chunks[c.id] = {"inputs": span(c.indexes), "host": None, "failed_on": []}
        self.attempt = os.urandom(2).hex()  # remote folders of a resumed run never meet the earlier try's
        self.hosts = [_Host(t, self.saved.get(t.label, ())) for t in targets]
        self.lock = threading.Lock()
        self.finished = 0  # inputs settled (done, or done by a host that then failed)
        self.lines = fanout.HostLines(console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("{task.fields[hosts]}"))
        self.task = self.lines.add("images", total=len(self.todo), hosts="")

    def refresh(self):
        with self.lock:
            hosts = self.hosts
            working = sum(1 for h in hosts if not h.failed and h.state.startswith("chunk"))
            failed = sum(1 for h in hosts if h.failed)
            text = "%d/%d hosts working%s · %d chunks" % (
                working, len(hosts), ", %d failed" % failed if failed else "", len(self.chunks))
            self.lines.update(self.task, completed=self.finished + sum(h.live for h in hosts), hosts=text)

    def save(self, result):
        try:
            self.store.save_host(result)
        except OSError as exc:  # the records stay in memory: the merged file is written at the end
            self.lines.say("mxlab: %s: saving its results failed: %s" % (result.label, exc))

    def work(self, host, stop):
        """One host: made ready, then chunks until none is left or it fails (`stop`: the queue closes instead)."""
        target, result = host.target, host.result
        session = Session(target, timeout=self.timeout)
        try:
            began = time.monotonic()
            try:
                env_prefix = _prepare(session, target, self.spec, self.timeout, self.start, self.lines.say, host)
                host.prepare_s = round(time.monotonic() - began, 2)
            except Exception as exc:
                log.debug("%s: not ready", target.label, exc_info=True)
                host.failed, result.status, result.error = True, "failed", remote_host.failure_text(target, exc)
                self.lines.say("%s: failed before any work: %s" % (target.label, result.error))
                return
            while not host.failed:
                alive = sum(1 for h in self.hosts if not h.failed)
                chunk = self.queue.take(target.label, next_chunk_size(self.queue.remaining(), alive, self.first,
                                                                      self.even, host.start_s, host.image_s))
                if chunk is None:
                    break
                self.chunk_settled(host, session, env_prefix, chunk)
        finally:
            session.close()
            host.state = "failed" if host.failed else "done"
            self.refresh()

    def chunk_settled(self, host, session, env_prefix, chunk):
        """Run `chunk` on the host; it is settled with the queue (done, or given back) whatever happens."""
        with self.lock:
            self.chunks.setdefault(chunk.id, {"inputs": span(chunk.indexes), "host": None, "failed_on": []})
        settled = False
        try:
            items, records, error = self.run_chunk(host, session, env_prefix, chunk)
            self.settle(host, chunk, items, records, error)
            settled = True
        finally:
            if not settled:  # a bug here must not strand the chunk (the other hosts wait for it)
                host.failed, host.result.status = True, "failed"
                host.result.error = host.result.error or "%s: unexpected error running chunk %d" % (
                    host.target.label, chunk.id)
                self.queue.give_back(chunk, chunk.indexes, host.target.label, host.result.error)

    def run_chunk(self, host, session, env_prefix, chunk):
        """(the chunk's inputs, their records, None or why the chunk failed on this host)."""
        spec = self.spec
        host.state = "chunk %d" % chunk.id
        self.refresh()
        items = [self.inputs[i] for i in chunk.indexes]

        def on_progress(done, total, message, n=len(items)):
            host.live = min(done or 0, n)
            self.refresh()

        chunk_spec = RunSpec(models=spec.models, inputs=items, top_k=spec.top_k, batch_size=spec.batch_size,
                             zoo=spec.zoo, env=spec.env, engine=spec.engine)
        remote_id = "%s-%s-c%03d" % (self.run_id, self.attempt, chunk.id)
        began = time.monotonic()
        try:
            records, error = _run_chunk(session, chunk_spec, remote_id, env_prefix, on_progress,
                                        self.reconnect_timeout)
            host.measure(time.monotonic() - began, records, len(items))
            host.chunk_s[chunk.id] = round(time.monotonic() - began, 2)
        except Exception as exc:
            log.debug("%s: chunk %d failed", host.target.label, chunk.id, exc_info=True)
            records, error = [], remote_host.failure_text(host.target, exc)
        host.live = 0
        return items, records, error

    def settle(self, host, chunk, items, records, error):
        """Keep the chunk's records on the host's file; done with the queue, or what is left given back."""
        target, result = host.target, host.result
        mine = set(items)
        records = [r for r in records if r.get("image") in mine]
        complete = done_inputs(records, self.spec.models)
        if error:
            # Keep what the host finished (whole inputs only); the rest goes to the others.
            records = [r for r in records if r.get("image") in complete]
        left = [i for i in chunk.indexes if self.inputs[i] not in complete]
        with self.lock:
            result.records.extend(records)
            self.finished += len(chunk.indexes) - (len(left) if error else 0)
        result.run_dir = remote_runs(self.run_id, self.attempt)
        self.save(result)
        info = self.chunks[chunk.id]
        if error:
            host.failed, result.status = True, "failed"
            result.error = "%s; chunk %d (inputs %s) handed back" % (error, chunk.id, span(left) or "none")
            info["failed_on"].append(target.label)
            if not left:
                info["host"] = target.label
            self.lines.say("%s: chunk %d failed (%s); inputs %s go to the other hosts"
                           % (target.label, chunk.id, error, span(left) or "none"))
            self.refresh()
            self.queue.give_back(chunk, left, target.label, error)  # settled: nothing may raise after this
            return
        # Inputs the agent finished without a record (none expected) are named at the end as without results.
        info["host"] = target.label
        host.chunks.append(chunk.id)
        self.refresh()
        self.queue.done(chunk)  # settled: nothing may raise after this

    def finish(self):
        """The ShardedRun, with shard.json, the merged results and the summary saved."""
        hosts, inputs, models, size = self.hosts, self.inputs, self.spec.models, self.size or "adaptive"
        for h in hosts:
            if not h.failed and any("error" in r for r in h.result.records):
                h.result.status = "partial"
                h.result.error = "some inputs failed"
        merged = merge_records(inputs, self.earlier + [r for h in hosts for r in h.result.records], models)
        have = done_inputs(merged, models)
        missing = [item for item in inputs if item not in have]
        run = ShardedRun(run_id=self.run_id, inputs=inputs, models=list(models), hosts=[h.result for h in hosts],
                         chunks=self.chunks, moves=self.queue.moves, records=merged, missing=missing,
                         chunk_size=size, resumed=len(inputs) - len(self.todo))
        _save_plan(self.store.dir, self.run_id, inputs, size, self.chunks, self.queue.moves, missing)
        self.store.save_merged(merged)
        extra = {h.target.label: {"chunks": h.chunks, "prepare_s": h.prepare_s, "chunk_s": h.chunk_s,
                                  "moved_away": [m for m in self.queue.moves if m["from"] == h.target.label]}
                 for h in hosts}
        current = {h.target.label for h in hosts}
        # A host of the earlier try that this resumed run did not use: its entry and file stay as they were.
        kept = [rundir.host_result(e, self.saved.get(e["host"], [])) for e in self.old_summary
                if e["host"] not in current]
        self.store.save_summary(kept + run.hosts, extra)
        return run


def remote_runs(run_id, attempt):
    """Where this run's chunk folders are on the host (a pattern: one folder per chunk)."""
    return "~/%s/%s/%s-%s-c*" % (contract.REMOTE_ROOT, contract.RUNS_DIR, run_id, attempt)


def _save_plan(run_dir, run_id, inputs, size, chunks, moves, missing):
    plan = {"run_id": run_id, "inputs": len(inputs), "chunk_size": size,
            "chunks": [dict(id=cid, **info) for cid, info in sorted(chunks.items())],
            "moved": moves, "without_results": missing, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_atomic(Path(run_dir) / rundir.SHARD_FILE, json.dumps(plan, indent=2) + "\n")


# ---- what the operator sees ------------------------------------------------------------------

SHOW_RECORDS_UP_TO = 100  # inputs: a bigger run's results are in results.jsonl and report.html, not the terminal


def chunks_table(run):
    """Per host: the chunks it finished, its images, and the chunks that moved away from it."""
    table = Table(title="shard: %d input(s), %d chunk(s) %s" % (
        len(run.inputs), len(run.chunks), "of %s" % run.chunk_size if run.chunk_size != "adaptive"
        else "sized as the hosts were measured"))
    for col in ("host", "chunks", "results", "moved away"):
        table.add_column(col)
    for h in run.hosts:
        done = sorted(cid for cid, info in run.chunks.items() if info["host"] == h.label)
        away = ["%d (inputs %s) to %s" % (m["chunk"], m["inputs"], m["to"] or "nobody")
                for m in run.moves if m["from"] == h.label]
        table.add_row(escape(h.label), escape(",".join(map(str, done)) or "-"), str(len(h.records)),
                      escape("; ".join(away) or "-"))
    return table


def show(run, saved_dir, compare, out, err):
    """Tables and the moves; returns the exit status: 1 when inputs are left without results (every host
    failed), 3 when some inputs failed, else 0 (a host that failed is named, its work was done by others)."""
    def line(text):
        err.print(text, markup=False, highlight=False, soft_wrap=True)

    if run.records and len(run.inputs) <= SHOW_RECORDS_UP_TO:
        out.print(tables.compare_table("all hosts", run.records, run.models) if compare
                  else tables.topk_table("all hosts", run.records))
    out.print(tables.summary_table(run.hosts, saved_dir))
    out.print(chunks_table(run))
    if run.resumed:
        line("mxlab: resumed run %s: %d input(s) already had results; %d done now"
             % (run.run_id, run.resumed, len(run.inputs) - run.resumed - len(run.missing)))
    for m in run.moves:
        line("mxlab: chunk %d (inputs %s) moved from %s to %s: %s"
             % (m["chunk"], m["inputs"], m["from"], m["to"] or "no host (none left)", m["reason"]))
    if run.missing:
        shown = run.missing[:20]
        every = all(h.status == "failed" for h in run.hosts)
        line("mxlab: %s%d of %d input(s) without results%s:\n  %s"
             % ("every host failed: " if every else "", len(run.missing), len(run.inputs),
                " (all in %s)" % (Path(saved_dir) / rundir.SHARD_FILE) if len(run.missing) > len(shown) else "",
                "\n  ".join(shown)))
        line("mxlab: once a host is back: the same command with --resume %s does only these" % run.run_id)
        for h in run.hosts:
            if h.status == "failed":
                line("mxlab: %s failed: %s" % (h.label, h.error))
        return status_codes.FAILED
    return status_codes.SOME_INPUTS_FAILED if run.errors() else status_codes.SUCCESS
