"""The lab's context values (`-c key=value`), validated at synth time.

Defaults live in cdk.json (one place); they are read from there too when the
stack is built in-process (tests), so both paths see the same defaults.
A bad value raises ConfigError naming the key and what is allowed.
"""
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"

# Ubuntu 22.04 base DLAMI with the NVIDIA driver: AWS keeps this public parameter
# pointing at the newest build in every commercial region, it boots on CPU and GPU
# types alike (m5.2xlarge and GPU families), and its login user is "ubuntu".
DEFAULT_AMI_SSM_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/"
    "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
)

# Previous-generation families: still launchable in some accounts, but retired
# from current DLAMIs (e.g. p2's K80 GPUs have no driver in them any more).
LEGACY_FAMILIES = frozenset(
    "t1 m1 m2 m3 c1 c3 cc1 cc2 cg1 cr1 g2 hi1 hs1 i2 r3 p2".split()
)

# One stack, deployed without bootstrap, must fit CloudFormation's inline
# template limit (51,200 bytes, ~2.2 kB an attendee here) and its 200 outputs
# (7 an attendee): 20 attendees is the most one stack holds with room to spare.
# A bigger lab is split into shard stacks of ATTENDEES_PER_STACK (see
# lab_stack.py): <stack_name> (network + attendees 1-20), <stack_name>-2 (21-40)...
ATTENDEES_PER_STACK = 20
MAX_ATTENDEES = 100

KEYS = (
    "ssh_cidr", "allow_world_ssh", "instance_type", "attendees", "ami_id",
    "ami_ssm_parameter", "ami_name", "volume_gb", "auto_stop_minutes",
    "stack_name", "region", "ssh_user", "root_device",
)
AMI_KEYS = ("ami_id", "ami_ssm_parameter", "ami_name")

_INSTANCE_TYPE = re.compile(
    r"^(?P<family>[a-z][a-z0-9]*)(-[a-z0-9]+)?\."
    r"(nano|micro|small|medium|large|\d*xlarge|metal(-\d+xl)?)$"
)
_AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
_SSM_NAME = re.compile(r"^/?[a-zA-Z0-9_.\-/]{1,2047}$")
# Capped at 32 (CloudFormation allows 128): the name recurs in every
# attendee's key name, tags and ssh command, against the template size limit.
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_DEVICE = re.compile(r"^/dev/(sd|xvd|nvme)[a-z0-9]{1,4}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class ConfigError(ValueError):
    """A context value that synth refuses; the message names the key."""


@dataclass(frozen=True)
class LabConfig:
    ssh_cidr: str
    allow_world_ssh: bool = False
    instance_type: str = "m5.2xlarge"
    attendees: int = 1
    ami_id: str = ""
    ami_ssm_parameter: str = ""
    ami_name: str = ""
    volume_gb: int = 75
    auto_stop_minutes: int = 120
    stack_name: str = "MxnetLab"
    region: str = ""
    ssh_user: str = "ubuntu"
    # The AMI's root device: /dev/sda1 on Ubuntu DLAMIs, /dev/xvda on Amazon
    # Linux. A wrong name adds a second volume instead of sizing the root one.
    root_device: str = "/dev/sda1"
    warnings: tuple = field(default=(), compare=False)

    @property
    def world_ssh(self):
        return ipaddress.ip_network(self.ssh_cidr).prefixlen == 0

    @property
    def ssh_cidr_is_ipv6(self):
        return ipaddress.ip_network(self.ssh_cidr).version == 6

    @property
    def shards(self):
        """[(stack name, [attendee numbers])]: the lab's stacks in deploy order.

        The first is named stack_name and holds the network; shard k (k >= 2)
        is "<stack_name>-k" with attendees 20(k-1)+1 .. 20k. Numbers are global.
        """
        out = []
        for first in range(1, self.attendees + 1, ATTENDEES_PER_STACK):
            last = min(first + ATTENDEES_PER_STACK - 1, self.attendees)
            k = len(out) + 1
            name = self.stack_name if k == 1 else "%s-%d" % (self.stack_name, k)
            out.append((name, list(range(first, last + 1))))
        return out

    @property
    def idle_periods(self):
        """5-minute CloudWatch periods of low CPU before the instance stops."""
        return math.ceil(self.auto_stop_minutes / 5)


def cdk_json_defaults(path=CDK_JSON):
    """Context defaults declared in cdk.json (only the lab's own keys)."""
    try:
        context = json.loads(Path(path).read_text())["context"]
    except (OSError, KeyError, ValueError):
        return {}
    return {k: v for k, v in context.items() if k in KEYS}


def from_context(get):
    """Build a LabConfig from `get(key) -> value or None` (node.try_get_context)."""
    defaults = cdk_json_defaults()
    raw = {}
    for key in KEYS:
        value = get(key)
        if value is None:
            value = defaults.get(key)
        if value is not None and not (isinstance(value, str) and value.strip() == ""):
            raw[key] = value.strip() if isinstance(value, str) else value
    return validate(raw)


def validate(raw):
    """Check every key; return LabConfig or raise ConfigError."""
    warnings = []
    cfg = {}

    if "ssh_cidr" not in raw:
        raise ConfigError(
            "ssh_cidr is required: the IPv4/IPv6 CIDR allowed to SSH in, "
            "e.g. -c ssh_cidr=203.0.113.7/32"
        )
    cfg["allow_world_ssh"] = _bool(raw, "allow_world_ssh", False)
    try:
        net = ipaddress.ip_network(str(raw["ssh_cidr"]), strict=True)
    except ValueError as exc:
        raise ConfigError(
            "ssh_cidr=%r is not a valid IPv4/IPv6 CIDR (%s); expected e.g. "
            "203.0.113.7/32 or 2001:db8::/64" % (raw["ssh_cidr"], exc)
        ) from None
    if net.prefixlen == 0 and not cfg["allow_world_ssh"]:
        raise ConfigError(
            "ssh_cidr=%s opens SSH to the whole internet; give your own address "
            "range, or add -c allow_world_ssh=true to accept that" % net
        )
    cfg["ssh_cidr"] = str(net)

    itype = str(raw.get("instance_type", "m5.2xlarge"))
    match = _INSTANCE_TYPE.match(itype)
    if not match:
        raise ConfigError(
            "instance_type=%r is not an EC2 instance type; expected "
            "<family>.<size>, e.g. m5.2xlarge or p2.xlarge" % itype
        )
    if match.group("family") in LEGACY_FAMILIES:
        warnings.append(
            "instance_type=%s is a retired/previous-generation family (%s): "
            "current Deep Learning AMIs may not support it and capacity is scarce; "
            "prefer m5.2xlarge (CPU) or g4dn/g5 (GPU)" % (itype, match.group("family"))
        )
    cfg["instance_type"] = itype

    # More than ATTENDEES_PER_STACK: several stacks, deployed together (--all).
    cfg["attendees"] = _int(raw, "attendees", 1, 1, MAX_ATTENDEES)

    chosen = [k for k in AMI_KEYS if k in raw]
    if len(chosen) > 1:
        raise ConfigError(
            "AMI: give exactly one of ami_id, ami_ssm_parameter, ami_name "
            "(got %s)" % ", ".join(chosen)
        )
    if "ami_id" in raw:
        if not _AMI_ID.match(str(raw["ami_id"])):
            raise ConfigError(
                "ami_id=%r is not an AMI id; expected ami- followed by 8 or 17 "
                "hex digits" % raw["ami_id"]
            )
        cfg["ami_id"] = str(raw["ami_id"])
    elif "ami_name" in raw:
        cfg["ami_name"] = str(raw["ami_name"])
    else:
        param = str(raw.get("ami_ssm_parameter", DEFAULT_AMI_SSM_PARAMETER))
        if not _SSM_NAME.match(param) or "//" in param:
            raise ConfigError(
                "ami_ssm_parameter=%r is not an SSM parameter name; expected "
                "a path like %s" % (param, DEFAULT_AMI_SSM_PARAMETER)
            )
        cfg["ami_ssm_parameter"] = param

    cfg["volume_gb"] = _int(raw, "volume_gb", 75, 8, 16384)
    minutes = _int(raw, "auto_stop_minutes", 120, 0, 1440)
    if minutes and minutes % 5:
        raise ConfigError(
            "auto_stop_minutes=%d must be a multiple of 5 (EC2 basic monitoring "
            "reports CPU every 5 minutes), or 0 to disable" % minutes
        )
    cfg["auto_stop_minutes"] = minutes

    cfg["stack_name"] = _matching(
        raw, "stack_name", "MxnetLab", _STACK_NAME,
        "is not a CloudFormation stack name; expected a letter then letters, digits "
        "or hyphens, at most 32 characters")
    region = str(raw.get("region", ""))
    cfg["region"] = region and _matching(
        raw, "region", "", _REGION, "is not an AWS region; expected e.g. us-east-1 or eu-west-2")
    cfg["ssh_user"] = _matching(
        raw, "ssh_user", "ubuntu", _USER,
        "is not a Linux login name; expected e.g. ubuntu or ec2-user")
    cfg["root_device"] = _matching(
        raw, "root_device", "/dev/sda1", _DEVICE,
        "is not a block device name; expected /dev/sda1 (Ubuntu AMIs) or /dev/xvda (Amazon Linux)")

    return LabConfig(warnings=tuple(warnings), **cfg)


def _matching(raw, key, default, pattern, problem):
    """The string value of `key`, refused with `key=value <problem>` unless it matches."""
    value = str(raw.get(key, default))
    if not pattern.match(value):
        raise ConfigError("%s=%r %s" % (key, value, problem))
    return value


def _bool(raw, key, default):
    value = raw.get(key, default)
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError("%s=%r must be true or false" % (key, value))


def _int(raw, key, default, low, high):
    value = raw.get(key, default)
    try:
        number = int(str(value), 10)
    except ValueError:
        raise ConfigError(
            "%s=%r must be a whole number from %d to %d" % (key, value, low, high)
        ) from None
    if not low <= number <= high:
        raise ConfigError(
            "%s=%d is out of range; allowed %d to %d" % (key, number, low, high)
        )
    return number
