"""Many hosts at once: a run on one host or the whole room in parallel (fleet.py), and one set of images split
across the hosts, each classified once, resumable (shard.py).
"""
MAY_IMPORT = ("lab", "hosts", "remote", "results")
