"""The zoo builder: layout, catalogue, idempotence, atomicity, and the script."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

import localzoo.build
from localzoo.build import build_zoo
from tests.paths import REPO

MODELS = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder):
    """{relative path: (inode, mtime_ns)} of every file under ``folder``."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(folder))] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.fixture
def zoo_copy(local_zoo, tmp_path):
    copy = tmp_path / "zoo"
    shutil.copytree(str(local_zoo), str(copy))
    return copy


def test_zoo_is_laid_out_like_the_mxnet_zoo(local_zoo):
    assert (local_zoo / "synset.txt").is_file()
    for model in MODELS:
        assert (local_zoo / model / (model + "-symbol.json")).is_file()
        assert (local_zoo / model / (model + "-0000.params")).stat().st_size > 10 * 2 ** 20


def test_catalogue_describes_each_model_with_real_sha256s(local_zoo):
    doc = json.loads((local_zoo / "catalogue.json").read_text(encoding="utf-8"))
    assert doc["schema"] == 1
    assert sorted(doc["models"]) == sorted(MODELS)
    for model, size in MODELS.items():
        entry = doc["models"][model]
        assert entry["symbol"] == "%s/%s-symbol.json" % (model, model)
        assert entry["params"] == "%s/%s-0000.params" % (model, model)
        assert entry["epoch"] == 0 and entry["synset"] == "synset.txt" and entry["label"] is None
        assert entry["input"] == {"size": size, "crop_fraction": 0.875, "interpolation": "cubic",
                                  "color": "RGB", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
        for kind in ("symbol", "params", "synset"):
            assert entry["sha256"][kind] == sha256(local_zoo / entry[kind]), (model, kind)


def test_catalogue_entries_use_the_agents_schema(local_zoo):
    """The agent reads these entries: same fields, and the same facts for lite0."""
    agent = json.loads((REPO / "agent" / "catalogue.json").read_text(encoding="utf-8"))
    ours = json.loads((local_zoo / "catalogue.json").read_text(encoding="utf-8"))["models"]
    theirs = agent["models"]["efficientnet-lite0"]
    for model in MODELS:
        assert set(ours[model]) == set(theirs), model
        assert set(ours[model]["input"]) == set(theirs["input"])
        assert set(ours[model]["sha256"]) == set(theirs["sha256"])
    for key in ("symbol", "params", "epoch", "synset", "label", "input"):
        assert ours["efficientnet-lite0"][key] == theirs[key], key


def test_second_build_is_a_no_op(local_zoo):
    before = snapshot(local_zoo)
    assert build_zoo(local_zoo) is False
    assert snapshot(local_zoo) == before


def test_damaged_zoo_is_rebuilt_to_the_same_bytes(zoo_copy):
    params = zoo_copy / "efficientnet-lite1" / "efficientnet-lite1-0000.params"
    want = sha256(params)
    with open(str(params), "r+b") as f:
        f.seek(1000)
        f.write(b"\0\1\2\3")
    assert build_zoo(zoo_copy) is True
    assert sha256(params) == want  # the conversion is deterministic


def _interrupt_on(model, monkeypatch):
    real = localzoo.build._write_model

    def write_model(tmp, name):
        if name == model:
            raise KeyboardInterrupt  # what Ctrl-C raises mid-conversion
        return real(tmp, name)

    monkeypatch.setattr(localzoo.build, "_write_model", write_model)


def test_interrupted_first_build_leaves_no_zoo(tmp_path, monkeypatch):
    _interrupt_on("efficientnet-lite2", monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        build_zoo(tmp_path / "zoo")
    assert not (tmp_path / "zoo").exists()
    assert [p.name for p in tmp_path.iterdir()] == [".zoo.lock"]


def test_interrupted_rebuild_keeps_the_previous_zoo(zoo_copy, monkeypatch):
    before = {p: sha256(zoo_copy / p) for p in snapshot(zoo_copy)}
    _interrupt_on("efficientnet-lite1", monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        build_zoo(zoo_copy, force=True)
    assert {p: sha256(zoo_copy / p) for p in snapshot(zoo_copy)} == before
    assert not list(zoo_copy.parent.glob(".zoo.building-*"))


def test_refuses_to_replace_a_folder_that_is_not_a_zoo(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="mine is not empty and holds no local zoo build"):
        build_zoo(folder)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_script_builds_then_reports_up_to_date(tmp_path):
    script = str(REPO / "scripts" / "build-local-zoo")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    first = subprocess.run([script, str(tmp_path / "z"), "--photos", str(tmp_path / "p")],
                           capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert first.returncode == 0, first.stderr
    assert "built" in first.stderr and first.stdout == ""
    assert json.loads((tmp_path / "z" / "catalogue.json").read_text())["schema"] == 1
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    second = subprocess.run([script, "z"], capture_output=True, text=True, env=env,
                            cwd=str(tmp_path), timeout=300)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stderr


def test_script_usage_errors(tmp_path):
    script = str(REPO / "scripts" / "build-local-zoo")
    usage = subprocess.run([script], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "DIR" in usage.stderr
    (tmp_path / "file").write_text("x")
    bad = subprocess.run([script, str(tmp_path / "file")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "file exists and is not a directory" in bad.stderr
