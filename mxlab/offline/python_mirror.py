"""The sandbox's stand-in for python-build-standalone's GitHub releases, where `uv python install` gets a CPython.

A lab host whose python3 is too new for MXNet 1.9.1 (Ubuntu 24.04's 3.12) gets a CPython 3.11 from uv
(mxlab/remote/python_env.py). A real host downloads it from GitHub; the sandbox cannot reach GitHub, so it serves uv
a downloads list (UV_PYTHON_DOWNLOADS_JSON_URL, uv's own format) naming one file:// archive: this machine's
CPython 3.11 (the project venv's base interpreter) packed in python-build-standalone's `install_only` layout
(python/bin/python3.11, python/lib/python3.11/...). Built once into build/python-mirror, keyed by the
interpreter it was made from.
"""
import hashlib
import json
import os
import sys
import sysconfig
import tarfile
from pathlib import Path

from mxlab.offline import REPO_ROOT

MIRROR = REPO_ROOT / "build" / "python-mirror"
# Not needed to make a venv and run the agent, and most of the size: the test suite, installed packages
# (python-build-standalone ships only pip), caches and the static library.
_SKIP_DIRS = {"test", "site-packages", "__pycache__", "idlelib", "tkinter", "turtledemo"}


def _members(prefix, version):
    """(path on disk, name in the archive) for the interpreter at `prefix`."""
    prefix = Path(prefix)
    exe = prefix / "bin" / ("python" + version)
    yield exe, "python/bin/python" + version
    for lib in sorted((prefix / "lib").glob("libpython%s*.so*" % version)):
        yield lib, "python/lib/" + lib.name
    stdlib = prefix / "lib" / ("python" + version)
    for folder, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("config-"))
        for name in sorted(files):
            path = Path(folder) / name
            yield path, "python/lib/python%s/%s" % (version, path.relative_to(stdlib).as_posix())


def _link(archive, name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    archive.addfile(info)


def ensure_mirror(folder=MIRROR):
    """Path of the downloads list (build it the first time): one CPython 3.11 for Linux x86_64."""
    version = "%d.%d" % sys.version_info[:2]
    if version != "3.11" or sys.platform != "linux":
        raise RuntimeError("the sandbox's CPython mirror is made from the project venv's CPython 3.11 on Linux; "
                           "this is %s on %s" % (version, sys.platform))
    prefix = sys.base_prefix
    patch = sys.version_info[2]
    key = "cpython-%s.%d-linux-x86_64-gnu" % (version, patch)
    folder = Path(folder)
    listing = folder / ("downloads-%s.json" % hashlib.sha256(prefix.encode()).hexdigest()[:12])
    if listing.exists():
        return listing
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / (key + "-install_only.tar.gz")
    partial = tarball.with_suffix(".part")
    with tarfile.open(partial, "w:gz", compresslevel=1) as archive:
        for path, name in _members(prefix, version):
            archive.add(str(path), name, recursive=False)
        _link(archive, "python/bin/python3", "python" + version)
        _link(archive, "python/bin/python", "python" + version)
        site = tarfile.TarInfo("python/lib/python%s/site-packages" % version)
        site.type, site.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(site)
    partial.rename(tarball)
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    entry = {"name": "cpython", "arch": {"family": "x86_64", "variant": None}, "os": "linux", "libc": "gnu",
             "major": 3, "minor": 11, "patch": patch, "prerelease": "", "url": tarball.as_uri(), "sha256": digest,
             "variant": None, "build": sysconfig.get_config_var("py_version_nodot") or "local"}
    partial = listing.with_suffix(".part")
    partial.write_text(json.dumps({key: entry}, indent=2) + "\n")
    partial.rename(listing)
    return listing
