"""Start-up of the operator CLI: a one-photo `mxlab run` must not pay for boto3/botocore (~0.25 s) or
cv2/numpy (~0.2 s) before an AWS call or a thumbnail really needs them. Checked in fresh processes:
this test process has imported them long before."""
import json
import os
import subprocess
import sys

from tests.paths import REPO

HEAVY = ("boto3", "botocore", "cv2", "numpy")
MARK = "HEAVY-MODULES:"
REPORT = "print(%r + json.dumps(sorted(m for m in %r if m in sys.modules)), file=sys.stderr)" % (MARK, HEAVY)


def heavy_modules(stderr):
    (line,) = [line for line in stderr.splitlines() if line.startswith(MARK)]
    return json.loads(line[len(MARK):])


def test_importing_the_cli_imports_no_aws_sdk_nor_opencv():
    code = "import json, sys\nimport mxlab.cli, mxlab.runs.fleet, mxlab.remote.run\n" + REPORT
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert heavy_modules(result.stderr) == []


def test_a_run_on_a_direct_host_imports_none_of_them_up_to_its_report(sample_photos, tmp_path):
    """The whole `python -m mxlab run --host` path (parse, model check, connect, tables, run.json,
    report.html) on a host that refuses the connection: no AWS call and no thumbnail, so none of them."""
    key = tmp_path / "key"
    key.write_text("not a key: the connection is refused before it is read\n")
    argv = ["mxlab", "run", "--host", "127.0.0.1:1", "--user", "u", "--identity", str(key), "--known-hosts",
            str(key), "--timeout", "1", "--model", "efficientnet-lite0", str(sample_photos / "coffee.jpg")]
    code = ("import json, runpy, sys\nsys.argv = %r\ntry:\n    runpy.run_module('mxlab', run_name='__main__')\n"
            "except SystemExit as exc:\n    print('exit', exc.code, file=sys.stderr)\n" % argv) + REPORT
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MXLAB_", "AWS_"))}
    env["MXLAB_HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "exit 1" in result.stderr and "127.0.0.1_1 failed" in result.stderr, result.stderr
    assert "report:" in result.stdout  # it went as far as report.html
    assert heavy_modules(result.stderr) == []


def test_importing_the_cli_leaves_each_commands_own_modules_to_it():
    """rich (the consoles, tables and progress), paramiko (the connections), the model catalogue and urllib
    (agent.zoo, agent.download: a file or http zoo only) are imported by the commands that use them, not by
    `import mxlab.cli`: `--help` and a usage error pay for none of them."""
    own = ("rich", "paramiko", "mxlab.catalogue", "agent.zoo", "urllib.request", "http.client", "boto3")
    code = ("import json, sys\nimport mxlab.cli\nprint(json.dumps(sorted(m for m in %r if m in sys.modules)))\n"
            "import agent.zoo\nprint(json.dumps(sorted(m for m in ('urllib.request', 'http.client') "
            "if m in sys.modules)))" % (own,))
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    after_cli, after_zoo = (json.loads(line) for line in result.stdout.splitlines())
    assert after_cli == [] and after_zoo == []
