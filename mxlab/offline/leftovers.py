"""What the offline lab starts, recorded where the next start finds it, so a killed run's leftovers go.

Each part that outlives a crash of its owner (a lab host's sshd and everything run through it, the
CDK CLI's node processes, the state folders) is recorded here under a fresh mark:
  /tmp/mxlab-offline-<uid>/<mark>.json
  {"owner": pid, "owner_start": ticks, "pids": [[pid, ticks], ...], "paths": [...], "what": ...}
and every process it starts carries the mark in its environment (MXLAB_OFFLINE_MARK=<mark>; sshd passes
it on to its sessions with SetEnv, and a detached `setsid nohup` agent inherits it). sshd itself
overwrites its environment (its process title), so its pid is recorded instead, and its descendants
found from it. A record whose owner is gone (pid dead, or reused by a newer process) is swept by the next
start: the recorded processes and their descendants, and every process that carries its mark, are
killed by PID; its paths removed. Only records of this user, only processes that
carry a dead owner's mark: never by process name, never another live run's. Several sweeps may run at
once (two sandboxes starting, a test session beside a demo): each record is claimed by renaming it
(`<mark>.sweeping-<pid>-<ticks>`), so exactly one sweeps it, and a claim whose sweeper died is swept anew.
"""
import json
import os
import shutil
import signal
import time
from pathlib import Path

MARK_VARIABLE = "MXLAB_OFFLINE_MARK"


def records_dir():
    return Path(os.environ.get("MXLAB_OFFLINE_RECORDS") or "/tmp/mxlab-offline-%d" % os.getuid())


def _start_ticks(pid):
    """The process's start time (clock ticks since boot): tells a live owner from a reused pid."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def new_mark(prefix="lab"):
    return "%s-%d-%s" % (prefix, os.getpid(), os.urandom(4).hex())


def _write(path, data):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(str(tmp), str(path))


def record(mark, paths=(), what=""):
    """Record `mark` as owned by this process; returns the record's path."""
    folder = records_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / (mark + ".json")
    _write(path, {"owner": os.getpid(), "owner_start": _start_ticks(os.getpid()), "pids": [],
                  "paths": [str(p) for p in paths], "what": what})
    return path


def add_pid(mark, pid):
    """Record a process of `mark` that cannot carry the mark itself (sshd rewrites its environment)."""
    path = records_dir() / (mark + ".json")
    data = json.loads(path.read_text())
    data["pids"] = [p for p in data["pids"] if _start_ticks(p[0]) == p[1]] + [[pid, _start_ticks(pid)]]
    _write(path, data)


def forget(mark):
    try:
        (records_dir() / (mark + ".json")).unlink()
    except FileNotFoundError:
        pass


def marked_processes(mark):
    """PIDs (not this one) whose environment carries MXLAB_OFFLINE_MARK=<mark>."""
    needle = ("%s=%s" % (MARK_VARIABLE, mark)).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if needle in env:
            found.append(int(entry))
    return found


def _parents():
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return parents


def descendants(pid):
    """`pid` and every process below it."""
    parents, found = _parents(), [pid]
    for current in found:
        found.extend(child for child, parent in parents.items() if parent == current and child not in found)
    return found


def kill_marked(mark, roots=(), rounds=5):
    """SIGKILL `roots` (pids) with their descendants and every process carrying `mark` (repeatedly: a
    dying parent may have forked); returns how many were killed."""
    killed = set()
    for _ in range(rounds):
        pids = [p for root in roots if _start_ticks(root) is not None for p in descendants(root)]
        pids += marked_processes(mark)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return len(killed)


def _owner_alive(data):
    pid = data.get("owner")
    return isinstance(pid, int) and _start_ticks(pid) is not None and _start_ticks(pid) == data.get("owner_start")


def _claim(path):
    """Take a dead owner's record for this sweep: renamed away, so that of several sweeps at once (two
    sandboxes starting, a test session beside a demo) exactly one sweeps it; None if another took it."""
    claimed = path.with_name("%s.sweeping-%d-%s" % (path.stem, os.getpid(), _start_ticks(os.getpid())))
    try:
        os.rename(str(path), str(claimed))
    except FileNotFoundError:
        return None
    return claimed


def _unclaimed_by_the_dead(folder):
    """Records a sweep claimed and then died before finishing: back under their own name, swept anew."""
    for path in folder.glob("*.sweeping-*"):
        mark, _, sweeper = path.name.partition(".sweeping-")
        pid, _, ticks = sweeper.partition("-")
        if pid.isdigit() and ticks.isdigit() and _start_ticks(int(pid)) == int(ticks):
            continue  # that sweep is still at work
        try:
            os.rename(str(path), str(folder / (mark + ".json")))
        except FileNotFoundError:
            pass


def _remove(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def sweep(say=None):
    """Sweep the leftovers of every dead owner's records; returns [(what, processes killed, paths removed)].
    Safe beside other sweeps: each record is claimed (renamed) first, and only its claimer sweeps it."""
    swept = []
    folder = records_dir()
    if not folder.is_dir():
        return swept
    _unclaimed_by_the_dead(folder)
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _owner_alive(data):
            continue
        claimed = _claim(path)
        if claimed is None:
            continue  # another sweep took it
        mark = path.stem
        roots = [pid for pid, ticks in data.get("pids", []) if _start_ticks(pid) == ticks]
        killed = kill_marked(mark, roots)
        removed = [p for p in data.get("paths", []) if os.path.lexists(p)]
        for p in removed:
            _remove(p)
        os.unlink(str(claimed))
        swept.append((data.get("what") or mark, killed, removed))
        if say:
            say("swept the leftovers of a dead run (%s, pid %s): %d process(es) ended, %d folder(s) removed"
                % (data.get("what") or mark, data.get("owner"), killed, len(removed)))
    return swept
