"""Results on the operator side: results/<stack-or-host>/<timestamp>/<host>.jsonl, written atomically."""
import json
import os
import time
from pathlib import Path

from mxlab.atomic import write_atomic

MERGED_FILE = "results.jsonl"  # a sharded run's merged results (no host is called "results")


def summary_entry(result):
    """One host's line of summary.json. partial_results: the records were recovered from the agent's
    temporary file (it was killed before it could finish), so inputs may be missing. warm_agent: the host's
    warm agent (mxlab prepare) ran it; warm_reason: which, or why a fresh agent did."""
    return {"host": result.label, "address": result.address, "status": result.status,
            "exit_code": result.exit_code, "results": len(result.records), "partial_results": result.partial_results,
            "error": result.error, "environment": result.environment, "remote_run_dir": result.run_dir,
            "reconnects": result.reconnects, "warm_agent": result.warm_agent, "warm_reason": result.warm_reason}


def new_run_id():
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(3).hex()


class ResultStore:
    """One folder per run; each host's file is written as soon as that host is done."""

    def __init__(self, root, name, run_id):
        self.dir = Path(root) / name / run_id
        self.dir.mkdir(parents=True, exist_ok=True)

    def save_host(self, result):
        path = self.dir / ("%s.jsonl" % result.label)
        if result.records:
            write_atomic(path, "".join(json.dumps(r) + "\n" for r in result.records))
        return path

    def save_summary(self, results):
        summary = [summary_entry(r) for r in results]
        path = self.dir / "summary.json"
        write_atomic(path, json.dumps(summary, indent=2) + "\n")
        return path

    # ---- a sharded run (mxlab/runs/shard.py) ----
    def save_merged(self, records):
        """results.jsonl: every host's records once, in input order (beside the per-host files)."""
        path = self.dir / MERGED_FILE
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
        return path

    def annotate_summary(self, extra):
        """Add fields to hosts' entries in summary.json: {host label: {field: value}} (a sharded run's chunks)."""
        path = self.dir / "summary.json"
        summary = json.loads(path.read_text())
        for entry in summary:
            entry.update(extra.get(entry.get("host"), {}))
        write_atomic(path, json.dumps(summary, indent=2) + "\n")
        return path
