"""The catalogue: the built-in file, a zoo's catalogue.json merged in, and clear errors on bad entries."""
import json
import os

import pytest

from agent import catalogue, download, zoo
from agent.errors import AgentError, UsageError
from tests.checkpoints import run_agent


def test_models_json_is_the_builtin_catalogue():
    result = run_agent("models", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    with open(catalogue.BUILTIN_PATH) as handle:
        assert listed["models"] == json.load(handle)["models"]


def test_models_table_lists_every_builtin_model():
    result = run_agent("models")
    assert result.returncode == 0
    for name in catalogue.load_builtin()["models"]:
        assert name in result.stdout
    assert "[local zoo only]" in result.stdout


def test_every_builtin_entry_is_valid():
    for name, entry in catalogue.load_builtin()["models"].items():
        catalogue.validate_entry(name, entry, "built-in")


def test_zoo_catalogue_adds_and_pins_models(tiny_zoo, tmp_path, serve_zoo):
    server = serve_zoo(tiny_zoo)
    result = run_agent("models", "--json", "--zoo", server.url, "--cache", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)["models"]
    assert {"tiny-prob", "tiny-softmax", "resnet-50", "vgg16"} <= set(models)
    pinned = json.load(open(os.path.join(tiny_zoo, "catalogue.json")))["models"]["tiny-prob"]["sha256"]
    assert models["tiny-prob"]["sha256"] == pinned


def test_zoo_entry_updates_builtin_entry_field_by_field(tmp_path):
    (tmp_path / "catalogue.json").write_text(json.dumps(
        {"models": {"resnet-50": {"sha256": {"symbol": "a" * 64, "params": None, "synset": None}}}}))
    models = zoo.Zoo(str(tmp_path)).catalogue(str(tmp_path / "cache"), download.Policy()).models
    assert models["resnet-50"]["sha256"]["symbol"] == "a" * 64
    assert models["resnet-50"]["symbol"] == "resnet/50-layers/resnet-50-symbol.json"


def test_local_zoo_only_model_is_usable_with_a_zoo_that_lists_it(tmp_path):
    with_zoo = zoo.Zoo(str(tmp_path)).catalogue(str(tmp_path / "cache"), download.Policy())
    assert with_zoo.entry("efficientnet-lite0")["input"]["interpolation"] == "cubic"
    default = catalogue.Catalogue(catalogue.load_builtin()["models"], zoo_is_default=True)
    with pytest.raises(UsageError, match="local zoo"):
        default.entry("efficientnet-lite0")


@pytest.mark.parametrize("change, words", [
    ({"symbol": "../../etc/passwd"}, "without '..'"),
    ({"params": "/abs/file.params"}, "relative"),
    ({"input": {"size": 0}}, "input.size"),
    ({"input": {"size": 224, "interpolation": "nearest"}}, "interpolation"),
    ({"input": {"size": 224, "std": [1, 0, 1]}}, "input.std"),
    ({"input": {"size": 224, "crop_fraction": 1.5}}, "crop_fraction"),
    ({"sha256": {"params": "xyz"}}, "sha256.params"),
])
def test_bad_entries_are_refused_naming_the_field(change, words):
    entry = dict(catalogue.load_builtin()["models"]["resnet-50"], **change)
    with pytest.raises(AgentError, match=words.replace(".", r"\.")) as caught:
        catalogue.validate_entry("resnet-50", entry, "test")
    assert "resnet-50" in str(caught.value)


def test_bad_model_name_in_zoo_catalogue_is_refused(tmp_path):
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": {"../evil": {}}}))
    with pytest.raises(AgentError, match="model name"):
        zoo.Zoo(str(tmp_path)).catalogue(str(tmp_path / "cache"), download.Policy())


def test_unknown_zoo_scheme_is_usage_error():
    with pytest.raises(UsageError, match="ftp://"):
        zoo.Zoo("ftp://example.invalid/zoo/")


def test_env_reports_versions_and_features():
    result = run_agent("env", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    import mxnet
    import numpy
    assert info["mxnet"] == mxnet.__version__ and info["numpy"] == numpy.__version__
    assert info["gpus"] == mxnet.context.num_gpus()
    assert isinstance(info["mxnet_features"], list) and info["mkldnn"] == ("MKLDNN" in info["mxnet_features"])
    text = run_agent("env")
    assert text.returncode == 0 and "mxnet" in text.stdout


def test_listing_models_does_not_import_mxnet():
    import subprocess
    import sys
    from tests.paths import REPO
    code = ("import sys, io, contextlib; from agent.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['models', '--json'])\n"
            "print(sorted(m for m in ('mxnet', 'cv2', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
