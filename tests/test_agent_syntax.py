"""agent/ runs on the Deep Learning AMI's mxnet_p27 and mxnet_p36: Python 2.7 and 3.6+ syntax,
stdlib + numpy + cv2 + mxnet imports only."""
import ast
import os
import sys

import pytest

from tests.other_pythons import vermin
from tests.paths import REPO

AGENT = str(REPO / "agent")
SOURCES = sorted(os.path.join(AGENT, name) for name in os.listdir(AGENT) if name.endswith(".py"))
# The fallbacks of try/except ImportError.
PY2_ONLY_STDLIB = {"urllib2", "httplib", "urlparse", "Queue", "StringIO", "cPickle", "ConfigParser"}
THIRD_PARTY = {"numpy", "cv2", "mxnet"}
# The optional ONNX Runtime engine (agent/requirements-onnx.txt): imported lazily, inside functions of
# its own module only, so the agent imports and runs without it.
OPTIONAL = {"agent/engine_onnx.py": {"onnxruntime", "onnx"}}


def test_vermin_finds_python_27_and_36_compatible():
    result = vermin(AGENT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vermin_would_catch_a_python3_only_construct(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('name = "x"\nprint(f"{name}")\n')
    result = vermin(str(bad))
    assert result.returncode != 0


def _imports(tree):
    """(module names imported, those imported at module level, __future__ names)."""
    futures, imported, top_level = set(), set(), set()
    inside_functions = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            inside_functions.update(id(child) for child in ast.walk(node) if child is not node)
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                futures.update(alias.name for alias in node.names)
            elif node.level == 0:
                names = [node.module.split(".")[0]]
        elif isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        imported.update(names)
        if id(node) not in inside_functions:
            top_level.update(names)
    return imported, top_level, futures


@pytest.mark.parametrize("path", SOURCES, ids=os.path.basename)
def test_module_has_future_imports_and_allowed_imports_only(path):
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    imported, top_level, futures = _imports(tree)
    assert {"print_function", "division", "absolute_import"} <= futures
    allowed = set(sys.stdlib_module_names) | PY2_ONLY_STDLIB | THIRD_PARTY | {"agent"}
    optional = OPTIONAL.get("agent/" + os.path.basename(path), set())
    assert imported <= allowed | optional, imported - allowed - optional
    assert not top_level & optional, "optional engine modules imported at module level: %s" % (top_level & optional)


def test_an_optional_engine_module_at_module_level_is_refused():
    tree = ast.parse("from __future__ import print_function\nimport onnxruntime\n\ndef f():\n    import onnx\n")
    imported, top_level, _ = _imports(tree)
    assert imported == {"onnxruntime", "onnx"} and top_level == {"onnxruntime"}
