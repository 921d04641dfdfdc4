"""The machine and its FP32 peak: nominal from lscpu, measured with an FMA loop and a big sgemm.

Zen 4 (AMD family 25 model 17, AVX-512): two 256-bit FMA pipes; a 512-bit FMA is
executed as two 256-bit halves, so per cycle a core does 2 pipes x 8 FP32 lanes x
2 FLOP (multiply + add) = 32 FLOP. Peak = cores x 32 x clock. lscpu's MHz (the TSC,
= BogoMIPS/2 here) is the base clock; the cores boost above it, so the bench also
times a register-only FMA loop (bench/fma_loop.c) on every core at once: its
GFLOP/s per CPU-second / 32 is the clock really reached, and cores x that is the
peak the targets are judged against. numpy's sgemm is the "attainable" reference.
"""
from __future__ import print_function, division, absolute_import

import os
import re
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def lscpu():
    """{field: value} from lscpu (C locale)."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True, env=dict(os.environ, LC_ALL="C")).stdout
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def flop_per_cycle(flags, family, vendor):
    """(FP32 FLOP per cycle per core, why) from the vector ISA and the core family."""
    if "avx512f" in flags and vendor == "AuthenticAMD" and family == 25:
        return 32, "Zen 4: 2 FMA pipes x 8 FP32 lanes (512-bit ops run as two 256-bit halves) x 2 FLOP"
    if "avx512f" in flags:
        return 64, "AVX-512 with 2 FMA units: 2 x 16 FP32 lanes x 2 FLOP (server Intel cores)"
    if "fma" in flags and "avx2" in flags:
        return 32, "AVX2: 2 FMA units x 8 FP32 lanes x 2 FLOP"
    return 8, "SSE: 4 lanes x 2 (separate add and multiply)"


def _clock_mhz(fields):
    if fields.get("CPU max MHz"):
        return float(fields["CPU max MHz"]), "lscpu CPU max MHz"
    try:
        with open("/proc/cpuinfo") as handle:
            match = re.search(r"cpu MHz\s*:\s*([\d.]+)", handle.read())
        if match:
            return float(match.group(1)), "/proc/cpuinfo cpu MHz (TSC, = BogoMIPS/2)"
    except OSError:
        pass
    return float(fields.get("BogoMIPS", "0")) / 2, "BogoMIPS / 2"


def fma_loop_binary(build_dir):
    """Compile bench/fma_loop.c once (gcc, AVX-512); None when that cannot be done here."""
    binary = os.path.join(build_dir, "fma_loop")
    source = os.path.join(HERE, "fma_loop.c")
    if os.path.exists(binary) and os.path.getmtime(binary) >= os.path.getmtime(source):
        return binary
    if not os.path.isdir(build_dir):
        os.makedirs(build_dir)
    try:
        subprocess.run(["gcc", "-O2", "-mavx512f", "-o", binary, source], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return binary


def measure_fma(binary, cores, iterations=100000000, tries=3):
    """Best GFLOP/s per core (per CPU-second) with one loop pinned to each core at once."""
    best = 0.0
    for _ in range(tries):
        procs = [subprocess.Popen(["taskset", "-c", str(c), binary, str(iterations)], stdout=subprocess.PIPE,
                                  text=True) for c in range(cores)]
        rates = [float(p.communicate()[0].split()[0]) for p in procs]
        best = max(best, min(rates))
    return best


def measure_sgemm(size=2048, repeats=5):
    """numpy float32 matmul GFLOP/s (best of ``repeats``) with all cores."""
    import numpy as np
    a = np.random.rand(size, size).astype(np.float32)
    b = np.random.rand(size, size).astype(np.float32)
    np.dot(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.time()
        np.dot(a, b)
        best = min(best, time.time() - start)
    return 2.0 * size ** 3 / best / 1e9


def describe(build_dir, measure=True):
    """Machine facts and the FP32 peak, with how it was derived."""
    fields = lscpu()
    flags = set(fields.get("Flags", "").split())
    cores = int(fields.get("Core(s) per socket", "1")) * int(fields.get("Socket(s)", "1"))
    cores = min(cores, len(os.sched_getaffinity(0)))
    family = int(fields.get("CPU family", "0") or 0)
    per_cycle, why = flop_per_cycle(flags, family, fields.get("Vendor ID", ""))
    mhz, clock_source = _clock_mhz(fields)
    nominal = cores * per_cycle * mhz / 1000.0
    info = {
        "model": fields.get("Model name"), "vendor": fields.get("Vendor ID"), "family": family,
        "model_number": fields.get("Model"), "cores": cores, "threads_per_core": fields.get("Thread(s) per core"),
        "hypervisor": fields.get("Hypervisor vendor"),
        "isa": sorted(f for f in flags if f.startswith("avx512") or f in ("avx2", "fma")),
        "flop_per_cycle_per_core": per_cycle, "flop_per_cycle_why": why,
        "clock_mhz_lscpu": mhz, "clock_source": clock_source,
        "peak_gflops_nominal": round(nominal, 1),
        "peak_formula": "%d cores x %d FLOP/cycle x clock" % (cores, per_cycle),
    }
    peak, peak_source = nominal, "nominal (lscpu clock)"
    if measure:
        binary = fma_loop_binary(build_dir) if "avx512f" in flags else None
        if binary:
            per_core = measure_fma(binary, cores)
            info["fma_loop_gflops_per_core"] = round(per_core, 1)
            info["clock_mhz_measured"] = round(per_core / per_cycle * 1000.0)
            info["peak_gflops_measured"] = round(per_core * cores, 1)
            if per_core * cores > peak:
                peak, peak_source = per_core * cores, "measured clock (FMA loop on every core, boost included)"
        info["sgemm_gflops_numpy"] = round(measure_sgemm(), 1)
    info["peak_gflops"] = round(peak, 1)
    info["peak_source"] = peak_source
    return info
