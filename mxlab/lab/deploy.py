"""`mxlab up` / `mxlab down`: the project's pinned CDK CLI (`npx cdk`, flags from cdk/cli.py)
with an outputs file that the other commands read; `up` runs mxlab/lab/preflight.py first."""
import datetime
import json
import logging
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from cdk import cli as cdk_cli  # stdlib only, as config is
from cdk import config as cdk_config
from cdk import outputs as stack_outputs
from mxlab.lab import statedir
from mxlab.errors import AwsAccessDenied, MxlabError, UsageError

log = logging.getLogger(__name__)

_CONTEXT_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_.:-]*)=(.*)$")


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
        return cdk_cli.cdk_argv(action, context=context,
                                   outputs_file=outputs_file, extra=extra)
    except FileNotFoundError as exc:
        raise MxlabError(str(exc))


def require_cdk_cli():
    """`up`/`down` run the CDK app through the CDK CLI: a checkout's pinned one (`npm ci`), or, installed
    without a checkout, the user's (`cdk` on PATH or MXLAB_CDK_CLI); the app itself is in the package."""
    try:
        cdk_cli.cdk_executable()
    except FileNotFoundError as exc:
        raise MxlabError(str(exc)) from None


def _run(argv, region, stack):
    cli = cdk_cli
    extra = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region} if region else {}
    # cdk/app.sh synthesizes with this very interpreter (the one with aws-cdk-lib beside mxlab), whatever
    # the venv is called.
    extra["MXLAB_CDK_PYTHON"] = sys.executable
    env = cli.quiet_env(extra=extra)
    # The lab's own working folder (~/.mxlab/<stack>/cdk-app) and cdk.out: the CLI locks cdk.out while it
    # synthesizes ("Another CLI ... is currently synthing"), and writes cdk.context.json (the AMI lookup) beside
    # cdk.json, so two organisers' `up`/`down` of two labs from one machine share neither. In a checkout the CLI
    # runs in the repo root (cdk.json there), so --output moves cdk.out out of it.
    work = statedir.stack_dir(stack) / "cdk-app"
    argv = list(argv) + ["--output", str(work / "cdk.out")]
    log.info("$ %s", " ".join(argv))
    try:
        # Both streams pass through, read on the way (the CLI prints resource events on stdout
        # in --ci mode, errors on stderr): a deploy or destroy that CloudFormation failed for an
        # IAM permission says which (AwsAccessDenied), not just "exit 1".
        proc = subprocess.Popen(argv, cwd=str(cli.app_dir(work)), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                bufsize=1)
    except FileNotFoundError:
        raise MxlabError("npx not found: install Node.js (>=18) and run ./scripts/setup")
    refused = []

    def relay(stream, to):
        for line in stream:
            to.write(line)
            to.flush()
            action = AwsAccessDenied.action_in(line)
            if action and not refused:
                refused.append(action)
    with proc:
        errors = threading.Thread(target=relay, args=(proc.stderr, sys.stderr), daemon=True)
        errors.start()
        relay(proc.stdout, sys.stdout)
        errors.join()
    if proc.returncode != 0 and refused:
        raise AwsAccessDenied(refused[0], "cdk %s" % _action_of(argv))
    return proc.returncode


def _action_of(argv):
    return next((a for a in argv if a in ("deploy", "destroy", "synth", "diff")), "")


def _deployed_outputs(stack):
    """The deployed lab's merged outputs (the outputs file here, else DescribeStacks), or None."""
    import botocore.exceptions

    from mxlab.lab import targets
    try:
        outputs = targets.read_outputs(stack)
    except UsageError:
        return None  # never deployed (or not findable: the pre-flight says why)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return None
    if stack_outputs.ATTENDEES not in outputs:
        return None  # a first deploy that failed (ROLLBACK_COMPLETE, no outputs): no lab yet, cdk retries it
    return outputs


def up(stack, context=(), profile=None, region=None, skip_preflight=False, say=None, force=False):
    """Deploy the lab; `say(line)` hears the pre-flight and the deadline. Returns the outputs file.

    A deployed lab keeps every key left out of `context` as it was deployed (context.json);
    a change that destroys or replaces hosts needs `force` (mxlab/lab/redeploy.py).
    """
    from mxlab.lab import redeploy, targets
    say = say or log.info
    require_cdk_cli()
    given = parse_context(list(context), stack)
    # A deployed lab stays where it is: another region is refused, naming both.
    targets.use_lab_region(stack, given.get("region"), profile, named="-c region=%s")
    region = targets.use_lab_region(stack, region, profile)
    outputs = statedir.outputs_file(stack)
    deployed = _deployed_outputs(stack)
    saved = statedir.read_context(stack)
    if deployed is not None:
        _refuse_fewer_stacks(stack, deployed, given.get("attendees", saved.get("attendees")))
    chosen = redeploy.plan(cdk_config, stack, saved, given, deployed, force=force)
    for line in chosen.notes:
        say(line)
    wanted = chosen.context
    if not skip_preflight:
        wanted.update(_preflight(stack, wanted, say))
    statedir.stack_dir(stack)
    rc = _run(command("deploy", stack, [], outputs, profile, wanted), region, stack)
    if rc != 0:
        raise MxlabError("cdk deploy %s failed (exit %d)" % (stack, rc))
    # The next `up` starts from it, and `down` synthesizes the same app (e.g. its shards).
    statedir.write_context(stack, wanted)
    deployed_to = wanted.get("region") or region or _session_region()
    if deployed_to:
        statedir.write_region(stack, deployed_to)
    try:
        say(describe_deadline(_merged_outputs(outputs)))
    except (OSError, ValueError):
        pass  # no outputs file: cdk said why
    return outputs


def _session_region():
    from mxlab.lab import aws
    try:
        return aws.session().region_name
    except UsageError:
        return None  # no region here at all: cdk deployed with its own settings


def _refuse_fewer_stacks(stack, deployed, attendees):
    """A shard stack left out of the new app would still import the first stack's exports, and
    CloudFormation refuses that update halfway: say so up front (even with --force)."""
    if not str(attendees or "").isdigit():
        return  # the default (1) or a bad value: synth names it
    from mxlab.lab import targets
    stacks = targets.lab_stacks(stack, deployed)
    needed = max(1, -(-int(attendees) // cdk_config.ATTENDEES_PER_STACK))
    if needed < len(stacks):
        raise UsageError("lab %s is deployed as %d stacks (%s); %s attendees need %d: "
                         "run `mxlab down` first to shrink it"
                         % (stack, len(stacks), ", ".join(stacks), attendees, needed))


def extend(stack, hours, profile=None, region=None, skip_preflight=False, say=None, now=None):
    """Push the lab's deadline `hours` later (from now if it has passed); nothing else changes."""
    from mxlab.lab import targets
    now = now or datetime.datetime.now(datetime.timezone.utc)
    outputs = _deployed_outputs(stack)
    if outputs is None:
        raise UsageError("no lab %s deployed from here: `mxlab up` first" % stack)
    value = outputs.get(stack_outputs.DEADLINE)
    if not value:
        raise UsageError("lab %s has no deadline (lifetime_hours=0): nothing to extend; "
                         "`mxlab up -c lifetime_hours=N` sets one" % stack)
    targets.attendee_count(outputs, stack)  # a lab, not some other stack
    current = datetime.datetime.strptime(value.split()[0], "%Y-%m-%dT%H:%M:%SZ")
    moment = max(current, now.replace(tzinfo=None, microsecond=0)) + datetime.timedelta(hours=hours)
    return up(stack, ["deadline=%s" % moment.strftime("%Y-%m-%dT%H:%M:%S")], profile, region,
              skip_preflight=skip_preflight, say=say)


def _preflight(stack, wanted, say):
    """Check quotas and AZ offerings (mxlab/lab/preflight.py); return context to add."""
    from mxlab.lab import aws, preflight
    config = cdk_config
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
    value = (outputs or {}).get(stack_outputs.DEADLINE)
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
    return ("lab deadline: the instances %s at %s (%s UTC), %s; `mxlab extend --hours N` or "
            "`mxlab up` moves it (-c lifetime_hours=N, 0: no deadline)"
            % (verb, local.strftime("%Y-%m-%d %H:%M %Z"), utc.strftime("%Y-%m-%d %H:%M"), when))


def down(stack, context=(), profile=None, region=None):
    require_cdk_cli()
    from mxlab.lab import targets
    region = targets.use_lab_region(stack, region, profile)
    saved = statedir.read_context(stack)
    # Destroy synthesizes the app only to name the lab's stacks: what decides them
    # is all it takes from the saved context (an old value that synth now refuses,
    # e.g. an IPv6 ssh_cidr, must not keep a lab from going away).
    saved = {k: v for k, v in saved.items() if k in DESTROY_KEYS}
    if "attendees" not in saved and "attendees" not in parse_context(list(context), stack):
        # Deployed from elsewhere: the app must synthesize every shard stack to destroy
        # them all (the first one cannot go while shards import its exports).
        try:
            saved["attendees"] = targets.attendee_count(targets.read_outputs(stack), stack)
        except UsageError:
            pass  # no outputs known here: the default (one stack) is all cdk can name
    saved["ssh_cidr"] = DESTROY_SSH_CIDR  # a -c ssh_cidr=... given here still wins
    rc = _run(command("destroy", stack, list(context), None, profile, saved), region, stack)
    if rc != 0:
        raise MxlabError("cdk destroy %s failed (exit %d); local keys kept in %s"
                         % (stack, rc, statedir.home() / stack))
    # The keys, pinned host keys and outputs belong to instances that no longer exist.
    local = statedir.home() / stack
    if local.exists():
        shutil.rmtree(local)
    return local
