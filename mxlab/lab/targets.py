"""What to connect to: lab instances from the stack's outputs, or one direct SSH host."""
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from cdk.config import DEFAULT_STACK_NAME as DEFAULT_STACK  # noqa: F401 (mxlab's name for it: the lab's stack when none is given; stdlib only)
from cdk import outputs as stack_outputs  # stdlib only: the output keys lab_stack.py writes
from mxlab.lab import statedir
from mxlab.errors import UsageError

log = logging.getLogger(__name__)


@dataclass
class Target:
    """One host to run on. `pin_from_console` marks a lab instance whose host keys come from EC2."""

    label: str
    host: str
    port: int
    user: str
    identity: Optional[Path]
    known_hosts: Path
    pin_from_console: bool = False
    instance_id: Optional[str] = None
    attendee: Optional[int] = None
    key_parameter: Optional[str] = None
    state: Optional[str] = None

    @property
    def address(self):
        if not self.host:
            return "-"  # a stopped instance has no public address
        return self.host if self.port == 22 else "%s:%d" % (self.host, self.port)


# ---- direct host -----------------------------------------------------------------------

_HOST_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9][A-Za-z0-9.\-]*))(?::(?P<port>\d+))?$")


def parse_host(spec):
    """'H', 'H:PORT' or '[v6]:PORT' → (host, port); UsageError otherwise."""
    m = _HOST_RE.match(spec or "")
    if not m:
        raise UsageError("--host %r: expected HOST or HOST:PORT (IPv6 as [ADDR]:PORT)" % spec)
    port = int(m.group("port") or 22)
    if not 0 < port < 65536:
        raise UsageError("--host %r: port %d is not in 1..65535" % (spec, port))
    return m.group("v6") or m.group("name"), port


def direct_target(spec, user, identity, known_hosts=None):
    host, port = parse_host(spec)
    if not user:
        raise UsageError("--user: required with --host (the login user on %s)" % spec)
    if not identity:
        raise UsageError("--identity: required with --host (a private key file)")
    identity = Path(identity).expanduser()
    if not identity.is_file() or not os.access(identity, os.R_OK):
        raise UsageError("--identity %s: expected a readable private key file" % identity)
    kh = Path(known_hosts).expanduser() if known_hosts else Path.home() / ".ssh" / "known_hosts"
    if known_hosts and not kh.is_file():
        raise UsageError("--known-hosts %s: no such file (expected an OpenSSH known_hosts file)" % kh)
    label = host if port == 22 else "%s_%d" % (host, port)
    return Target(label=label, host=host, port=port, user=user, identity=identity, known_hosts=kh)


# ---- the lab stack -----------------------------------------------------------------------

def lab_stacks(stack, outputs):
    """The lab's stack names, first one first: past 20 attendees the CDK app splits a lab
    into shard stacks `<stack>-2`, `<stack>-3`... and lists them all in `LabStacks`."""
    names = [n.strip() for n in outputs.get(stack_outputs.STACKS, "").split(",") if n.strip()]
    return names or [stack]


def use_lab_region(stack, region_flag=None, profile=None, named="--region %s"):
    """Point mxlab's AWS calls at the region the lab was deployed to (recorded by `mxlab up`), so
    that a `-c region=...` lab is found there whatever region the session has. Returns the region
    to use (None: the session's); a --region that names another one is refused."""
    from mxlab.lab import aws
    region = statedir.read_region(stack)
    if not region:
        return region_flag
    if region_flag and region_flag != region:
        raise UsageError("%s: lab %s is deployed in %s (%s): leave it out, or `mxlab down` and "
                         "deploy it again to move it" % (named % region_flag, stack, region,
                                                         statedir.region_file(stack)))
    aws.configure(profile, region)
    return region


def read_outputs(stack, outputs_file=None):
    """The lab's outputs as one dict (every shard stack's merged): from the outputs file
    (`mxlab up` writes it) or DescribeStacks."""
    path = Path(outputs_file) if outputs_file else statedir.outputs_file(stack)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise UsageError("outputs file %s: not JSON (%s)" % (path, exc))
        if stack not in data:
            raise UsageError("outputs file %s: no stack %r in it (stacks: %s)"
                             % (path, stack, ", ".join(sorted(data)) or "none"))
        missing = [name for name in lab_stacks(stack, data[stack]) if name not in data]
        if missing:
            raise UsageError("outputs file %s: the lab's stacks %s are not in it (deploy with `mxlab up`)"
                             % (path, ", ".join(missing)))
        return _merged(data[name] for name in lab_stacks(stack, data[stack]))
    if outputs_file:
        raise UsageError("--outputs %s: no such file" % path)
    first = describe_stack(stack)
    rest = [describe_stack(name) for name in lab_stacks(stack, first) if name != stack]
    return _merged([first] + rest)


def _merged(stack_outputs):
    merged = {}
    for outputs in stack_outputs:
        merged.update(outputs)
    return merged


def describe_stack(stack):
    import botocore.exceptions

    from mxlab.lab import aws

    cfn = aws.client("cloudformation")
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except botocore.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            raise UsageError("no stack %r: deploy it with `mxlab up` (or pass --stack / --host)" % stack)
        raise
    except botocore.exceptions.NoCredentialsError:
        raise UsageError("no stack %r known locally and no AWS credentials to look it up "
                         "(use --profile/--region, `mxlab up`, or --host)" % stack)
    if not stacks:
        raise UsageError("no stack %r: deploy it with `mxlab up`" % stack)
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def attendee_count(outputs, stack):
    try:
        return int(outputs[stack_outputs.ATTENDEES])
    except (KeyError, ValueError):
        nums = stack_outputs.attendee_numbers(outputs)
        if not nums:
            raise UsageError("stack %r has no attendee outputs (LabAttendees / Attendee<N>InstanceId)" % stack)
        return max(nums)


def lab_targets(stack, outputs, attendees=None, ssh_port=None):
    """Targets for `attendees` (list of numbers; None = all)."""
    count = attendee_count(outputs, stack)
    wanted = list(range(1, count + 1)) if attendees is None else attendees
    user = outputs.get(stack_outputs.SSH_USER, "ubuntu")
    port = int(ssh_port or os.environ.get("MXLAB_SSH_PORT") or 22)
    sdir = statedir.stack_dir(stack)
    targets = []
    for n in wanted:
        if not 1 <= n <= count:
            raise UsageError("--attendee %d: the stack %r has attendees 1..%d" % (n, stack, count))
        def key(what, n=n):
            return stack_outputs.attendee(n, what)
        host = outputs.get(key(stack_outputs.PUBLIC_IP)) or outputs.get(key(stack_outputs.PUBLIC_DNS))
        if not host:
            raise UsageError("stack %r: no %s output (is the instance up?)" % (stack, key(stack_outputs.PUBLIC_IP)))
        targets.append(Target(
            label="attendee-%d" % n, host=host, port=port, user=user,
            identity=sdir / ("attendee-%d.pem" % n), known_hosts=sdir / "known_hosts",
            pin_from_console=True, instance_id=outputs.get(key(stack_outputs.INSTANCE_ID)), attendee=n,
            key_parameter=outputs.get(key(stack_outputs.PRIVATE_KEY_PARAMETER))
            or ("/ec2/keypair/%s" % outputs[key(stack_outputs.KEY_PAIR_ID)]
                if outputs.get(key(stack_outputs.KEY_PAIR_ID)) else None),
        ))
    return targets
