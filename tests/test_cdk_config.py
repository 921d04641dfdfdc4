"""Context validation: every bad value fails synth with a message naming the key."""
import datetime
import json
import re

import pytest

from cdk.config import (ATTENDEES_PER_STACK, DEFAULT_AMI_SSM_PARAMETER, KEYS, MAX_ATTENDEES,
                        ConfigError, from_context, validate)
from cdk.cli import REPO_ROOT

OK = {"ssh_cidr": "203.0.113.7/32"}


@pytest.mark.parametrize("context, message", [
    ({}, r"ssh_cidr is required"),
    ({"ssh_cidr": "203.0.113.7"}, None),  # a bare address is a /32: accepted
    ({"ssh_cidr": "203.0.113.0/33"}, r"ssh_cidr='203.0.113.0/33' is not a valid"),
    ({"ssh_cidr": "203.0.113.7/24"}, r"ssh_cidr='203.0.113.7/24' is not a valid"),
    ({"ssh_cidr": "lab"}, r"ssh_cidr='lab' is not a valid IPv4 CIDR"),
    ({"ssh_cidr": "0.0.0.0/0"}, r"ssh_cidr=0.0.0.0/0 opens SSH .*allow_world_ssh=true"),
    ({"ssh_cidr": "::/0"}, r"ssh_cidr=::/0 is IPv6"),
    ({"ssh_cidr": "203.0.113.7/32,198.51.100.0/24"}, None),  # the room and the organiser
    ({"ssh_cidr": "203.0.113.7/32,"}, r"ssh_cidr='203.0.113.7/32,' has an empty entry"),
    ({"ssh_cidr": "203.0.113.7/32,lab"}, r"ssh_cidr='lab' is not a valid IPv4 CIDR"),
    ({"ssh_cidr": "203.0.113.7/32,0.0.0.0/0"}, r"ssh_cidr=0.0.0.0/0 opens SSH"),
    ({"ssh_cidr": ",".join("203.0.113.%d/32" % i for i in range(11))}, r"ssh_cidr has 11 entries; at most 10"),
    ({"ssh_cidr": "0.0.0.0/0", "allow_world_ssh": "maybe"}, r"allow_world_ssh='maybe' must be true or false"),
    ({"instance_type": "m5"}, r"instance_type='m5' is not an EC2 instance type"),
    ({"instance_type": "m" * 30 + ".large"}, r"instance_type='m+\.large' is not an EC2 instance type"),
    ({"ami_ssm_parameter": "/" + "p" * 512}, r"is not an SSM parameter name of at most 512 characters"),
    ({"instance_type": "M5.2XLARGE"}, r"instance_type='M5.2XLARGE'"),
    ({"instance_type": "m5.huge"}, r"instance_type='m5.huge'"),
    ({"attendees": "0"}, r"attendees=0 is out of range; allowed 1 to 100"),
    ({"attendees": "101"}, r"attendees=101 is out of range; allowed 1 to 100"),
    ({"attendees": "three"}, r"attendees='three' must be a whole number"),
    ({"attendees": "x"}, r"attendees='x' must be a whole number from 1 to 100"),
    ({"attendees": str(MAX_ATTENDEES + 1)}, r"attendees=101 is out of range; allowed 1 to 100"),
    ({"attendees": "100"}, None),
    ({"attendees": "21"}, None),  # more than one stack holds: sharded, not refused
    ({"ami_id": "ami-123"}, r"ami_id='ami-123' is not an AMI id"),
    ({"ami_id": "ami-0123456789abcdef0", "ami_name": "Deep Learning*"},
     r"exactly one of ami_id, ami_ssm_parameter, ami_name \(got ami_id, ami_name\)"),
    ({"ami_ssm_parameter": "no spaces allowed"}, r"ami_ssm_parameter='no spaces allowed' is not an SSM parameter name"),
    ({"volume_gb": "4"}, r"volume_gb=4 is out of range; allowed 8 to 16384"),
    ({"volume_gb": "75GB"}, r"volume_gb='75GB' must be a whole number"),
    ({"auto_stop_minutes": "-5"}, r"auto_stop_minutes=-5 is out of range; allowed 0 to 1440"),
    ({"auto_stop_minutes": "7"}, r"auto_stop_minutes=7 must be a multiple of 5"),
    ({"auto_stop_minutes": "2880"}, r"auto_stop_minutes=2880 is out of range"),
    ({"stack_name": "1lab"}, r"stack_name='1lab' is not a CloudFormation stack name"),
    ({"stack_name": "lab_1"}, r"stack_name='lab_1'"),
    ({"stack_name": "L" * 33}, r"at most 32 characters"),
    ({"region": "mars-1"}, r"region='mars-1' is not an AWS region"),
    ({"ssh_user": "Ubuntu User"}, r"ssh_user='Ubuntu User' is not a Linux login name"),
    ({"root_device": "sda1"}, r"root_device='sda1' is not a block device name"),
    ({"availability_zone": "us-east-1"}, r"availability_zone='us-east-1' is not an availability zone"),
    ({"availability_zone": "ap-southeast-2-akl-1a"}, None),  # a Local Zone
    ({"availability_zone": "us-west-2-" + "x" * 20 + "a"}, r"is not an availability zone name"),
    ({"availability_zone": "eu-west-1a", "region": "us-east-1"},
     r"availability_zone=eu-west-1a is not in region=us-east-1"),
    ({"availability_zone": "us-east-1b", "region": "us-east-1"}, None),
    ({"lifetime_hours": "-1"}, r"lifetime_hours='-1' must be a number of hours from 0"),
    ({"lifetime_hours": "soon"}, r"lifetime_hours='soon' must be a number"),
    ({"lifetime_hours": "721"}, r"lifetime_hours='721' must be a number of hours from 0 \(no deadline\) to 720"),
    ({"lifetime_hours": "0.01"}, None),
    ({"expiry_action": "delete"}, r"expiry_action='delete' must be one of stop, terminate"),
    ({"deadline": "tomorrow"}, r"deadline='tomorrow' is not a UTC time; expected yyyy-mm-ddThh:mm:ss"),
])
def test_bad_values_are_refused_with_the_key_named(context, message):
    raw = dict(OK, **context) if context else {}
    if message is None:
        validate(raw)
        return
    with pytest.raises(ConfigError, match=message):
        validate(raw)


def test_defaults_are_defined_once_on_lab_config():
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    assert not set(context) & set(KEYS)  # cdk.json holds none of the lab's keys
    config = from_context({"ssh_cidr": "203.0.113.7/32"}.get)
    assert config.instance_type == "m5.2xlarge"
    assert (config.attendees, config.volume_gb, config.auto_stop_minutes) == (1, 75, 120)
    assert (config.stack_name, config.ssh_user) == ("MxnetLab", "ubuntu")
    assert (config.lifetime_hours, config.expiry_action) == (12, "stop")
    assert config.ami_ssm_parameter == DEFAULT_AMI_SSM_PARAMETER
    assert not config.allow_world_ssh and config.warnings == ()


def test_world_ssh_only_when_explicitly_allowed():
    config = validate(dict(OK, ssh_cidr="0.0.0.0/0", allow_world_ssh="true"))
    assert config.world_ssh


@pytest.mark.aws_behaviour
@pytest.mark.parametrize("cidr", ["2001:db8::/64", "2001:db8::1/128", "::/0"])
def test_an_ipv6_ssh_cidr_is_refused_because_the_lab_is_ipv4_only(cidr):
    """An IPv6 rule on an IPv4-only VPC admits nobody: refused at synth, saying why."""
    with pytest.raises(ConfigError) as raised:
        validate(dict(OK, ssh_cidr=cidr, allow_world_ssh="true"))
    message = str(raised.value)
    assert message.startswith("ssh_cidr=%s is IPv6" % cidr)
    assert "IPv4-only" in message and "lock everyone out" in message


@pytest.mark.parametrize("itype, legacy", [
    ("m5.2xlarge", False), ("g4dn.xlarge", False),
    ("m7i-flex.large", False), ("c7i.metal-48xl", False), ("m3.medium", True),
])
def test_instance_types_accepted_and_legacy_ones_warned(itype, legacy):
    config = validate(dict(OK, instance_type=itype))
    assert config.instance_type == itype
    assert bool(config.warnings) is legacy
    if legacy:
        assert itype in config.warnings[0] and "previous-generation" in config.warnings[0]


@pytest.mark.aws_behaviour
@pytest.mark.parametrize("itype, instead", [
    ("p2.xlarge", "g4dn.xlarge"), ("p2.8xlarge", "g4dn.12xlarge"), ("p3.2xlarge", "g5.2xlarge"),
    ("p3dn.24xlarge", "p4d.24xlarge"), ("g3.4xlarge", "g4dn.4xlarge"), ("g2.2xlarge", "g4dn.xlarge"),
    ("g3s.xlarge", "g4dn.xlarge"),
])
def test_pre_turing_gpus_are_refused_on_the_default_ami(itype, instead):
    """The default DLAMI's open NVIDIA kernel modules drive Turing and newer GPUs only."""
    with pytest.raises(ConfigError) as raised:
        validate(dict(OK, instance_type=itype))
    message = str(raised.value)
    assert message.startswith("instance_type=%s " % itype)
    assert "open kernel modules" in message and "Turing" in message
    assert "Use %s instead" % instead in message and "ami_id" in message


@pytest.mark.aws_behaviour
def test_a_pre_turing_gpu_is_allowed_with_an_explicit_ami_and_warned():
    config = validate(dict(OK, instance_type="p2.xlarge", ami_id="ami-0123456789abcdef0"))
    assert config.instance_type == "p2.xlarge"
    (warning,) = [w for w in config.warnings if "Turing" in w]
    assert "instance_type=p2.xlarge" in warning and "g4dn.xlarge" in warning
    # current GPU families are not touched
    assert validate(dict(OK, instance_type="g6.xlarge")).warnings == ()


def test_the_deadline_is_lifetime_hours_from_the_synth_in_utc():
    now = datetime.datetime(2030, 6, 1, 9, 30, 15, 999, tzinfo=datetime.timezone.utc)
    assert validate(OK, now=now).deadline == "2030-06-01T21:30:15"  # default 12 h
    assert validate(dict(OK, lifetime_hours="8"), now=now).deadline == "2030-06-01T17:30:15"
    assert validate(dict(OK, lifetime_hours="0.01"), now=now).deadline == "2030-06-01T09:30:51"
    assert validate(dict(OK, lifetime_hours="0"), now=now).deadline == ""
    fixed = validate(dict(OK, deadline="2030-06-02T03:04:05Z"), now=now)
    assert (fixed.deadline, fixed.expiry_action) == ("2030-06-02T03:04:05", "stop")
    assert validate(dict(OK, expiry_action="terminate")).expiry_action == "terminate"


@pytest.mark.aws_behaviour
@pytest.mark.parametrize("deadline", ["2030-06-01T09:00:00", "2030-06-01T09:34:00Z", "2020-01-01T00:00:00"])
def test_a_deadline_in_the_past_or_within_five_minutes_is_refused(deadline):
    """EventBridge Scheduler would run an at() that has passed at once: the lab would stop (or be
    terminated) the moment the deploy is done."""
    now = datetime.datetime(2030, 6, 1, 9, 30, 15, tzinfo=datetime.timezone.utc)
    with pytest.raises(ConfigError, match=r"deadline=%s is in the past or less than 5 minutes away "
                                          r"\(now 2030-06-01T09:30:15 UTC\).*from 2030-06-01T09:35:15"
                                          % re.escape(deadline)):
        validate(dict(OK, deadline=deadline), now=now)
    assert validate(dict(OK, deadline="2030-06-01T09:35:15"), now=now).deadline == "2030-06-01T09:35:15"


def test_ami_choices_are_exclusive_and_default_to_the_dlami_parameter():
    assert validate(dict(OK, ami_id="ami-0123456789abcdef0")).ami_ssm_parameter == ""
    named = validate(dict(OK, ami_name="Deep Learning Base*"))
    assert named.ami_name and not named.ami_id and not named.ami_ssm_parameter
    custom = validate(dict(OK, ami_ssm_parameter="/my/ami"))
    assert custom.ami_ssm_parameter == "/my/ami"


def test_idle_periods_round_the_minutes_to_five_minute_periods():
    assert validate(dict(OK, auto_stop_minutes="120")).idle_periods == 24
    assert validate(dict(OK, auto_stop_minutes="0")).auto_stop_minutes == 0


@pytest.mark.parametrize("attendees, expected", [
    (1, [("MxnetLab", 1, 1)]),
    (20, [("MxnetLab", 1, 20)]),
    (21, [("MxnetLab", 1, 20), ("MxnetLab-2", 21, 21)]),
    (30, [("MxnetLab", 1, 20), ("MxnetLab-2", 21, 30)]),
    (100, [("MxnetLab", 1, 20), ("MxnetLab-2", 21, 40), ("MxnetLab-3", 41, 60),
           ("MxnetLab-4", 61, 80), ("MxnetLab-5", 81, 100)]),
])
def test_attendees_are_split_into_shard_stacks_of_twenty(attendees, expected):
    assert ATTENDEES_PER_STACK == 20 and MAX_ATTENDEES == 100
    shards = validate(dict(OK, attendees=str(attendees))).shards
    assert [(name, nums[0], nums[-1]) for name, nums in shards] == expected
    assert [n for _, nums in shards for n in nums] == list(range(1, attendees + 1))
