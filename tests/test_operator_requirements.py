"""The operator's prerequisites (README "On real AWS"): `mxlab up/hosts/prepare/run/down` install from
requirements.txt alone, on CPython 3.10-3.13, Linux or macOS, without MXNet, numpy, OpenCV, onnx or moto (those
are the offline lab's and the tests': CPython 3.11 on Linux x86_64). Proven with the registries: the pins resolve
to wheels for each Python and platform, and a venv on another CPython, holding a plain (non-editable)
`pip install .`, drives the offline lab."""
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from mxlab.offline import REPO_ROOT
from tests.fixtures_lab import lab_env
from tests.other_pythons import cpython

PHOTO = str(REPO_ROOT / "build" / "photos" / "chelsea.jpg")
CATS = ("tabby", "tiger cat", "Egyptian cat")
LAB_ATTENDEES = 1  # the lab fixture (tests/fixtures_lab.py)
# What the operator must not need: the agent's runtime (it runs on the hosts) and the offline lab's.
OFFLINE_ONLY = {"mxnet", "numpy", "opencv-python-headless", "onnx", "onnxruntime", "moto", "scipy"}
# Platforms an organiser's laptop has, as pip's tags: Linux with glibc >= 2.28 (RHEL 8, Ubuntu 20.04 and
# newer) on x86_64 and arm64, macOS 13/14 on Intel and Apple silicon.
PLATFORMS = {
    "linux-x86_64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "linux-aarch64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"],
    "macos-arm64": ["macosx_14_0_arm64"],
    "macos-x86_64": ["macosx_13_0_x86_64"],
}


def requirement_lines(path):
    """The requirements of a pip requirements file, following `-r` (relative to the including file)."""
    path = Path(path)
    found = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            found += requirement_lines(path.parent / line[3:].strip())
        else:
            found.append(str(Requirement(line)))
    return found


def pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


@pytest.mark.aws_behaviour
def test_pyproject_says_what_the_requirements_files_say():
    project = pyproject()["project"]
    assert sorted(str(Requirement(r)) for r in project["dependencies"]) == sorted(
        requirement_lines(REPO_ROOT / "requirements.txt"))
    assert sorted(str(Requirement(r)) for r in project["optional-dependencies"]["offline"]) == sorted(
        requirement_lines(REPO_ROOT / "requirements-offline.txt"))
    assert sorted(str(Requirement(r)) for r in project["optional-dependencies"]["zoo"]) == sorted(
        requirement_lines(REPO_ROOT / "requirements-zoo.txt"))
    operator = {Requirement(r).name.lower() for r in project["dependencies"]}
    assert not operator & OFFLINE_ONLY
    assert {"boto3", "paramiko", "rich", "pillow", "aws-cdk-lib", "constructs", "cdk-nag"} <= operator
    supported = SpecifierSet(project["requires-python"])
    assert all(v in supported for v in ("3.10", "3.11", "3.12", "3.13")) and "3.9" not in supported


@pytest.mark.slow
@pytest.mark.aws_behaviour
@pytest.mark.parametrize("minor", ["3.10", "3.13"])
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_operator_pins_have_wheels_for_each_python_and_platform(minor, platform, tmp_path):
    """pip's own resolver, on a real CPython `minor` (markers are evaluated by the running interpreter), asked
    for wheels only for `platform`: what an organiser's `pip install -r requirements.txt` would get."""
    python = cpython(minor)
    argv = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
            "--target", str(tmp_path / "target"), "--report", str(tmp_path / "report.json"),
            "-r", str(REPO_ROOT / "requirements.txt"), "-c", str(REPO_ROOT / "constraints.txt")]
    for tag in PLATFORMS[platform]:
        argv += ["--platform", tag]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    installed = {i["metadata"]["name"].lower(): i["metadata"]["version"]
                 for i in json.loads((tmp_path / "report.json").read_text())["install"]}
    assert not set(installed) & OFFLINE_ONLY, installed
    assert installed["pillow"] == ("12.3.0" if minor == "3.10" else "13.0.0")
    assert installed["aws-cdk-lib"] == "2.275.0" and installed["boto3"] == "1.43.11"


def tracked(package):
    out = subprocess.run(["git", "ls-files", package], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True).stdout
    return {Path(p).relative_to(package).as_posix() for p in out.split()}


def installed_files(folder):
    return {p.relative_to(folder).as_posix() for p in Path(folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def operator_venv(tmp_path_factory):
    """A venv on CPython 3.13 (not the project's 3.11) with requirements.txt and a plain `pip install .`."""
    venv = tmp_path_factory.mktemp("operator") / "venv"
    subprocess.run([cpython("3.13"), "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    for argv in (["-r", str(REPO_ROOT / "requirements.txt"), "-c", str(REPO_ROOT / "constraints.txt")],
                 ["--no-deps", str(REPO_ROOT)]):
        proc = subprocess.run([python, "-m", "pip", "install", "-q"] + argv, capture_output=True, text=True,
                              timeout=1800)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return venv


def site_packages(venv):
    (found,) = (venv / "lib").glob("python3.*/site-packages")
    return found


@pytest.mark.slow
@pytest.mark.aws_behaviour
def test_a_plain_install_holds_every_file_of_its_packages_and_no_offline_package(operator_venv):
    """`pip install .` (not editable): the agent/ that `mxlab prepare` uploads is the checkout's, whole
    (requirements-onnx.txt, which `--engine onnxruntime` installs from, included)."""
    site = site_packages(operator_venv)
    for package in ("agent", "mxlab", "cdk"):
        assert installed_files(site / package) == tracked(package), package
    names = subprocess.run([str(operator_venv / "bin" / "python"), "-c",
                            "import importlib.metadata as m, json; print(json.dumps(sorted("
                            "d.metadata['Name'].lower() for d in m.distributions())))"],
                           capture_output=True, text=True, check=True).stdout
    assert not set(json.loads(names)) & OFFLINE_ONLY, names


def operator_mxlab(venv, lab, *args, cwd, checkout=False, **extra_env):
    """`mxlab ARGS` from the CPython 3.13 venv with the lab's variables: its installed copy (cwd outside the
    checkout), or the checkout's (as `scripts/setup --operator`'s editable install runs it)."""
    env = lab_env(lab, extra_env, drop=("PYTHON", "VIRTUAL_ENV"))
    if checkout:
        env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([str(venv / "bin" / "python"), "-m", "mxlab"] + [str(a) for a in args], env=env,
                          cwd=str(cwd), capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.aws_behaviour
def test_the_operator_venv_on_another_python_runs_the_lab(operator_venv, lab, tmp_path):
    """policy, hosts, prepare, run (with a report) from CPython 3.13 and no MXNet; `down` from a checkout synthesizes
    the CDK app on 3.13 too; a wheel install without a CDK CLI says where it looks for one."""
    assert subprocess.run([str(operator_venv / "bin" / "mxlab"), "--help"], capture_output=True,
                          check=True).returncode == 0
    policy = operator_mxlab(operator_venv, lab, "policy", "--json", cwd=tmp_path)
    assert policy.returncode == 0, policy.stderr
    documents = json.loads(policy.stdout)  # one policy document, or a list when one managed policy is too small
    assert all(d["Statement"] for d in (documents if isinstance(documents, list) else [documents]))
    hosts = operator_mxlab(operator_venv, lab, "hosts", cwd=tmp_path)
    assert hosts.returncode == 0 and "running" in hosts.stdout, hosts.stdout + hosts.stderr
    prep = operator_mxlab(operator_venv, lab, "prepare", "--attendee", "1", "--models", "efficientnet-lite0",
                          "--no-warm", cwd=tmp_path)
    assert prep.returncode == 0 and "all 1 host(s) ready" in prep.stdout, prep.stdout + prep.stderr
    run = operator_mxlab(operator_venv, lab, "run", "--model", "efficientnet-lite0", "--results",
                         tmp_path / "results", PHOTO, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert any(cat in run.stdout for cat in CATS), run.stdout
    assert list((tmp_path / "results").rglob("report.html")), "the report (thumbnails: pillow on 3.13)"
    # Installed, `down` runs the user's CDK CLI: here MXLAB_CDK_CLI names none (tests/test_wheel_demo.py runs one).
    no_cli = operator_mxlab(operator_venv, lab, "down", cwd=tmp_path, MXLAB_CDK_CLI=str(tmp_path / "no-cdk"))
    assert no_cli.returncode == 1, no_cli.stderr
    assert "the AWS CDK CLI" in no_cli.stderr and "MXLAB_CDK_CLI=%s" % (tmp_path / "no-cdk") in no_cli.stderr
    assert "npm install -g aws-cdk@" in no_cli.stderr and "Traceback" not in no_cli.stderr
    down = operator_mxlab(operator_venv, lab, "down", cwd=REPO_ROOT, checkout=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert re.search(r"stack \S+ destroyed", down.stderr), down.stderr


@pytest.mark.aws_behaviour
@pytest.mark.parametrize("mode, minor, says", [
    ("--tests", "3.13", "the offline lab and the tests need CPython 3.11 on Linux x86_64"),
    ("--operator", "3.9", "the operator CLI needs CPython 3.10-3.13"),
])
def test_setup_names_the_python_its_pins_need(mode, minor, says, tmp_path):
    """scripts/setup on a venv of the wrong Python stops before pip, saying which one it needs (and the
    operator's way out), instead of pip's `No matching distribution found for mxnet==1.9.1`."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup").write_bytes((REPO_ROOT / "scripts" / "setup").read_bytes())
    subprocess.run([cpython(minor), "-m", "venv", "--without-pip", str(tmp_path / ".venv")], check=True)
    proc = subprocess.run(["bash", str(tmp_path / "scripts" / "setup"), mode], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and says in proc.stderr, proc.stderr
    assert "installing" not in proc.stderr
    if mode == "--tests":
        assert "scripts/setup --operator" in proc.stderr


def vermin_310(*paths):
    """vermin (its entry point, as a process): do `paths` run on CPython 3.10, the oldest the operator has?"""
    code = "import sys; from vermin import main; sys.argv[0] = 'vermin'; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, "-t=3.10-", "--no-tips", "--violations",
                           "--eval-annotations"] + [str(p) for p in paths], capture_output=True, text=True)


@pytest.mark.aws_behaviour
def test_the_operator_code_runs_on_cpython_3_10(tmp_path):
    """The real 3.13 venv above proves the newest; statically, nothing of the operator's needs more than 3.10
    (tomllib, datetime.UTC, except* ... would be 3.11): its own modules and the CDK app."""
    operator = sorted((REPO_ROOT / "mxlab").glob("*.py")) + sorted((REPO_ROOT / "cdk").glob("*.py"))
    result = vermin_310(*operator)
    assert result.returncode == 0, result.stdout + result.stderr
    newer = tmp_path / "newer.py"
    newer.write_text("import tomllib\n")
    assert vermin_310(newer).returncode != 0, "vermin would catch a 3.11-only module"
