"""How to run the pinned CDK CLI (`npx cdk` from the repo root), quietly and offline.

The one place for these flags: mxlab/offline/emulator.py uses it against the
emulator, mxlab's deploy step against real AWS. Stdlib only, so it imports
without aws-cdk-lib.
"""
import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

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


def cdk_executable():
    """`npx --no cdk`: the CLI pinned in package.json, as users run it.

    --no: never install on the fly (that would go to the registry); run it
    from the repo root (cwd=REPO_ROOT) so npx finds node_modules/.bin/cdk.
    """
    local = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    if not local.exists():
        raise FileNotFoundError(
            "%s missing: run `npm ci` (or the set-up script) at the repo root" % local)
    return ["npx", "--no", "cdk"]


def quiet_env(base=None, extra=None):
    """Environment for the CLI: `base` (default os.environ) plus QUIET_ENV."""
    env = dict(os.environ if base is None else base)
    env.update(QUIET_ENV)
    node_major = _node_major()
    if node_major:
        env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = node_major
    env.update(extra or {})
    return env


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
