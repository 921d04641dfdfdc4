"""Whole-process figures: the wall time of each way to classify N photos as the process a user
starts (interpreter start, imports, model load/bind, decode, forward, exit), and the agent's
time to first result (its "timing" event, on one photo, per engine).

- seed: bench/seed_script.py (the tutorial's Module at batch 1, a photo at a time)
- agent: `python -m agent classify --engine auto` as a user runs it (after one untimed run
  that fetches into the cache, exports to ONNX and lets auto choose; the timed run is warm)
- ort: bench/ort_script.py (a plain ONNX Runtime script with default session options)
- agent_warm: `python -m agent classify --warm` handing the same photos to a warm agent
  (`agent serve --preload M --engine auto`, as `mxlab prepare` leaves on a host), its own process
  started each time; the "warm" event must say the warm agent ran it
Each is started ``repeat`` times in turn (seed, agent, ort, agent_warm, seed, ...); the median counts.
"""
from __future__ import print_function, division, absolute_import

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def agent_zoo(model, build_dir):
    """A directory zoo holding ``model`` (symlinks to its checkpoint), for `agent classify --zoo`."""
    folder = os.path.join(build_dir, "agent-zoo")
    name = model["name"]
    sub = os.path.join(folder, name)
    if not os.path.isdir(sub):
        os.makedirs(sub)
    files = {"symbol": model["prefix"] + "-symbol.json", "params": model["prefix"] + "-0000.params",
             "synset": os.path.join(ROOT, "build", "zoo", "synset.txt")}
    links = {}
    for kind, target in files.items():
        link = os.path.join(sub, os.path.basename(target))
        if os.path.lexists(link) and os.path.realpath(link) != os.path.realpath(target):
            os.remove(link)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(target), link)
        links[kind] = name + "/" + os.path.basename(target)
    catalogue_path = os.path.join(folder, "catalogue.json")
    catalogue = {"schema": 1, "models": {}}
    if os.path.exists(catalogue_path):
        with open(catalogue_path) as handle:
            catalogue = json.load(handle)
    catalogue["models"][name] = dict(links, epoch=0, label=None, input=model["input"],
                                     description="bench: " + name)
    with open(catalogue_path, "w") as handle:
        json.dump(catalogue, handle, indent=1)
    return folder


def _wall(argv, env=None, timeout=1800):
    began = time.time()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.time() - began
    if proc.returncode not in (0, 3):
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv[:4]), proc.returncode, proc.stderr.strip()[-600:]))
    return wall, proc


def _events(stderr):
    from agent import contract
    return [evt for evt in (contract.parse(line) for line in stderr.splitlines()) if evt]


class WarmAgent(object):
    """`agent serve` on a socket of its own (a 0700 folder under /tmp: a unix socket path is short), the
    model preloaded; ready once it says it listens. Its stderr goes to a file: nothing reads it later."""

    def __init__(self, argv, env, timeout=600):
        self.folder = tempfile.mkdtemp(prefix="bench-warm-")
        self.socket_path = os.path.join(self.folder, "agent.sock")
        self.log_path = os.path.join(self.folder, "serve.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(argv + ["--socket", self.socket_path], cwd=ROOT, env=env, stderr=log,
                                         stdout=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:  # the preload binds, then "listening"
            with open(self.log_path) as log:
                if any(e["event"] == "warm" and e["used"] for e in _events(log.read())):
                    return
            time.sleep(0.2)
        with open(self.log_path) as log:
            tail = log.read()[-600:]
        self.stop()
        raise RuntimeError("the warm agent did not start listening: %s" % tail)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # it unlinks its socket on SIGTERM
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def measure(model, onnx_path, paths, count, build_dir, repeat=1):
    """{"whole_process_s": {seed, agent, ort, agent_warm}, "photos": N, "agent_engine": ...,
    "warm_used": the warm agent ran every agent_warm run, "first_result_s": s,
    "first_result_s_by_engine": {...}}"""
    from bench.timing import cycle
    photos = cycle(paths, count)
    agent, serve = _agent_commands(model, build_dir)
    env = dict(os.environ)
    env.pop("MXLAB_ZOO", None)
    commands = _fresh_commands(model, onnx_path, agent, photos)
    _wall(agent + ["--engine", "auto"] + photos[:8], env)  # warm: cache, ONNX export, auto's choice
    server = WarmAgent(serve, env)
    # --engine auto as preloaded: the warm agent keys its bound models by engine, and would bind anew otherwise
    commands["agent_warm"] = agent + ["--engine", "auto", "--warm", "--warm-socket", server.socket_path] + photos
    try:
        walls, engine, warm_used = _timed(commands, env, repeat)
    finally:
        server.stop()
    first = _first_results(agent, photos[:1], env)
    median = dict((name, round(sorted(w)[len(w) // 2], 2)) for name, w in walls.items())
    best = min(first, key=lambda mode: first[mode]["first_result"]) if first else None
    return {"whole_process_s": median, "photos": count, "agent_engine": engine[0] if engine else None,
            "warm_used": bool(warm_used) and all(warm_used),
            "first_result_s": first[best]["first_result"] if best else None, "first_result_engine": best,
            "first_result_stages": first}


def _agent_commands(model, build_dir):
    """(`agent classify`, `agent serve` with the model preloaded): both on the bench's zoo and cache."""
    zoo = agent_zoo(model, build_dir)
    cache = os.path.join(build_dir, "agent-cache")
    common = ["--events", "--zoo", zoo, "--cache", cache]
    return ([sys.executable, "-m", "agent", "classify"] + common + ["--model", model["name"]],
            [sys.executable, "-m", "agent", "serve"] + common + ["--preload", model["name"], "--engine", "auto",
                                                                 "--batch-size", "8"])


def _fresh_commands(model, onnx_path, agent, photos):
    """{name: argv} of the fresh processes timed on the same photos: the seed's script, the agent, ONNX
    Runtime's script."""
    spec = model["input"]
    return {
        "seed": [sys.executable, "-m", "bench.seed_script", model["prefix"], str(spec["size"])] + photos,
        "agent": agent + ["--engine", "auto"] + photos,
        "ort": [sys.executable, "-m", "bench.ort_script", onnx_path, str(spec["size"]),
                str(spec.get("crop_fraction", 1.0)), ",".join(str(v) for v in spec["mean"]),
                ",".join(str(v) for v in spec["std"]), spec.get("color", "RGB")] + photos,
    }


def _timed(commands, env, repeat):
    """({name: [wall s, a round each]}, the engines the agent's "engine" events name, the warm runs'
    "warm" events' used flags): each command `repeat` times, in turn."""
    walls = dict((name, []) for name in commands)
    engine, warm_used = None, []
    for _ in range(repeat):
        for name, argv in commands.items():
            wall, proc = _wall(argv, env)
            walls[name].append(wall)
            if name == "agent":
                engine = [e["engine"] for e in _events(proc.stderr) if e["event"] == "engine"] or [None]
            if name == "agent_warm":
                warm_used += [e["used"] for e in _events(proc.stderr) if e["event"] == "warm"]
    return walls, engine, warm_used


def _first_results(agent, photos, env):
    """{engine: the "timing" event's stages} of a fresh agent run on `photos` (one photo) on each engine."""
    first = {}
    for mode in ("mxnet", "onnxruntime"):
        _, proc = _wall(agent + ["--engine", mode] + photos, env)
        timing = [e for e in _events(proc.stderr) if e["event"] == "timing"]
        if timing:
            first[mode] = dict(timing[0]["stages"])
    return first
