"""The remote environment: the AMI's conda env by preference, else a real venv + pip install, remembered."""
import json
import os
import subprocess
import zipfile

import pytest

from mxlab.remote import gpu_runtime, install
from mxlab.errors import RemoteCommandError, UsageError
from mxlab.remote.python_env import _DETECT, RemoteEnv, choose_conda, mxnet_requirement, parse_detect, venv_package
from mxlab.hosts.session import Session
from mxlab.lab.targets import Target
from tests.fixtures_sshd import direct_args


def test_conda_preference_order_and_explicit_choice():
    envs = [("/h/anaconda3", "tensorflow_p36"), ("/h/anaconda3", "mxnet_latest_p37"),
            ("/h/anaconda3", "mxnet_p27"), ("/h/anaconda3", "mxnet_p36")]
    assert [n for _, n in choose_conda(envs)] == ["mxnet_p36", "mxnet_p27", "mxnet_latest_p37"]
    assert [n for _, n in choose_conda(envs[:2])] == ["mxnet_latest_p37"]
    assert choose_conda([("/h/anaconda3", "tensorflow_p36")]) == []
    assert choose_conda(envs, "tensorflow_p36") == [("/h/anaconda3", "tensorflow_p36")]
    with pytest.raises(UsageError, match="--env nope: no such conda env.*mxnet_p36"):
        choose_conda(envs, "nope")


def test_gpu_hosts_get_the_mxnet_cuda_build_the_driver_supports():
    assert mxnet_requirement(None) == "mxnet==1.9.1"
    assert mxnet_requirement("12.2") == "mxnet-cu112==1.9.1"
    assert mxnet_requirement("11.1") == "mxnet-cu110==1.9.1"
    assert mxnet_requirement("10.2") == "mxnet-cu102==1.9.1"
    assert mxnet_requirement("9.0") == "mxnet==1.9.1"
    envs, gpu, py = parse_detect("ROOT /h/a\nENV /h/a mxnet_p36\nGPU 11.4\nPYTHON3 /usr/bin/python3\n")
    assert envs == [("/h/a", "mxnet_p36")] and gpu == "11.4" and py == "/usr/bin/python3"


def test_the_venv_package_is_the_one_ubuntus_message_names():
    assert venv_package("...\n    apt install python3.10-venv\n\nYou may need to use sudo") == "python3.10-venv"
    assert venv_package("ensurepip is not available") == "python3-venv"


def test_env_flag_picks_another_mxnet_env_and_unknown_env_fails(sshd_factory, mxlab_cli, local_zoo,
                                                                sample_photos, tmp_path):
    host = sshd_factory(conda_envs=("mxnet_p27", "mxnet_latest_p37"))
    common = [*direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path]
    code, out, err = mxlab_cli("run", *common, sample_photos / "coffee.jpg")
    assert code == 0, err
    assert "conda env mxnet_p27" in err
    code, out, err = mxlab_cli("run", *common, "--env", "mxnet_latest_p37", sample_photos / "coffee.jpg")
    assert code == 0, err
    assert (host.home / ".mxlab-agent" / "env.sh").read_text().startswith("# mxlab environment: conda:mxnet_latest_p37")
    code, out, err = mxlab_cli("run", *common, "--env", "mxnet_p99", sample_photos / "coffee.jpg")
    assert code == 1 and "--env mxnet_p99: no such conda env" in err


def test_venv_fallback_installs_once_then_is_remembered(sshd_factory, wheelhouse, mxlab_cli, local_zoo,
                                                        sample_photos, tmp_path):
    host = sshd_factory(conda_envs=(), wheelhouse=wheelhouse)
    common = [*direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path]
    code, out, err = mxlab_cli("run", *common, sample_photos / "coffee.jpg")
    assert code == 0, err
    assert "no MXNet conda env: making a venv" in err and "pip install" in err
    venv_python = host.home / ".mxlab-agent" / "venv" / "bin" / "python"
    assert venv_python.exists()
    assert list((host.home / ".mxlab-agent" / "venv").glob("lib/python3*/site-packages/mxnet/__init__.py"))
    assert "espresso" in out
    env_file = host.home / ".mxlab-agent" / "env.sh"
    assert env_file.read_text().startswith("# mxlab environment: venv")
    stamp = env_file.stat().st_mtime_ns
    code, out, err = mxlab_cli("run", *common, sample_photos / "chelsea.jpg")
    assert code == 0, err
    assert "making a venv" not in err and "pip install" not in err
    assert env_file.stat().st_mtime_ns == stamp


# ---- GPU hosts and fresh Ubuntu hosts (real sshd host; test-double tools first on its PATH) -------------

HOST_PYTHON_VERSION = subprocess.run(
    ["/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_python_version())"],
    capture_output=True, text=True, check=True).stdout.strip()

# TEST DOUBLE of `nvidia-smi` on a GPU DLAMI with a CUDA 12 driver: the header line mxlab reads.
FAKE_NVIDIA_SMI_GPU = """#!/bin/sh
# TEST DOUBLE (tests/test_mxlab_remote_env.py): nvidia-smi of a GPU host with a CUDA 12.2 driver.
cat <<'EOF'
+---------------------------------------------------------------------------------------+
| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |
|-----------------------------------------+----------------------+----------------------+
|   0  Tesla T4                       On  | 00000000:00:1E.0 Off |                    0 |
+---------------------------------------------------------------------------------------+
EOF
"""

# TEST DOUBLE of `nvidia-smi` on a CPU instance of a GPU AMI: installed, and failing.
FAKE_NVIDIA_SMI_NO_GPU = """#!/bin/sh
# TEST DOUBLE (tests/test_mxlab_remote_env.py): nvidia-smi on a CPU instance of a GPU AMI.
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." \
  "Make sure that the latest NVIDIA driver is installed and running."
exit 9
"""

# TEST DOUBLE of Ubuntu's python3 without python3.X-venv: `-m venv` fails with Ubuntu's exact message
# (Debian's patch to venv/__init__.py) until the fake sudo's apt-get "installs" the package (a marker).
FAKE_PYTHON3_WITHOUT_ENSUREPIP = r"""#!/bin/bash
# TEST DOUBLE (tests/test_mxlab_remote_env.py): Ubuntu's python3 before `apt-get install python3.X-venv`.
if [ "$1" = "-m" ] && [ "$2" = "venv" ] && [ ! -e "$HOME/.test-double-venv-installed" ]; then
  dest="${@: -1}"
  /usr/bin/python3 -m venv --without-pip "$dest"   # Ubuntu leaves the half-made venv behind
  cat <<EOF
The virtual environment was not created successfully because ensurepip is not
available.  On Debian/Ubuntu systems, you need to install the python3-venv
package using the following command.

    apt install python%(version)s-venv

You may need to use sudo with that command.  After installing the python3-venv
package, recreate your virtual environment.

Failing command: $dest/bin/python3
EOF
  exit 1
fi
exec /usr/bin/python3 "$@"
""" % {"version": HOST_PYTHON_VERSION}

# TEST DOUBLE of sudo for a login user with passwordless sudo (cloud-init's default `ubuntu` user) on a
# fresh instance: apt has no package lists until `apt-get update`. Records every command in ~/sudo.log.
FAKE_SUDO_NOPASSWD = r"""#!/bin/bash
# TEST DOUBLE (tests/test_mxlab_remote_env.py): passwordless sudo; apt-get is simulated, nothing is installed.
[ "$1" = "-n" ] && shift
echo "$*" >> "$HOME/sudo.log"
case "$*" in
  true) exit 0 ;;
  *apt-get*" update") touch "$HOME/.test-double-apt-lists"; echo "Reading package lists..."; exit 0 ;;
  *apt-get*" install "*-venv)
    if [ ! -e "$HOME/.test-double-apt-lists" ]; then echo "E: Unable to locate package ${@: -1}"; exit 100; fi
    touch "$HOME/.test-double-venv-installed"; echo "Setting up ${@: -1} ..."; exit 0 ;;
esac
echo "sudo (test double): unexpected command: $*" >&2
exit 1
"""

# TEST DOUBLE of sudo for a login user who may not use it without a password.
FAKE_SUDO_PASSWORD_REQUIRED = """#!/bin/sh
# TEST DOUBLE (tests/test_mxlab_remote_env.py): sudo -n for a user without passwordless sudo.
echo "$*" >> "$HOME/sudo.log"
echo "sudo: a password is required" >&2
exit 1
"""


def put_on_path(host, name, script):
    """Install a test-double command first on the lab user's PATH: ~/bin, exported by ~/.bashrc (which
    bash reads for ssh commands too, as on Ubuntu)."""
    bin_dir = host.home / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(script)
    os.chmod(bin_dir / name, 0o755)
    bashrc = host.home / ".bashrc"
    line = 'export PATH="$HOME/bin:$PATH"  # test doubles first'
    if line not in bashrc.read_text():
        bashrc.write_text(line + "\n" + bashrc.read_text())
    subprocess.run(["chown", "-R", "%s:%s" % (host.user, host.user), str(bin_dir), str(bashrc)], check=True)


def connect(host):
    target = Target(label="lab-host", host=host.address, port=host.port, user=host.user,
                    identity=host.identity, known_hosts=host.known_hosts)
    return Session(target, timeout=60).connect()


def wheel(folder, name, version, requires=(), files=()):
    """A minimal, valid wheel: metadata plus `files` (placeholders)."""
    dist = "%s-%s" % (name.replace("-", "_"), version)
    path = folder / ("%s-py3-none-any.whl" % dist)
    members = {dist + ".dist-info/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s" % (
                   name, version, "".join("Requires-Dist: %s\n" % r for r in requires)),
               dist + ".dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: mxlab-tests\nRoot-Is-Purelib: true\n"
                                          "Tag: py3-none-any\n"}
    members.update({f: "test double, not a library\n" for f in files})
    record = "".join("%s,,\n" % m for m in members) + dist + ".dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for member, text in members.items():
            z.writestr(member, text)
        z.writestr(dist + ".dist-info/RECORD", record)
    return path


@pytest.mark.aws_behaviour
def test_cpu_instance_of_a_gpu_ami_is_not_a_gpu_host(sshd_factory):
    host = sshd_factory(conda_envs=())
    put_on_path(host, "nvidia-smi", FAKE_NVIDIA_SMI_NO_GPU)
    with connect(host) as session:
        assert parse_detect(session.exec(_DETECT)[1])[1] is None
    put_on_path(host, "nvidia-smi", FAKE_NVIDIA_SMI_GPU)
    with connect(host) as session:
        assert parse_detect(session.exec(_DETECT)[1])[1] == "12.2"


@pytest.mark.aws_behaviour
def test_gpu_host_without_the_cuda_packages_falls_back_to_the_cpu_build_and_says_so(sshd_factory, wheelhouse):
    # The wheelhouse (the host's only package source) has the CPU build and no CUDA wheels.
    host = sshd_factory(conda_envs=(), wheelhouse=wheelhouse)
    put_on_path(host, "nvidia-smi", FAKE_NVIDIA_SMI_GPU)
    said = []
    with connect(host) as session:
        install.upload_agent(session)
        name = RemoteEnv(session, say=said.append).ensure()
    log = "\n".join(said)
    assert "(GPU, CUDA 12.2)" in log
    assert "mxnet-cu112==1.9.1" in log and "agent/requirements-gpu.txt" in log  # the GPU install was tried
    assert name.startswith("venv (WARNING: GPU host (CUDA 12.2) but MXNet runs on the CPU build: "
                           "pip could not install mxnet-cu112==1.9.1 and the CUDA 11 runtime")
    assert "WARNING: GPU host (CUDA 12.2)" in log and "falling back to mxnet==1.9.1" in log
    env_text = (host.home / ".mxlab-agent" / "env.sh").read_text()
    assert env_text.startswith("# mxlab environment: venv\n# mxlab warning: GPU host (CUDA 12.2) but MXNet runs on")
    assert "LD_LIBRARY_PATH" not in env_text
    # Remembered, warning included: the next run says it again without installing anything.
    said.clear()
    with connect(host) as session:
        assert RemoteEnv(session, say=said.append).ensure() == name
    assert said == ["lab-host: WARNING: " + name[len("venv (WARNING: "):-1]]


@pytest.mark.aws_behaviour
def test_gpu_op_failure_falls_back_to_the_cpu_build_and_every_run_summary_says_so(
        sshd_factory, wheelhouse, mxlab_cli, local_zoo, sample_photos, tmp_path):
    host = sshd_factory(conda_envs=(), wheelhouse=wheelhouse)
    put_on_path(host, "nvidia-smi", FAKE_NVIDIA_SMI_GPU)
    # TEST DOUBLES of the GPU wheels (the real ones are ~2 GB): every pinned CUDA 11 package with its
    # recorded lib folders, and an mxnet-cu112 that brings the real CPU MXNet, whose GPU op fails as a
    # GPU build's does when it cannot use the GPU.
    doubles = host.home / "gpu-wheel-doubles"
    doubles.mkdir()
    record = gpu_runtime.load()
    for name, version in gpu_runtime.pins():
        libs = record["packages"]["%s==%s" % (name, version)]["libs"]
        wheel(doubles, name, version, files={m.rsplit("/", 1)[0] + "/.test-double" for m in libs})
    wheel(doubles, "mxnet-cu112", "1.9.1", requires=["mxnet==1.9.1"])
    (host.home / ".config" / "pip" / "pip.conf").write_text(
        "[global]\nfind-links =\n    %s\n    %s\nno-index = true\n" % (wheelhouse, doubles))
    subprocess.run(["chown", "-R", "%s:%s" % (host.user, host.user), str(host.home)], check=True)

    results = tmp_path / "results"
    common = [*direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", results]
    code, out, err = mxlab_cli("run", *common, sample_photos / "coffee.jpg")
    assert code == 0, err
    assert "espresso" in out
    # The GPU check ran with every CUDA library folder on LD_LIBRARY_PATH, before `import mxnet`.
    site = next((host.home / ".mxlab-agent" / "venv" / "lib").glob("python3*/site-packages"))
    flat = " ".join(err.split())
    assert "checking a GPU op in: . %s/.mxlab-agent/venv/bin/activate && export LD_LIBRARY_PATH=%s${" % (
        host.home, ":".join("%s/%s" % (site, d) for d in gpu_runtime.lib_dirs())) in flat
    assert "the GPU check mx.nd.ones((2, 2), ctx=mx.gpu(0)) failed: MXNetError: Operator _ones is not " \
           "implemented for GPU." in flat
    assert "falling back to mxnet==1.9.1" in flat
    # The fallback removed the GPU packages and remembered the plain CPU venv, with the warning.
    assert not [f for f in site.glob("nvidia/**/*") if f.is_file()]  # pip leaves the empty folders
    assert not list(site.glob("nvidia_*.dist-info")) and not list(site.glob("mxnet_cu112*"))
    assert list(site.glob("mxnet/__init__.py"))
    env_text = (host.home / ".mxlab-agent" / "env.sh").read_text()
    assert "# mxlab warning: GPU host (CUDA 12.2) but MXNet runs on the CPU build" in env_text
    assert "LD_LIBRARY_PATH" not in env_text

    def summary_says_so(out):
        assert "WARNING" in out  # the fleet summary's note for the host
        [summary] = results.glob("*/*/summary.json")
        env = json.loads(summary.read_text())[0]["environment"]
        summary.unlink()
        assert env.startswith("venv (WARNING: GPU host (CUDA 12.2) but MXNet runs on the CPU build: the GPU check")

    summary_says_so(out)
    code, out, err = mxlab_cli("run", *common, sample_photos / "chelsea.jpg")
    assert code == 0, err
    assert "making a venv" not in err and "pip install" not in err
    assert "WARNING: GPU host (CUDA 12.2)" in " ".join(err.split())
    summary_says_so(out)


@pytest.mark.aws_behaviour
def test_venv_without_ensurepip_installs_python3_venv_with_passwordless_sudo(sshd_factory):
    host = sshd_factory(conda_envs=())
    put_on_path(host, "python3", FAKE_PYTHON3_WITHOUT_ENSUREPIP)
    put_on_path(host, "sudo", FAKE_SUDO_NOPASSWD)
    said = []
    with connect(host) as session:
        python3 = parse_detect(session.exec(_DETECT)[1])[2]
        assert python3 == str(host.home / "bin" / "python3")
        env = RemoteEnv(session, say=said.append)
        env._create_venv(python3, env.root + "/venv")
    package = "python%s-venv" % HOST_PYTHON_VERSION
    apt = "env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300"
    # A fresh instance has no package lists: install fails, update, install again.
    assert (host.home / "sudo.log").read_text().splitlines() == [
        "true", "%s install %s" % (apt, package), "%s update" % apt, "%s install %s" % (apt, package)]
    assert any("has no ensurepip: installing %s with apt-get" % package in s for s in said)
    venv_python = host.home / ".mxlab-agent" / "venv" / "bin" / "python"
    check = subprocess.run([str(venv_python), "-m", "pip", "--version"], capture_output=True, text=True)
    assert check.returncode == 0 and "pip" in check.stdout, check.stderr


@pytest.mark.aws_behaviour
def test_venv_without_ensurepip_and_without_sudo_names_the_package(sshd_factory):
    host = sshd_factory(conda_envs=())
    put_on_path(host, "python3", FAKE_PYTHON3_WITHOUT_ENSUREPIP)
    put_on_path(host, "sudo", FAKE_SUDO_PASSWORD_REQUIRED)
    package = "python%s-venv" % HOST_PYTHON_VERSION
    with connect(host) as session:
        env = RemoteEnv(session, say=lambda m: None)
        with pytest.raises(RemoteCommandError) as info:
            env._create_venv(str(host.home / "bin" / "python3"), env.root + "/venv")
    message = str(info.value)
    assert "ensurepip is not available (the %s package is not installed)" % package in message
    assert "sudo -n: sudo: a password is required" in message
    assert "sudo apt-get install -y %s" % package in message
    assert (host.home / "sudo.log").read_text().splitlines() == ["-n true"]  # asked, installed nothing


# ---- a host whose python3 is newer than MXNet's pins (Ubuntu 24.04 AMIs: 3.12) ----------------------------

@pytest.mark.slow
@pytest.mark.aws_behaviour
def test_a_host_whose_python3_is_3_12_gets_its_venv_on_a_cpython_3_11_from_uv(
        sshd_factory, wheelhouse, mxlab_cli, mxlab_home, local_zoo, sample_photos, tmp_path):
    """The Ubuntu 22.04 DLAMIs' support ends 2027-04-30; on 24.04 python3 is 3.12, where numpy 1.23.5 has no
    wheel (and its sdist needs distutils, gone in 3.12). mxlab installs uv (agent/requirements-python.txt) into a
    small venv of the host's python3, has it install CPython 3.11 (python-build-standalone: from GitHub on a
    real host, from the sandbox's mirror here) and makes the agent's venv with that. A real CPython 3.12 is the
    host's python3; its wheelhouse holds the agent's cp311 wheels and uv, nothing for cp312."""
    from mxlab.offline.python_mirror import ensure_mirror
    from tests.other_pythons import cpython

    from mxlab.offline.lab_host import ensure_wheelhouse

    python312 = cpython("3.12")
    host = sshd_factory(conda_envs=(), wheelhouse=ensure_wheelhouse(python3=python312), python3=python312,
                        python_downloads=ensure_mirror())
    code, out, err = mxlab_cli("prepare", *direct_args(host), "--zoo", local_zoo, "--models", "efficientnet-lite0",
                               "--no-warm")
    assert code == 0 and "all 1 host(s) ready" in out, out + err
    assert "is Python 3.12" in err and "installing CPython 3.11 with uv" in err, err
    agent_root = host.home / ".mxlab-agent"
    cfg = (agent_root / "venv" / "pyvenv.cfg").read_text()
    assert "version = 3.11" in cfg or "version_info = 3.11" in cfg, cfg
    assert str(agent_root / "python") in cfg, "the venv's base is uv's CPython under ~/.mxlab-agent/python"
    assert list((agent_root / "venv").glob("lib/python3.11/site-packages/mxnet/__init__.py"))
    # JupyterLab's own venv is the host's python3 (3.12: its compiled wheels are that version's), and the
    # notebook's kernel is the agent's 3.11 venv.
    assert list((agent_root / "jupyter" / "venv").glob("lib/python3.12/site-packages/jupyterlab/__init__.py"))
    assert list((agent_root / "venv").glob("lib/python3.11/site-packages/ipykernel/__init__.py"))
    # The host's own python3 is untouched (still 3.12), and uv linked nothing into ~/.local/bin.
    with connect(host) as session:
        rc, version, _ = session.exec("python3 -c 'import sys; print(sys.version_info[:2])'; "
                                      "ls ~/.local/bin 2>/dev/null | grep -c python || true")
    assert rc == 0 and version.split() == ["(3,", "12)", "0"], version
    common = [*direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path]
    code, out, err = mxlab_cli("run", *common, sample_photos / "coffee.jpg")
    assert code == 0 and "installing CPython" not in err and "pip install" not in err, err
    assert "espresso" in out
