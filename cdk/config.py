"""The lab's context values (`-c key=value`), validated at synth time.

Each default is defined once, on LabConfig below (cdk.json holds none of the
lab's keys), so `npx cdk`, in-process builds (tests) and mxlab see the same.
A bad value raises ConfigError naming the key and what is allowed.
Stdlib only: mxlab imports it without aws-cdk-lib.
"""
import datetime
import ipaddress
import math
import re
from dataclasses import dataclass, field, fields

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

# GPU families older than Turing: the default DLAMI ("OSS Nvidia driver") loads
# NVIDIA's open kernel modules, which drive Turing and newer GPUs only, so these
# boot with no usable GPU. family -> (GPU, the current equivalent by size).
PRE_TURING_GPU = {
    "cg1": ("Fermi M2050", {}),
    "g2": ("Kepler K520", {"2xlarge": "g4dn.xlarge", "8xlarge": "g4dn.12xlarge"}),
    "g3s": ("Maxwell M60", {"xlarge": "g4dn.xlarge"}),
    "g3": ("Maxwell M60", {"4xlarge": "g4dn.4xlarge", "8xlarge": "g4dn.12xlarge",
                           "16xlarge": "g4dn.metal"}),
    "p2": ("Kepler K80", {"xlarge": "g4dn.xlarge", "8xlarge": "g4dn.12xlarge",
                          "16xlarge": "g4dn.metal"}),
    "p3": ("Volta V100", {"2xlarge": "g5.2xlarge", "8xlarge": "g5.12xlarge",
                          "16xlarge": "p4d.24xlarge"}),
    "p3dn": ("Volta V100", {"24xlarge": "p4d.24xlarge"}),
}

# One stack, deployed without bootstrap, must fit CloudFormation's inline
# template limit (51,200 bytes, ~2.2 kB an attendee here) and its 200 outputs
# (7 an attendee): 20 attendees is the most one stack holds with room to spare.
# A bigger lab is split into shard stacks of ATTENDEES_PER_STACK (see
# lab_stack.py): <stack_name> (network + attendees 1-20), <stack_name>-2 (21-40)...
ATTENDEES_PER_STACK = 20
MAX_ATTENDEES = 100
# Security groups hold 60 inbound rules by default; the room's network, the organiser's own address
# and a few spares fit well within that and within the template size.
MAX_SSH_CIDRS = 10
DEFAULT_STACK_NAME = "MxnetLab"  # the one spelling; mxlab imports it from here

KEYS = (
    "ssh_cidr", "allow_world_ssh", "instance_type", "attendees", "ami_id",
    "ami_ssm_parameter", "ami_name", "volume_gb", "auto_stop_minutes",
    "stack_name", "region", "ssh_user", "root_device", "availability_zone",
    "lifetime_hours", "expiry_action", "deadline",
)
EXPIRY_ACTIONS = ("stop", "terminate")
MAX_LIFETIME_HOURS = 720  # 30 days: a workshop, not a server
AMI_KEYS = ("ami_id", "ami_ssm_parameter", "ami_name")

_INSTANCE_TYPE = re.compile(
    r"^(?P<family>[a-z][a-z0-9]*)(-[a-z0-9]+)?\."
    r"(nano|micro|small|medium|large|\d*xlarge|metal(-\d+xl)?)$"
)
_AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
# AWS allows 2,047 characters; capped (the public DLAMI parameters are ~90): the name is written
# into the size-limited first stack.
_SSM_NAME = re.compile(r"^/?[a-zA-Z0-9_.\-/]{1,511}$")
# The longest EC2 type today has 20 characters (u7inh-32tb.480xlarge); each instance's launch
# data carries it, against the template size limit.
MAX_INSTANCE_TYPE_LENGTH = 32
# Capped at 32 (CloudFormation allows 128): the name recurs in every
# attendee's key name and ssh command, against the template size limit.
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_DEVICE = re.compile(r"^/dev/(sd|xvd|nvme)[a-z0-9]{1,4}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# us-east-1a, us-gov-west-1b, and Local Zones such as us-west-2-lax-1a; at most
# 24 characters (the longest today are 21): a literal in the size-limited template
_AZ = re.compile(r"^(?=.{4,24}$)[a-z]{2}(-[a-z0-9]+)+[a-z]$")
_DEADLINE_FORMAT = "%Y-%m-%dT%H:%M:%S"  # EventBridge Scheduler's at(...) form, UTC
# An explicit deadline must be at least this far ahead of the synth: one in the
# past (or as good as) would stop the lab the moment the deploy is done.
DEADLINE_LEAD = datetime.timedelta(minutes=5)


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
    stack_name: str = DEFAULT_STACK_NAME
    region: str = ""
    ssh_user: str = "ubuntu"
    # The AMI's root device: /dev/sda1 on Ubuntu DLAMIs, /dev/xvda on Amazon
    # Linux. A wrong name adds a second volume instead of sizing the root one.
    root_device: str = "/dev/sda1"
    # "": the region's first AZ (Fn::GetAZs); mxlab up's pre-flight sets it when
    # that AZ does not offer instance_type. Fixed once the lab exists.
    availability_zone: str = ""
    # The lab stops (or terminates) its instances by itself lifetime_hours after
    # the last deploy (0: never); `deadline` (UTC, yyyy-mm-ddThh:mm:ss) sets the
    # moment instead. Resolved at synth into `deadline` below.
    lifetime_hours: float = 12
    expiry_action: str = "stop"
    deadline: str = ""
    warnings: tuple = field(default=(), compare=False)

    @property
    def ssh_cidrs(self):
        """ssh_cidr's networks: it holds one, or several separated by commas."""
        return tuple(self.ssh_cidr.split(","))

    @property
    def world_ssh(self):
        return any(ipaddress.ip_network(c).prefixlen == 0 for c in self.ssh_cidrs)

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


def default(key):
    """The one definition of a context key's default: LabConfig's field."""
    return {f.name: f.default for f in fields(LabConfig)}[key]


def from_context(get, now=None):
    """Build a LabConfig from `get(key) -> value or None` (node.try_get_context)."""
    raw = {}
    for key in KEYS:
        value = get(key)
        if value is not None and not (isinstance(value, str) and value.strip() == ""):
            raw[key] = value.strip() if isinstance(value, str) else value
    return validate(raw, now=now)


def validate(raw, now=None):
    """Check every key; return LabConfig or raise ConfigError.

    now: the UTC moment lifetime_hours counts from (default: this synth).
    """
    warnings = []
    cfg = {}

    if "ssh_cidr" not in raw:
        raise ConfigError(
            "ssh_cidr is required: the IPv4 CIDR allowed to SSH in, "
            "e.g. -c ssh_cidr=203.0.113.7/32"
        )
    cfg["allow_world_ssh"] = _bool(raw, "allow_world_ssh")
    cfg["ssh_cidr"] = ",".join(_ssh_cidrs(raw["ssh_cidr"], cfg["allow_world_ssh"]))
    cfg["instance_type"], match = _instance_type(raw, warnings)
    # More than ATTENDEES_PER_STACK: several stacks, deployed together (--all).
    cfg["attendees"] = _int(raw, "attendees", 1, MAX_ATTENDEES)
    cfg.update(_ami(raw))
    _check_gpu_generation(match, cfg.get("ami_ssm_parameter") == DEFAULT_AMI_SSM_PARAMETER,
                          warnings)
    cfg["volume_gb"] = _int(raw, "volume_gb", 8, 16384)
    cfg["auto_stop_minutes"] = _auto_stop_minutes(raw)
    cfg.update(_names(raw))
    cfg.update(_deadline(raw, now))

    return LabConfig(warnings=tuple(warnings), **cfg)


def _instance_type(raw, warnings):
    """(instance_type, its match: <family>.<size>); a retired family is a warning, not an error."""
    itype = str(raw.get("instance_type", default("instance_type")))
    match = _INSTANCE_TYPE.match(itype) if len(itype) <= MAX_INSTANCE_TYPE_LENGTH else None
    if not match:
        raise ConfigError(
            "instance_type=%r is not an EC2 instance type; expected "
            "<family>.<size>, e.g. m5.2xlarge or g4dn.xlarge" % itype
        )
    if match.group("family") in LEGACY_FAMILIES:
        warnings.append(
            "instance_type=%s is a retired/previous-generation family (%s): "
            "current Deep Learning AMIs may not support it and capacity is scarce; "
            "prefer m5.2xlarge (CPU) or g4dn/g5 (GPU)" % (itype, match.group("family"))
        )
    return itype, match


def _ami(raw):
    """{AMI key: value}: exactly one of ami_id, ami_name, ami_ssm_parameter (the default DLAMI's)."""
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
        return {"ami_id": str(raw["ami_id"])}
    if "ami_name" in raw:
        return {"ami_name": str(raw["ami_name"])}
    param = str(raw.get("ami_ssm_parameter", DEFAULT_AMI_SSM_PARAMETER))
    if not _SSM_NAME.match(param) or "//" in param:
        raise ConfigError(
            "ami_ssm_parameter=%r is not an SSM parameter name of at most 512 "
            "characters; expected a path like %s" % (param, DEFAULT_AMI_SSM_PARAMETER)
        )
    return {"ami_ssm_parameter": param}


def _auto_stop_minutes(raw):
    minutes = _int(raw, "auto_stop_minutes", 0, 1440)
    if minutes and minutes % 5:
        raise ConfigError(
            "auto_stop_minutes=%d must be a multiple of 5 (EC2 basic monitoring "
            "reports CPU every 5 minutes), or 0 to disable" % minutes
        )
    return minutes


def _names(raw):
    """The names the lab is deployed under and logs in with: stack, region, AZ, user, root device."""
    cfg = {}
    cfg["stack_name"] = _matching(
        raw, "stack_name", _STACK_NAME,
        "is not a CloudFormation stack name; expected a letter then letters, digits "
        "or hyphens, at most 32 characters")
    if raw.get("region"):
        cfg["region"] = _matching(
            raw, "region", _REGION, "is not an AWS region; expected e.g. us-east-1 or eu-west-2")
    if raw.get("availability_zone"):
        cfg["availability_zone"] = _matching(
            raw, "availability_zone", _AZ,
            "is not an availability zone name; expected e.g. us-east-1b")
        if not cfg["availability_zone"].startswith(cfg.get("region", "")):
            raise ConfigError("availability_zone=%s is not in region=%s"
                              % (cfg["availability_zone"], cfg["region"]))
    cfg["ssh_user"] = _matching(
        raw, "ssh_user", _USER,
        "is not a Linux login name; expected e.g. ubuntu or ec2-user")
    cfg["root_device"] = _matching(
        raw, "root_device", _DEVICE,
        "is not a block device name; expected /dev/sda1 (Ubuntu AMIs) or /dev/xvda (Amazon Linux)")
    return cfg


def _ssh_cidrs(value, allow_world):
    """The CIDRs allowed to SSH in: one, or a comma-separated list (the room's network and the
    organiser's own address, say), each a valid IPv4 network; at most MAX_SSH_CIDRS."""
    listed = value if isinstance(value, (list, tuple)) else str(value).split(",")  # cdk.json: a list
    items = [str(item).strip() for item in listed]
    if not all(items):
        raise ConfigError("ssh_cidr=%r has an empty entry; expected e.g. "
                          "203.0.113.7/32 or 203.0.113.7/32,198.51.100.0/24" % value)
    if len(items) > MAX_SSH_CIDRS:
        raise ConfigError("ssh_cidr has %d entries; at most %d fit the lab's security group rules "
                          "(use a wider CIDR that covers several)" % (len(items), MAX_SSH_CIDRS))
    out = []
    for item in items:
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ConfigError(
                "ssh_cidr=%r is not a valid IPv4 CIDR (%s); expected e.g. "
                "203.0.113.7/32" % (item, exc)
            ) from None
        if net.version == 6:
            # The VPC, subnet and instances have no IPv6 addresses: an IPv6 rule
            # would be the only way in, and it admits nobody.
            raise ConfigError(
                "ssh_cidr=%s is IPv6, but the lab's VPC, subnet and instances are "
                "IPv4-only: an IPv6 SSH rule would lock everyone out. Give the IPv4 "
                "address you connect from, e.g. -c ssh_cidr=203.0.113.7/32 "
                "(`curl -4 https://checkip.amazonaws.com` shows it)" % net
            )
        if net.prefixlen == 0 and not allow_world:
            raise ConfigError(
                "ssh_cidr=%s opens SSH to the whole internet; give your own address "
                "range, or add -c allow_world_ssh=true to accept that" % net
            )
        if str(net) not in out:
            out.append(str(net))
    return out


def _check_gpu_generation(match, default_ami, warnings):
    """Pre-Turing GPU families: refused on the default DLAMI, a warning on any other image."""
    family = match.group("family")
    if family not in PRE_TURING_GPU:
        return
    itype = match.group(0)
    gpu, equivalents = PRE_TURING_GPU[family]
    size = itype.split(".", 1)[1]
    instead = equivalents.get(size) or "a g4dn/g5/g6 type (Turing or newer)"
    why = ("instance_type=%s has a %s GPU (pre-Turing); the default Deep Learning AMI "
           "(%s) loads NVIDIA's open kernel modules, which need a Turing or newer GPU"
           % (itype, gpu, DEFAULT_AMI_SSM_PARAMETER.split("/")[6]))
    if default_ami:
        raise ConfigError(
            "%s, so the host would have no usable GPU. Use %s instead (-c instance_type=%s), "
            "or give an image whose driver supports the %s with -c ami_id=ami-..."
            % (why, instead, instead.split()[0] if "." in instead else "g4dn.xlarge", gpu))
    warnings.append("%s; the AMI you chose must carry a driver for the %s (e.g. NVIDIA's "
                    "proprietary 470 driver), or use %s" % (why, gpu, instead))


def _deadline(raw, now):
    """lifetime_hours, expiry_action and the resolved deadline (UTC, at() form) or ""."""
    out = {}
    action = str(raw.get("expiry_action", default("expiry_action")))
    if action not in EXPIRY_ACTIONS:
        raise ConfigError("expiry_action=%r must be one of %s"
                          % (action, ", ".join(EXPIRY_ACTIONS)))
    out["expiry_action"] = action
    value = raw.get("lifetime_hours", default("lifetime_hours"))
    try:
        hours = float(str(value))
    except ValueError:
        hours = float("nan")
    if not 0 <= hours <= MAX_LIFETIME_HOURS:  # NaN fails too
        raise ConfigError(
            "lifetime_hours=%r must be a number of hours from 0 (no deadline) to %d"
            % (value, MAX_LIFETIME_HOURS))
    out["lifetime_hours"] = hours
    start = now or datetime.datetime.now(datetime.timezone.utc)
    if raw.get("deadline"):
        moment = deadline_moment(raw["deadline"])
        earliest = start.replace(tzinfo=None, microsecond=0) + DEADLINE_LEAD
        if moment < earliest:
            raise ConfigError(
                "deadline=%s is in the past or less than %d minutes away (now %s UTC): the lab "
                "would stop as soon as it is deployed. Give a later UTC time (yyyy-mm-ddThh:mm:ss, "
                "from %s), or lifetime_hours=N instead"
                % (raw["deadline"], DEADLINE_LEAD.seconds // 60,
                   start.strftime(_DEADLINE_FORMAT), earliest.strftime(_DEADLINE_FORMAT)))
        out["deadline"] = moment.strftime(_DEADLINE_FORMAT)
    elif hours:
        moment = start.replace(tzinfo=None, microsecond=0) + datetime.timedelta(hours=hours)
        out["deadline"] = moment.strftime(_DEADLINE_FORMAT)
    return out


def deadline_moment(value):
    """The `deadline` value as a naive UTC datetime, or ConfigError naming it."""
    try:
        return datetime.datetime.strptime(str(value).strip().rstrip("Z"), _DEADLINE_FORMAT)
    except ValueError:
        raise ConfigError(
            "deadline=%r is not a UTC time; expected yyyy-mm-ddThh:mm:ss, "
            "e.g. 2030-06-01T18:00:00" % value) from None


def _matching(raw, key, pattern, problem):
    """The string value of `key`, refused with `key=value <problem>` unless it matches."""
    value = str(raw.get(key, default(key)))
    if not pattern.match(value):
        raise ConfigError("%s=%r %s" % (key, value, problem))
    return value


def _bool(raw, key):
    value = raw.get(key, default(key))
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError("%s=%r must be true or false" % (key, value))


def _int(raw, key, low, high):
    value = raw.get(key, default(key))
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
