"""The CUDA 11 runtime for MXNet's GPU build, from PyPI: its pins, its library folders, its ELF record.

`mxnet-cu112==1.9.1` links against CUDA 11 libraries (libcudart.so.11.0, libcublas.so.11,
libcudnn.so.8, ...) that it does not ship, and current GPU AMIs have CUDA 12 only. The NVIDIA
wheels pinned in agent/requirements-gpu.txt provide them; remote_env installs them into the host
venv and puts their lib folders on LD_LIBRARY_PATH.

gpu_runtime.json records, for the MXNet wheel and each pinned wheel, every shared library it holds
with its SONAME and NEEDED entries (readelf -d), so tests can prove offline that nothing libmxnet.so
needs is missing. Rewrite it after changing a pin:

    pip download --no-deps -d DIR mxnet-cu112==1.9.1 -r agent/requirements-gpu.txt   # ~2.1 GB
    python -m mxlab.remote.gpu_runtime record DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from agent.contract import PACKAGE_DIR
from mxlab import status_codes

MXNET_GPU = "mxnet-cu112"  # the build these libraries are for (CUDA 11.2 and newer drivers)
REQUIREMENTS = Path(PACKAGE_DIR) / "requirements-gpu.txt"
AGENT_REQUIREMENTS = Path(PACKAGE_DIR) / "requirements.txt"  # its mxnet pin: the version of every build
RECORD = Path(__file__).with_name("gpu_runtime.json")

# Libraries the host itself provides, and why that is safe to assume.
FROM_THE_OS = {
    "libc.so.6": "glibc",
    "libm.so.6": "glibc",
    "libdl.so.2": "glibc",
    "libpthread.so.0": "glibc",
    "librt.so.1": "glibc",
    "ld-linux-x86-64.so.2": "glibc",
    "libgcc_s.so.1": "libgcc-s1 (essential on Ubuntu)",
    "libstdc++.so.6": "libstdc++6 (the CPU build needs it too)",
    "libgomp.so.1": "libgomp1 (the CPU build needs it too)",
    "libquadmath.so.0": "libquadmath0 (the wheel's own libgfortran.so.3 needs it, CPU build too)",
    "libz.so.1": "zlib1g (essential on Ubuntu; cuDNN's libcudnn_cnn_infer needs it)",
    "libcuda.so.1": "the NVIDIA driver (nvidia-smi works only where it is installed)",
}

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def pins(path=REQUIREMENTS):
    """[(name, version)] of the requirements file; anything but `name==version` is an error."""
    found = []
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _PIN.match(line)
        if not m:
            raise ValueError("%s:%d: %r is not pinned as name==version" % (path, n, line))
        found.append((m.group(1), m.group(2)))
    return found


def mxnet_version(path=AGENT_REQUIREMENTS):
    """The MXNet version agent/requirements.txt pins (`mxnet==X`): the CPU build and every CUDA build mxlab
    installs are this version, so the pin is written once, there."""
    for raw in Path(path).read_text().splitlines():
        m = _PIN.match(raw.split("#", 1)[0].split(";", 1)[0].strip())
        if m and m.group(1) == "mxnet":
            return m.group(2)
    raise ValueError("%s: no mxnet==VERSION line" % path)


MXNET_VERSION = mxnet_version()


def load(path=RECORD):
    return json.loads(Path(path).read_text())


def lib_dirs(record=None, requirements=REQUIREMENTS):
    """Folders (relative to site-packages) holding the pinned wheels' libraries, for LD_LIBRARY_PATH."""
    record = record or load()
    dirs = []
    for name, version in pins(requirements):
        libs = record["packages"]["%s==%s" % (name, version)]["libs"]
        for member in sorted(libs):
            d = member.rsplit("/", 1)[0]
            if d not in dirs:
                dirs.append(d)
    return dirs


def package_names(requirements=REQUIREMENTS):
    return [name for name, _ in pins(requirements)]


# ---- recording (needs the downloaded wheels and binutils' readelf) ---------------------------

def read_elf(path):
    """{"soname": str or None, "needed": [...], "rpath": [...] where set} of one library, from `readelf -d`."""
    out = subprocess.run(["readelf", "-d", str(path)], check=True, capture_output=True, text=True).stdout
    soname = re.findall(r"\(SONAME\)\s+Library soname: \[(.*?)\]", out)
    info = {"soname": soname[0] if soname else None,
            "needed": re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", out)}
    rpath = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[(.*?)\]", out)
    if rpath:
        info["rpath"] = rpath[0].split(":")
    return info


def wheel_libraries(wheel):
    """('name==version', requires, {member: {"soname", "needed"}}) for every .so in a wheel."""
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8")
        name = re.search(r"^Name: *(.+)$", text, re.M).group(1).strip()
        version = re.search(r"^Version: *(.+)$", text, re.M).group(1).strip()
        requires = [r.strip() for r in re.findall(r"^Requires-Dist: *(.+)$", text, re.M)]
        libs = {}
        for member in z.namelist():
            if re.search(r"\.so(\.[0-9.]+)?$", member):
                path = z.extract(member, tmp)
                libs[member] = read_elf(path)
                os.remove(path)  # libmxnet.so alone is ~900 MB
    return "%s==%s" % (name, version), requires, libs


def record(wheel_dir, requirements=REQUIREMENTS):
    """The JSON record for the MXNet GPU wheel and the pinned runtime wheels found in wheel_dir."""
    found = {}
    for wheel in sorted(Path(wheel_dir).glob("*.whl")):
        key, requires, libs = wheel_libraries(wheel)
        found[key] = {"requires": requires, "libs": libs}
    mxnet = [k for k in found if k.split("==")[0] == MXNET_GPU]
    wanted = ["%s==%s" % p for p in pins(requirements)]
    missing = [k for k in wanted + ["%s==%s" % (MXNET_GPU, MXNET_VERSION)] if k not in found]
    if missing:
        raise SystemExit("%s: no wheel for %s (pip download --no-deps -d %s ...)"
                         % (wheel_dir, ", ".join(missing), wheel_dir))
    return {
        "how": ["pip download --no-deps -d DIR %s==%s -r agent/requirements-gpu.txt" % (MXNET_GPU, MXNET_VERSION),
                "python -m mxlab.remote.gpu_runtime record DIR   (readelf -d over every .so in each wheel)"],
        "mxnet": dict(found[mxnet[0]], wheel=mxnet[0]),
        "packages": {k: found[k] for k in wanted},
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mxlab.remote.gpu_runtime", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="rewrite %s from downloaded wheels" % RECORD.name)
    r.add_argument("wheel_dir")
    r.add_argument("--out", default=str(RECORD))
    args = p.parse_args(argv)
    data = record(args.wheel_dir)
    Path(args.out).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print("wrote %s: %d packages" % (args.out, len(data["packages"])))
    return status_codes.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
