"""Fleet fan-out: wall time of `mxlab run` on 1, 4 and 8 loopback sshd hosts, parallel vs sequential.

Hosts are real OpenSSH servers on 127.0.0.1 (mxlab/offline/lab_host.SshdHost: a throwaway
home each, a DLAMI-like conda env with the project's MXNet). `mxlab run --host`
takes one host, so the fleet is driven through the function `mxlab run` calls for a
stack, mxlab.runs.fleet.run_fleet, with direct targets: parallel=N for the fan-out,
parallel=1 for the sequential baseline. One untimed run on every host first
(agent upload, environment, model cache), so the timed runs measure a warm lab.
Note: the hosts share this machine's cores, so 8 agents classify on 2 cores at
once: the remote work, not the fan-out, bounds the 8-host time here.
"""
from __future__ import print_function, division, absolute_import

import io
import os
import time


def _fleet(hosts, spec, parallel, results_dir):
    from rich.console import Console
    from mxlab.lab import targets
    from mxlab.runs import fleet
    from mxlab.results.rundir import ResultStore, new_run_id
    found = [targets.direct_target(h.hostspec, h.user, str(h.identity), str(h.known_hosts)) for h in hosts]
    run_id = new_run_id()
    store = ResultStore(results_dir, "bench-fanout", run_id)
    began = time.time()
    results = fleet.run_fleet(found, spec, run_id, store, Console(file=io.StringIO()), parallel=parallel,
                              timeout=600)
    wall = time.time() - began
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise RuntimeError("%s: %s" % (failed[0].label, failed[0].error))
    return wall


def measure(root, build_dir, paths, counts=(1, 4, 8), model="efficientnet-lite0", images=4):
    """{"parallel": {"1": s, "4": s, "8": s}, "sequential": {"8": s}} or {"note": why not}."""
    try:
        # Only whether mxlab imports here (_fleet uses them).
        from mxlab.lab import targets  # noqa: F401
        from mxlab.runs import fleet  # noqa: F401
        from mxlab.remote.run import RunSpec
        from mxlab.offline.lab_host import SshdHost
    except Exception as err:
        return {"note": "not measured: mxlab not available (%s)" % err}
    zoo = os.path.join(root, "build", "zoo")
    spec = RunSpec(models=[model], inputs=list(paths[:images]), zoo=zoo)
    results_dir = os.path.join(build_dir, "fanout-results")
    hosts = []
    try:
        for _ in range(max(counts)):
            hosts.append(SshdHost().start())
        _fleet(hosts, spec, len(hosts), results_dir)  # warm: upload, env, model cache on every host
        parallel = {}
        for count in counts:
            parallel[str(count)] = round(_fleet(hosts[:count], spec, count, results_dir), 2)
        sequential = {str(max(counts)): round(_fleet(hosts, spec, 1, results_dir), 2)}
        return {"parallel": parallel, "sequential": sequential,
                "note": "%d photos, %s, per host; hosts share this machine's %d cores" % (
                    images, model, len(os.sched_getaffinity(0)))}
    except Exception as err:
        return {"note": "not measured: %s" % str(err)[:300]}
    finally:
        for host in hosts:
            try:
                host.stop()
            except Exception:
                pass
