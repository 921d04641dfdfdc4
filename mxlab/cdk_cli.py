"""`mxlab up` / `mxlab down`: the project's pinned CDK CLI (`npx cdk`, flags from cdk/cli.py)
with an outputs file that the other commands read."""
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mxlab import statedir
from mxlab.errors import MxlabError, UsageError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
_CONTEXT_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_.:-]*)=(.*)$")


def _cdk_config():
    _cdk_cli()  # puts the repo root on sys.path
    from cdk import config
    return config


def _cdk_cli():
    # cdk/ is the CDK app beside mxlab/, not an installed package.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from cdk import cli
    return cli


def parse_context(items, stack):
    context = {}
    for item in items:
        m = _CONTEXT_RE.match(item)
        if not m:
            raise UsageError("-c %r: expected key=value (e.g. -c ssh_cidr=203.0.113.7/32)" % item)
        context[m.group(1)] = m.group(2)
    context.setdefault("stack_name", stack)
    return context


def command(action, stack, context_items, outputs_file=None, profile=None, saved=None):
    # The app synthesizes exactly one lab (its stack_name from the context): past 20
    # attendees that is `<stack>` plus shard stacks `<stack>-2`..., so act on --all.
    extra = ["--all"] + (["--profile", profile] if profile else [])
    context = dict(saved or {})
    context.update(parse_context(context_items, stack))
    try:
        return _cdk_cli().cdk_argv(action, context=context,
                                   outputs_file=outputs_file, extra=extra)
    except FileNotFoundError as exc:
        raise MxlabError(str(exc))


def _run(argv, region):
    cli = _cdk_cli()
    env = cli.quiet_env(extra={"AWS_REGION": region, "AWS_DEFAULT_REGION": region} if region else None)
    log.info("$ %s", " ".join(argv))
    try:
        return subprocess.call(argv, cwd=str(REPO_ROOT), env=env)
    except FileNotFoundError:
        raise MxlabError("npx not found: install Node.js (>=18) and run ./scripts/setup")


def _deployed_stacks(outputs_file, stack):
    """The lab's stack names as last deployed from here (outputs file), or None."""
    try:
        first = json.loads(Path(outputs_file).read_text())[stack]
    except (OSError, ValueError, KeyError):
        return None
    return [n for n in first.get("LabStacks", stack).split(",") if n]


def up(stack, context=(), profile=None, region=None):
    outputs = statedir.outputs_file(stack)
    deployed = _deployed_stacks(outputs, stack)
    wanted = parse_context(list(context), stack)
    if deployed and "attendees" in wanted and wanted["attendees"].isdigit():
        # A shard stack left out of the new app would still import the first stack's
        # exports, and CloudFormation refuses that update halfway: say so up front.
        per_stack = _cdk_config().ATTENDEES_PER_STACK
        needed = max(1, -(-int(wanted["attendees"]) // per_stack))
        if needed < len(deployed):
            raise UsageError("lab %s is deployed as %d stacks (%s); %s attendees need %d: "
                             "run `mxlab down` first to shrink it"
                             % (stack, len(deployed), ", ".join(deployed), wanted["attendees"], needed))
    sdir = statedir.stack_dir(stack)
    rc = _run(command("deploy", stack, list(context), outputs, profile), region)
    if rc != 0:
        raise MxlabError("cdk deploy %s failed (exit %d)" % (stack, rc))
    # `down` synthesizes the same app: it needs the same context (e.g. ssh_cidr).
    (sdir / "context.json").write_text(json.dumps(parse_context(list(context), stack), indent=2) + "\n")
    return outputs


def down(stack, context=(), profile=None, region=None):
    saved_file = statedir.home() / stack / "context.json"
    saved = json.loads(saved_file.read_text()) if saved_file.is_file() else {}
    if "attendees" not in saved and "attendees" not in parse_context(list(context), stack):
        # Deployed from elsewhere: the app must synthesize every shard stack to destroy
        # them all (the first one cannot go while shards import its exports).
        from mxlab import targets
        try:
            saved["attendees"] = targets.attendee_count(targets.read_outputs(stack), stack)
        except UsageError:
            pass  # no outputs known here: the default (one stack) is all cdk can name
    rc = _run(command("destroy", stack, list(context), None, profile, saved), region)
    if rc != 0:
        raise MxlabError("cdk destroy %s failed (exit %d); local keys kept in %s"
                         % (stack, rc, statedir.home() / stack))
    # The keys, pinned host keys and outputs belong to instances that no longer exist.
    local = statedir.home() / stack
    if local.exists():
        shutil.rmtree(local)
    return local
