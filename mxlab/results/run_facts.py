"""What a run was, saved beside its results as run.json: the command, models, inputs as given,
the folder they were given from, and when it started and ended.

The result lines name images as the operator typed them (often relative paths); the report
needs the folder they are relative to, and the wall time for images/s.
"""
import json
import os
import time
from pathlib import Path

from mxlab.atomic import write_atomic
from mxlab.results.rundir import RUN_FACTS_FILE

SCHEMA = 1


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def run_facts(command, spec, hosts, started, finished, cwd=None):
    """What run.json says; `started`/`finished` are time.time() values."""
    return {"schema": SCHEMA, "command": command, "models": list(spec.models), "top_k": spec.top_k,
            "inputs": [str(i) for i in spec.inputs], "cwd": str(cwd or os.getcwd()),
            "hosts": list(hosts), "started": iso(started), "finished": iso(finished),
            "seconds": round(finished - started, 3)}


def save_run_facts(run_dir, command, spec, hosts, started, finished, cwd=None):
    return write_run_facts(run_dir, run_facts(command, spec, hosts, started, finished, cwd))


def write_run_facts(run_dir, facts):
    """Write run_dir/run.json and return its path."""
    path = Path(run_dir) / RUN_FACTS_FILE
    write_atomic(path, json.dumps(facts, indent=2) + "\n")
    return path


def load_run_facts(run_dir):
    """run.json as a dict, or {} for a run folder without one (older runs) or an unreadable one."""
    path = Path(run_dir) / RUN_FACTS_FILE
    try:
        facts = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return facts if isinstance(facts, dict) else {}
