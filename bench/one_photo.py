"""One photo, as an attendee runs it all day: wall seconds of the whole `mxlab run` process on a loopback
sshd host (mxlab/offline/lab_host.SshdHost), fresh (the agent starts, imports and binds) and warm (after
`mxlab prepare` left a warm agent with the model bound). The median of `runs` each, after one untimed run
that uploads the agent, finds the environment and caches the model.
Note: on loopback each SSH round trip is ~0.1 ms; a lab host across the Internet adds ~15 round trips.
"""
from __future__ import print_function, division, absolute_import

import json
import os
import sys
import tempfile
import time

from bench import process_group


def _mxlab(root, host, args, env):
    direct = ["--host", host.hostspec, "--user", host.user, "--identity", str(host.identity),
              "--known-hosts", str(host.known_hosts)]
    began = time.time()
    proc = process_group.run([sys.executable, "-m", "mxlab"] + args[:1] + direct + args[1:], cwd=root, env=env,
                             timeout=900)
    wall = time.time() - began
    if proc.returncode != 0:
        raise RuntimeError("mxlab %s: %s" % (args[0], (proc.stderr or proc.stdout)[-300:]))
    return wall


def _run(root, host, photo, model, zoo, results, env):
    wall = _mxlab(root, host, ["run", "--zoo", zoo, "--model", model, "--results", results, photo], env)
    summaries = sorted(os.path.join(d, "summary.json") for d, _, files in os.walk(results) if "summary.json" in files)
    newest = max(summaries, key=os.path.getmtime)
    with open(newest) as handle:
        (entry,) = json.load(handle)
    return wall, entry.get("warm_agent")


def organiser(root, build_dir, prefix):
    """(zoo, env, results folder) of an organiser's `mxlab` with a home of its own under build_dir, shared by
    the one-photo benchmarks."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed mxlab runs: its bytecode cached
    env["MXLAB_HOME"] = tempfile.mkdtemp(prefix=prefix, dir=build_dir)
    return os.path.join(root, "build", "zoo"), env, os.path.join(env["MXLAB_HOME"], "results")


def _median(values):
    values = sorted(values)
    return round(values[len(values) // 2], 3)


def measure(root, build_dir, photo, model="efficientnet-lite0", runs=5):
    """{"fresh": s, "warm": s, "warm_used": bool, "runs": n} or {"note": why not}."""
    try:
        from mxlab.offline.lab_host import SshdHost
    except Exception as err:
        return {"note": "not measured: mxlab not available (%s)" % err}
    zoo, env, results = organiser(root, build_dir, "one-photo-")
    host = None
    try:
        host = SshdHost().start()
        _run(root, host, photo, model, zoo, results, env)  # untimed: upload, environment, model cache
        fresh = [_run(root, host, photo, model, zoo, results, env)[0] for _ in range(runs)]
        _mxlab(root, host, ["prepare", "--zoo", zoo, "--models", model], env)
        warm = [_run(root, host, photo, model, zoo, results, env) for _ in range(runs)]
        return {"fresh": _median(fresh), "warm": _median([w for w, _ in warm]),
                "warm_used": all(used for _, used in warm), "runs": runs, "model": model}
    except Exception as err:
        return {"note": "not measured: %s" % str(err)[:300]}
    finally:
        if host is not None:
            host.stop()
