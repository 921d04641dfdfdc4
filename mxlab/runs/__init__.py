"""Many hosts at once: a run on one host or the whole room in parallel (fleet.py), and one set of images split
across the hosts, each classified once, resumable (shard.py).
"""
MAY_IMPORT = ("lab", "hosts", "remote", "results")

# Hosts at once for `mxlab run` and `mxlab prepare` (--parallel's default, fan_out's, run_fleet's and
# prepare_fleet's, and what `mxlab sandbox` counts memory for); to be set from bench/room.py, 30 sandbox
# attendees at 50 ms RTT, --parallel 8,16,30 (README Benchmarks, "A room at once": not yet measured).
DEFAULT_PARALLEL = 8
