"""`mxlab up` / `mxlab down`: the project's pinned CDK CLI (`npx cdk`, flags from cdk/cli.py)
with an outputs file that the other commands read; `up` runs mxlab/preflight.py first."""
import datetime
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
    # cdk/ is the CDK app beside mxlab/, not an installed package; config.py is stdlib only.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from cdk import config
    return config


def _cdk_cli():
    _cdk_config()  # puts the repo root on sys.path
    from cdk import cli
    return cli


# The lab's stack name when none is given: spelled once, in cdk/config.py.
DEFAULT_STACK = _cdk_config().DEFAULT_STACK_NAME
# `down` synthesizes the app, which needs an ssh_cidr, though destroy never reads it:
# from a machine without the saved context, a documentation address (TEST-NET-1).
DESTROY_SSH_CIDR = "192.0.2.1/32"
DESTROY_KEYS = ("stack_name", "attendees", "region", "cfn_role_arn")
# -c cfn_role_arn=...: CloudFormation acts as this service role (`cdk deploy/destroy --role-arn`), not
# with the organiser's own permissions (README: Permissions; `mxlab policy --cfn-role`).
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


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
    role = context.get("cfn_role_arn")
    if role:
        if not _ROLE_ARN_RE.match(role):
            raise UsageError("-c cfn_role_arn=%r: expected an IAM role ARN, e.g. "
                             "arn:aws:iam::123456789012:role/mxlab-cloudformation" % role)
        extra += ["--role-arn", role]
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


def up(stack, context=(), profile=None, region=None, skip_preflight=False, say=None):
    """Deploy the lab; `say(line)` hears the pre-flight and the deadline. Returns the outputs file."""
    say = say or log.info
    context = list(context)
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
    if not skip_preflight:
        context += ["%s=%s" % item for item in _preflight(stack, wanted, say).items()]
    sdir = statedir.stack_dir(stack)
    rc = _run(command("deploy", stack, context, outputs, profile), region)
    if rc != 0:
        raise MxlabError("cdk deploy %s failed (exit %d)" % (stack, rc))
    # `down` synthesizes the same app: it needs the same context (e.g. ssh_cidr).
    (sdir / "context.json").write_text(json.dumps(parse_context(context, stack), indent=2) + "\n")
    try:
        say(describe_deadline(_merged_outputs(outputs)))
    except (OSError, ValueError):
        pass  # no outputs file: cdk said why
    return outputs


def _preflight(stack, wanted, say):
    """Check quotas and AZ offerings (mxlab/preflight.py); return context to add."""
    from mxlab import aws, preflight
    config = _cdk_config()
    try:
        lab = config.from_context(wanted.get)
    except config.ConfigError as exc:
        raise UsageError("invalid context: %s" % exc) from None
    import botocore.exceptions
    try:
        result = preflight.check(aws.session(), lab, stack)
    except botocore.exceptions.NoCredentialsError:
        raise UsageError("pre-flight: no AWS credentials found: `aws configure`, AWS_PROFILE or "
                         "--profile (cdk deploy needs them too)") from None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise MxlabError("pre-flight could not check the account (%s): fix that, or deploy "
                         "unchecked with `mxlab up --skip-preflight`" % exc) from None
    for line in result.lines:
        say(line)
    return result.context


def _merged_outputs(outputs_file):
    merged = {}
    for outputs in json.loads(Path(outputs_file).read_text()).values():
        merged.update(outputs)
    return merged


def describe_deadline(outputs, now=None):
    """One line on the lab's deadline (the LabDeadline output), in local time and UTC."""
    value = (outputs or {}).get("LabDeadline")
    if not value:
        return ("lab deadline: none (lifetime_hours=0, or deployed before deadlines): "
                "the instances run until `mxlab down`")
    stamp, _, action = value.partition(" ")
    utc = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    local = utc.astimezone()
    left = utc - (now or datetime.datetime.now(datetime.timezone.utc))
    minutes = int(abs(left.total_seconds()) // 60)
    span = "%d h %02d min" % divmod(minutes, 60)
    when = ("in %s" % span) if left.total_seconds() >= 0 else ("%s ago" % span)
    verb = {"stop": "stop", "terminate": "are terminated"}.get(action, action or "stop")
    return ("lab deadline: the instances %s at %s (%s UTC), %s; `mxlab up` moves it "
            "(-c lifetime_hours=N, 0: no deadline)"
            % (verb, local.strftime("%Y-%m-%d %H:%M %Z"), utc.strftime("%Y-%m-%d %H:%M"), when))


def down(stack, context=(), profile=None, region=None):
    saved_file = statedir.home() / stack / "context.json"
    saved = json.loads(saved_file.read_text()) if saved_file.is_file() else {}
    # Destroy synthesizes the app only to name the lab's stacks: what decides them
    # is all it takes from the saved context (an old value that synth now refuses,
    # e.g. an IPv6 ssh_cidr, must not keep a lab from going away).
    saved = {k: v for k, v in saved.items() if k in DESTROY_KEYS}
    if "attendees" not in saved and "attendees" not in parse_context(list(context), stack):
        # Deployed from elsewhere: the app must synthesize every shard stack to destroy
        # them all (the first one cannot go while shards import its exports).
        from mxlab import targets
        try:
            saved["attendees"] = targets.attendee_count(targets.read_outputs(stack), stack)
        except UsageError:
            pass  # no outputs known here: the default (one stack) is all cdk can name
    saved["ssh_cidr"] = DESTROY_SSH_CIDR  # a -c ssh_cidr=... given here still wins
    rc = _run(command("destroy", stack, list(context), None, profile, saved), region)
    if rc != 0:
        raise MxlabError("cdk destroy %s failed (exit %d); local keys kept in %s"
                         % (stack, rc, statedir.home() / stack))
    # The keys, pinned host keys and outputs belong to instances that no longer exist.
    local = statedir.home() / stack
    if local.exists():
        shutil.rmtree(local)
    return local
