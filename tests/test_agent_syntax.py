"""agent/ runs on the Deep Learning AMI's mxnet_p27 and mxnet_p36: Python 2.7 and 3.6+ syntax,
stdlib + numpy + cv2 + mxnet imports only."""
import ast
import os
import subprocess
import sys

import pytest

AGENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "agent")
SOURCES = sorted(os.path.join(AGENT, name) for name in os.listdir(AGENT) if name.endswith(".py"))
PY2_ONLY_STDLIB = {"urllib2", "httplib", "urlparse", "Queue", "StringIO", "cPickle", "ConfigParser"}  # the fallbacks of try/except ImportError
THIRD_PARTY = {"numpy", "cv2", "mxnet"}


def vermin(*args):
    """Run vermin (its console script's entry point) as a process."""
    command = [sys.executable, "-c", "import sys; from vermin import main; sys.argv[0] = 'vermin'; sys.exit(main())",
               "-t=2.7-", "-t=3.6-", "--no-tips", "--violations"] + list(args)
    return subprocess.run(command, capture_output=True, text=True)


def test_vermin_finds_python_27_and_36_compatible():
    result = vermin(AGENT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vermin_would_catch_a_python3_only_construct(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('name = "x"\nprint(f"{name}")\n')
    result = vermin(str(bad))
    assert result.returncode != 0


@pytest.mark.parametrize("path", SOURCES, ids=os.path.basename)
def test_module_has_future_imports_and_allowed_imports_only(path):
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    futures = set()
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                futures.update(alias.name for alias in node.names)
            elif node.level == 0:
                imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    assert {"print_function", "division", "absolute_import"} <= futures
    allowed = set(sys.stdlib_module_names) | PY2_ONLY_STDLIB | THIRD_PARTY | {"agent"}
    assert imported <= allowed, imported - allowed
