"""The run folder, the operator's twin of agent/contract.py: results/<stack-or-host>/<run id>/ and every name in it.

What mxlab writes there and what `mxlab report` and `mxlab run --resume` read back meet only here: the file
names, the run id (its format and its parsing), the JSONL files and the summary schema.

    <host>.jsonl    one result line per image and model, the agent's records as they were (written atomically)
    summary.json    one entry per host (summary_entry): status, error, counts
    results.jsonl   a sharded run's merged results, in input order (no host is called "results")
    shard.json      a sharded run's plan: every chunk, who ran it, what moved where (mxlab/runs/shard.py)
    run.json        what the run was (mxlab/results/run_facts.py)
    report.html     the self-contained report (mxlab/results/html_report.py)
"""
import json
import os
import time
from pathlib import Path

from mxlab.atomic import write_atomic
from mxlab.remote.run import HostResult

HOST_SUFFIX = ".jsonl"
SUMMARY_FILE = "summary.json"
# The local merged file. Its value is the agent's contract.RESULTS_FILE too (a remote run folder's results), but it
# is the run folder's own name: the two layouts may not change together.
MERGED_FILE = "results.jsonl"
SHARD_FILE = "shard.json"
RUN_FACTS_FILE = "run.json"
REPORT_FILE = "report.html"

RUN_ID_TIME = "%Y%m%dT%H%M%SZ"  # a run id: when it started (UTC), then 6 hex digits so two runs in a second differ
_RUN_ID_TIME_LEN = len("20260101T000000Z")


def new_run_id(now=None):
    return time.strftime(RUN_ID_TIME, time.gmtime(now)) + "-" + os.urandom(3).hex()


def run_id_time(run_id):
    """When the run with this id started (a UTC struct_time), or None for an id that is not mxlab's."""
    try:
        return time.strptime(str(run_id)[:_RUN_ID_TIME_LEN], RUN_ID_TIME)
    except ValueError:
        return None


def host_file(run_dir, label):
    return Path(run_dir) / (label + HOST_SUFFIX)


def host_files(run_dir):
    """{host label: path} of the per-host result files in a run folder (not the merged one)."""
    return {p.stem: p for p in sorted(Path(run_dir).glob("*" + HOST_SUFFIX)) if p.name != MERGED_FILE}


# ---- JSONL ---------------------------------------------------------------------------------

def read_jsonl(path):
    """The JSON records of a results file; a line cut short (a killed writer) is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def write_jsonl(path, records):
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return path


# ---- summary.json --------------------------------------------------------------------------

def summary_entry(result, extra=None):
    """One host's entry of summary.json. partial_results: the records were recovered from the agent's
    temporary file (it was killed before it could finish), so inputs may be missing. warm_agent: the host's
    warm agent (mxlab prepare) ran it; warm_reason: which, or why a fresh agent did. `extra`: more fields
    (a sharded run's chunks)."""
    entry = {"host": result.label, "address": result.address, "status": result.status,
             "exit_code": result.exit_code, "results": len(result.records), "partial_results": result.partial_results,
             "error": result.error, "environment": result.environment, "remote_run_dir": result.run_dir,
             "reconnects": result.reconnects, "warm_agent": result.warm_agent, "warm_reason": result.warm_reason}
    entry.update(extra or {})
    return entry


def host_result(entry, records=()):
    """The HostResult a summary entry (and its host's records) stands for: what a resumed run keeps."""
    return HostResult(
        label=str(entry["host"]), address=str(entry.get("address") or ""), status=str(entry.get("status") or "ok"),
        records=list(records), error=entry.get("error"), exit_code=entry.get("exit_code"),
        environment=entry.get("environment"), run_dir=entry.get("remote_run_dir"),
        reconnects=entry.get("reconnects") or 0, partial_results=bool(entry.get("partial_results")),
        warm_agent=entry.get("warm_agent"), warm_reason=entry.get("warm_reason"))


def load_summary(run_dir):
    """summary.json's host entries (dicts with a "host"), or None when the folder has none.
    ValueError (its text says what is wrong) for one that is not JSON or not a list."""
    path = Path(run_dir) / SUMMARY_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        summary = json.loads(text)
    except ValueError as exc:
        raise ValueError("%s is not valid JSON (%s)" % (SUMMARY_FILE, exc))
    if not isinstance(summary, list):
        raise ValueError("%s is not a list of hosts" % SUMMARY_FILE)
    return [e for e in summary if isinstance(e, dict) and e.get("host")]


class ResultStore:
    """One folder per run; each host's file is written as soon as that host is done."""

    def __init__(self, root, name, run_id):
        self.dir = Path(root) / name / run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hosts = []  # the HostResults of the summary last written: the report of this run reads them

    def save_host(self, result):
        path = host_file(self.dir, result.label)
        if result.records:
            write_jsonl(path, result.records)
        return path

    def save_summary(self, results, extra=None):
        """summary.json, one entry per host; `extra`: {host label: {field: value}} added to hosts' entries."""
        extra = extra or {}
        summary = [summary_entry(r, extra.get(r.label)) for r in results]
        path = self.dir / SUMMARY_FILE
        write_atomic(path, json.dumps(summary, indent=2) + "\n")
        self.hosts = list(results)
        return path

    def save_merged(self, records):
        """A sharded run's results.jsonl: every host's records once, in input order (beside the per-host files)."""
        return write_jsonl(self.dir / MERGED_FILE, records)
