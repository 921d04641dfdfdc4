"""The CUDA 11 runtime wheels cover every library MXNet's GPU build needs (from the wheels' real ELF data).

mxlab/remote/gpu_runtime.json is `readelf -d` over the real mxnet-cu112 1.9.1 wheel and each pinned NVIDIA
wheel (see mxlab/remote/gpu_runtime.py for how to remake it); agent/requirements-gpu.txt is what the host
installs. A pin dropped from the requirements, or a library no wheel provides, fails here.
"""
import subprocess
import zipfile

import pytest

from mxlab.remote import gpu_runtime
from mxlab.remote.python_env import mxnet_requirement

pytestmark = pytest.mark.aws_behaviour


def unresolved(record, pinned):
    """{needed soname: [libraries needing it]} that neither the MXNet wheel, `pinned` wheels nor the OS provide."""
    mxnet_libs = record["mxnet"]["libs"]
    # libmxnet.so's RPATH is ${ORIGIN}: the wheel's own libraries load from beside it.
    assert "${ORIGIN}" in mxnet_libs["mxnet/libmxnet.so"]["rpath"]
    provided = set(gpu_runtime.FROM_THE_OS)
    provided |= {m.rsplit("/", 1)[1] for m in mxnet_libs} | {l["soname"] for l in mxnet_libs.values()}
    libs = dict(mxnet_libs)
    for key in pinned:
        for member, lib in record["packages"][key]["libs"].items():
            provided.add(lib["soname"] or member.rsplit("/", 1)[1])
            libs[key + ":" + member] = lib
    missing = {}
    for where, lib in libs.items():
        for soname in lib["needed"]:
            if soname not in provided:
                missing.setdefault(soname, []).append(where)
    return missing


def test_every_library_libmxnet_needs_comes_from_a_pinned_wheel_or_the_os():
    record = gpu_runtime.load()
    pinned = ["%s==%s" % p for p in gpu_runtime.pins()]
    needed = record["mxnet"]["libs"]["mxnet/libmxnet.so"]["needed"]
    # What the issue names, as the real wheel has it:
    for soname in ("libcudart.so.11.0", "libcublas.so.11", "libcudnn.so.8", "libnccl.so.2", "libnvrtc.so.11.2"):
        assert soname in needed
    assert unresolved(record, pinned) == {}
    # ... and each pin is there for a reason: without it something is missing.
    for key in pinned:
        assert unresolved(record, [k for k in pinned if k != key]), "%s provides nothing needed" % key


def test_pins_are_exact_recorded_and_on_the_cudnn_8_line():
    record = gpu_runtime.load()
    pins = dict(gpu_runtime.pins())
    assert sorted("%s==%s" % p for p in pins.items()) == sorted(record["packages"])
    assert pins["nvidia-cudnn-cu11"].startswith("8.9.")
    assert all(name.endswith("-cu11") for name in pins)
    # The record is of the build a CUDA 12 host gets.
    assert record["mxnet"]["wheel"] == mxnet_requirement("12.2") == gpu_runtime.MXNET_GPU + "==1.9.1"
    # Every requirement a pinned wheel declares is itself pinned (pip would fetch an unpinned newest).
    for key, pkg in record["packages"].items():
        for req in pkg["requires"]:
            assert req.split(";")[0].split()[0].split("=")[0].split("<")[0].split(">")[0] in pins, (key, req)


def test_unpinned_lines_are_refused(tmp_path):
    bad = tmp_path / "requirements-gpu.txt"
    bad.write_text("# fine\nnvidia-nccl-cu11==2.21.5\nnvidia-cudnn-cu11>=8\n")
    with pytest.raises(ValueError, match=r"requirements-gpu.txt:3: 'nvidia-cudnn-cu11>=8' is not pinned"):
        gpu_runtime.pins(bad)


def test_lib_dirs_hold_every_pinned_library():
    dirs = gpu_runtime.lib_dirs()
    assert "nvidia/cudnn/lib" in dirs and "nvidia/cuda_runtime/lib" in dirs
    for pkg in gpu_runtime.load()["packages"].values():
        for member in pkg["libs"]:
            assert member.rsplit("/", 1)[0] in dirs


def test_record_reads_sonames_and_needed_from_a_real_library_in_a_wheel(tmp_path):
    libz = subprocess.run(["sh", "-c", "ldconfig -p | grep -o '/[^ ]*/libz.so.1$' | head -1"],
                          capture_output=True, text=True).stdout.strip()
    wheel = tmp_path / "fake_zlib-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fake_zlib-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: fake-zlib\nVersion: 1.0\n"
                   "Requires-Dist: nvidia-cublas-cu11\n")
        z.write(libz, "fake_zlib/lib/libz.so.1")
        z.writestr("fake_zlib/__init__.py", "")
    key, requires, libs = gpu_runtime.wheel_libraries(wheel)
    assert key == "fake-zlib==1.0" and requires == ["nvidia-cublas-cu11"]
    assert list(libs) == ["fake_zlib/lib/libz.so.1"]
    assert libs["fake_zlib/lib/libz.so.1"]["soname"] == "libz.so.1"
    assert "libc.so.6" in libs["fake_zlib/lib/libz.so.1"]["needed"]


def test_the_mxnet_pin_is_read_from_the_agent_requirements(tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# comment\nnumpy==1.23.5; python_version >= \"3.8\"\nmxnet==2.0.0  # pinned\n")
    assert gpu_runtime.mxnet_version(reqs) == "2.0.0"
    assert "mxnet==%s\n" % gpu_runtime.MXNET_VERSION in gpu_runtime.AGENT_REQUIREMENTS.read_text()
    reqs.write_text("numpy==1.23.5\n")
    with pytest.raises(ValueError, match="no mxnet==VERSION"):
        gpu_runtime.mxnet_version(reqs)
