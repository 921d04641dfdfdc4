"""How to run the pinned CDK CLI (`npx cdk` from the repo root), quietly and offline.

The one place for these flags: mxlab/offline/emulator.py uses it against the
emulator, mxlab's deploy step against real AWS. Stdlib only, so it imports
without aws-cdk-lib.

In a checkout the CLI is package.json's (node_modules, `npm ci`) and runs in the repo root
(cdk.json). A `pip install`ed mxlab has neither: the CLI is the user's (`cdk` on PATH, or
MXLAB_CDK_CLI), and it runs in a folder given this package's cdk.json (the checkout's, shipped as
package data) with the app at this package's app.sh.
"""
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
# package.json's pin (tests/test_cdk_cli.py keeps them one fact): what an installed mxlab asks for.
CLI_VERSION = "2.1148.1"
CLI_VARIABLE = "MXLAB_CDK_CLI"


def in_checkout():
    """True when cdk/ sits in a checkout (its cdk.json beside), False in a plain `pip install`."""
    return (REPO_ROOT / "cdk.json").is_file()


def app_dir(work=None):
    """The folder to run the CLI in: the checkout's root, else `work` (default: a new temporary folder)
    given the packaged cdk.json with the app at this package's app.sh (its interpreter: MXLAB_CDK_PYTHON)."""
    if in_checkout():
        return REPO_ROOT
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="mxlab-cdk-app-"))
    settings = json.loads((HERE / "cdk.json").read_text())
    settings["app"] = "sh %s" % shlex.quote(str(HERE / "app.sh"))
    work.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a CLI starting in `work` meanwhile reads the old file or the new, never half.
    fd, aside = tempfile.mkstemp(prefix=".cdk.json.", dir=str(work))
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(settings, indent=2) + "\n")
    os.replace(aside, str(work / "cdk.json"))
    return work

# No notices fetch, no telemetry, no version check (each is a network call),
# and no jsii Node end-of-life banner (it needs the major version, not "1").
QUIET_ENV = {
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "CDK_DISABLE_VERSION_CHECK": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    # The AWS SDK's "will require node >=22" notice is a Node process warning.
    "NODE_NO_WARNINGS": "1",
    "NO_UPDATE_NOTIFIER": "1",
    "npm_config_update_notifier": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
    "npm_config_offline": "true",
}
QUIET_FLAGS = ["--no-notices", "--no-version-reporting", "--ci"]

# jsii's package cache: where the app's Node runtime unpacks aws-cdk-lib (about 200 MB, 10-20 s) once, for
# every later synth. Its default root is under HOME, so a process given a HOME of its own (the offline lab's
# children, a test's) unpacks it afresh at each synth unless this names the user's.
PACKAGE_CACHE_VARIABLE = "JSII_RUNTIME_PACKAGE_CACHE_ROOT"


def cdk_executable():
    """`npx --no cdk`: the CLI pinned in package.json, as users run it; installed: the user's `cdk`.

    --no: never install on the fly (that would go to the registry); run it
    from the repo root (cwd=REPO_ROOT) so npx finds node_modules/.bin/cdk.
    """
    if not in_checkout():
        found = os.environ.get(CLI_VARIABLE) or shutil.which("cdk")
        if not found or not os.access(found, os.X_OK):
            raise FileNotFoundError(
                "the AWS CDK CLI (aws-cdk %s) was not found%s: this mxlab is installed without a checkout, so "
                "it runs the `cdk` on PATH (`npm install -g aws-cdk@%s`) or the one %s=/path/to/cdk names"
                % (CLI_VERSION, " at %s=%s" % (CLI_VARIABLE, found) if found else "", CLI_VERSION,
                   CLI_VARIABLE))
        return [found]
    local = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    if not local.exists():
        raise FileNotFoundError(
            "%s missing: run `npm ci` (or the set-up script) at the repo root" % local)
    return ["npx", "--no", "cdk"]


def quiet_env(base=None, extra=None):
    """Environment for the CLI: `base` (default os.environ) plus QUIET_ENV."""
    env = dict(os.environ if base is None else base)
    env.update(QUIET_ENV)
    # cdk/app.sh synthesizes with this interpreter (it has aws-cdk-lib beside cdk/), whatever its venv is called.
    env.setdefault("MXLAB_CDK_PYTHON", sys.executable)
    node_major = _node_major()
    if node_major:
        env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = node_major
    env.update(extra or {})
    return env


def package_cache_root(env=None):
    """jsii's package cache as `env` (default os.environ) finds it: PACKAGE_CACHE_VARIABLE, else jsii's
    default under its HOME."""
    env = os.environ if env is None else env
    if env.get(PACKAGE_CACHE_VARIABLE):
        return Path(env[PACKAGE_CACHE_VARIABLE])
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "com.amazonaws.jsii" / "package-cache"
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "AWS" / "jsii" / "package-cache"
    return home / ".cache" / "aws" / "jsii" / "package-cache"


def cdk_argv(command, context=None, outputs_file=None, stack=None, extra=()):
    """argv for `cdk <command>`: deploy/destroy never prompt; context as -c k=v."""
    argv = cdk_executable() + [command] + QUIET_FLAGS
    if command == "deploy":
        argv += ["--require-approval", "never", "--progress", "events"]
    if command == "destroy":
        argv += ["--force"]
    if outputs_file is not None:
        argv += ["--outputs-file", str(outputs_file)]
    for key, value in (context or {}).items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        argv += ["-c", "%s=%s" % (key, value)]
    if stack:
        argv.append(stack)
    return argv + list(extra)


def _node_major():
    node = shutil.which("node")
    if not node:
        return None
    # node's version is in its path only sometimes; ask it (local, no network).
    import subprocess
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.lstrip("v").split(".")[0] or None
