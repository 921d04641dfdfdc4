"""A non-editable install (`pip install 'mxlab-*.whl[offline,zoo]'`, no checkout) runs `mxlab demo` and has the
local zoo's builder (issue 18).

The wheel is built from a copy of the checkout's files (so nothing lands in the checkout's build/), installed
into a fresh CPython 3.11 venv, and run from a folder outside the checkout: the CDK app comes from the package
(cdk/cdk.json, cdk/app.sh), the CDK CLI from PATH (a link to the checkout's pinned one, nothing else of it), the
zoo and photos from --zoo-dir/--photos.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.fixtures_zoo import DOMESTIC_CATS, ESPRESSO, SAMPLE_PHOTOS, ZOO_MODELS
from tests.paths import REPO
from tests.run_folders import records

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _copy_tracked_tree(dest):
    """The checkout's tracked and untracked-not-ignored files (links kept: cdk/cdk.json is one)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=str(REPO), capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not os.path.lexists(str(source)):
            continue  # deleted in the work tree, not yet committed
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(source), str(dest / name), follow_symlinks=False)


@pytest.fixture(scope="module")
def installed():
    """The venv's bin/ with mxlab installed from the wheel, with the offline and zoo extras."""
    # Not under pytest's basetemp: building and installing take minutes, and other pytest sessions on the
    # machine prune the older basetemps (pytest-of-USER/pytest-N), venv and all, meanwhile.
    with tempfile.TemporaryDirectory(prefix="mxlab-wheel-") as folder:
        yield _build_and_install(Path(folder))


def _build_and_install(base):
    tree = base / "tree"
    _copy_tracked_tree(tree)
    # Outside the checkout and without PYTHONPATH: `python -m pip` puts its cwd on sys.path, and the checkout's
    # mxlab.egg-info (an editable install's) would make pip call mxlab "already satisfied" and install nothing.
    clean_env = dict((k, v) for k, v in os.environ.items() if k != "PYTHONPATH")
    pip_run = dict(capture_output=True, text=True, timeout=1200, cwd=str(base), env=clean_env)
    built = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "pip", "wheel", "-q", "--no-deps",
                            "--wheel-dir", str(base / "dist"), str(tree)], **pip_run)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    (wheel,) = (base / "dist").glob("mxlab-*.whl")
    venv = base / "venv"
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
    # --no-compile: nothing here reads the installed .pyc, and byte-compiling every module of the extras (sympy,
    # botocore, scipy, ...) was a large part of the install; what the tests import compiles as it is imported.
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile",
                           "%s[offline,zoo]" % wheel, "-c", str(REPO / "constraints.txt")], **pip_run)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return venv / "bin"


def mxlab_demo(bin_dir, tmp_path, *args, cdk=True, timeout=900):
    """The installed `mxlab demo ARGS`, run in tmp_path; PATH: a link to the checkout's pinned CDK CLI (when
    `cdk`) and the system's folders, no venv, no node_modules/.bin, no PYTHONPATH."""
    links = tmp_path / "path-bin"
    links.mkdir(exist_ok=True)
    if cdk:
        (links / "cdk").symlink_to(REPO / "node_modules" / ".bin" / "cdk")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MXLAB_", "PYTHON", "VIRTUAL_ENV", "CDK_"))}
    env.update(PATH="%s:/usr/bin:/bin:/usr/sbin:/sbin" % links, COLUMNS="200")
    assert shutil.which("cdk", path=env["PATH"]) == (str(links / "cdk") if cdk else None)
    return subprocess.run([str(bin_dir / "mxlab"), "demo"] + [str(a) for a in args], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_installed_copy_has_the_local_zoos_builder(installed, tmp_path):
    """`mxlab demo` needs a zoo: the installed copy builds one with `python -m localzoo.build` (the zoo extra's
    synset, weights and photos found), from outside the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run([str(installed / "python"), "-c",
                           "import localzoo, localzoo.build as b, skimage.data; print(localzoo.__file__); "
                           "print(len(b.synset.synset_lines()), sorted(b.build_inputs()['weights']))"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, found = proc.stdout.splitlines()
    assert "site-packages" in where and not Path(where).is_relative_to(REPO)
    assert found == "1000 ['efficientnet-lite0', 'efficientnet-lite1', 'efficientnet-lite2']"
    usage = subprocess.run([str(installed / "python"), "-m", "localzoo.build", "--help"], cwd=str(tmp_path),
                           env=env, capture_output=True, text=True, timeout=300)
    assert usage.returncode == 0 and "--photos" in usage.stdout, usage.stderr[-3000:]


def test_the_installed_demo_classifies_on_the_emulated_lab(installed, tmp_path):
    facts_file = tmp_path / "facts.json"
    proc = mxlab_demo(installed, tmp_path, "--zoo-dir", REPO / "build" / "zoo",
                      "--photos", REPO / "build" / "photos", "--facts", facts_file)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    facts = json.loads(facts_file.read_text())
    assert Path(facts["results"]).is_relative_to(tmp_path / "results" / "demo")  # the default: here, not site-packages

    lite0 = records(facts["run_dir"])
    assert {Path(r["image"]).name for r in lite0} == SAMPLE_PHOTOS
    by_image = {Path(r["image"]).name: r for r in lite0}
    assert by_image["chelsea.jpg"]["top"][0]["index"] in DOMESTIC_CATS
    assert by_image["coffee.jpg"]["top"][0]["index"] == ESPRESSO
    compare = records(facts["compare_dir"])
    assert {(Path(r["image"]).name, r["model"]) for r in compare} == {(p, m) for p in SAMPLE_PHOTOS for m in ZOO_MODELS}
    assert all("error" not in r for r in compare)
    assert "models side by side" in proc.stdout and "espresso" in proc.stdout
    assert not Path(facts["state_dir"]).exists()


def test_the_installed_demo_without_a_cdk_cli_says_where_it_looks(installed, tmp_path):
    proc = mxlab_demo(installed, tmp_path, "--zoo-dir", REPO / "build" / "zoo",
                      "--photos", REPO / "build" / "photos", cdk=False, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "the AWS CDK CLI" in proc.stderr and "MXLAB_CDK_CLI" in proc.stderr and "PATH" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_installed_demo_without_a_zoo_asks_for_one(installed, tmp_path):
    proc = mxlab_demo(installed, tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "--zoo-dir" in proc.stderr and "--photos" in proc.stderr and "Traceback" not in proc.stderr
