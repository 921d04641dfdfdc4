"""mxlab.catalogue reads model names through the agent's own catalogue code: built-in merged with a zoo's."""
import json

import pytest

from mxlab.catalogue import check_models, known_models
from mxlab.errors import UsageError


def test_a_zoo_catalogue_adds_models_to_the_built_in_ones(tmp_path):
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": {"my-net": {"params": "x.params"}}}))
    known = known_models(str(tmp_path))
    assert "my-net" in known and "resnet-50" in known  # merged, as the agent merges
    assert check_models(["my-net", "resnet-50"], "file://%s" % tmp_path) == ["my-net", "resnet-50"]
    with pytest.raises(UsageError, match="unknown model 'nope': expected one of .*my-net"):
        check_models(["nope"], str(tmp_path))


def test_no_zoo_means_the_built_in_catalogue_and_a_host_only_zoo_is_left_to_the_agent(tmp_path, monkeypatch):
    monkeypatch.delenv("MXLAB_ZOO", raising=False)
    assert "resnet-50" in known_models(None)
    assert known_models(str(tmp_path / "only-on-the-host")) is None
    assert check_models(["anything"], str(tmp_path / "only-on-the-host")) == ["anything"]


def test_a_broken_local_zoo_catalogue_is_a_usage_error(tmp_path):
    (tmp_path / "catalogue.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        check_models(["resnet-50"], str(tmp_path))
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": {"../evil": {}}}))
    with pytest.raises(UsageError, match="must be letters, digits"):
        check_models(["resnet-50"], str(tmp_path))
