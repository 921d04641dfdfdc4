"""`npx cdk synth` as a user runs it: quiet, offline, inline-sized, validating."""
import datetime
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from cdk.cli import REPO_ROOT

INLINE_LIMIT = 51200  # bytes CloudFormation takes as TemplateBody (the CLI sends YAML)
# What a template may use of it: a lab near the limit fails to deploy when CloudFormation or
# the CDK spells a resource a little longer, so every stack keeps 5 % free.
HEADROOM_LIMIT = int(INLINE_LIMIT * 0.95)
# The largest lab (five stacks of 20, two subnets) with every key that reaches the template at
# the longest value config allows: ten SSH CIDRs, a 32-character instance type, a 512-character
# AMI parameter, the longest root device, an AZ name of 24, a terminate deadline. (An IPv6
# ssh_cidr is refused; ami_id/ami_name are shorter than ami_ssm_parameter; deadline and
# lifetime_hours are one schedule.)
WORST_CASE = {"ssh_cidr": ",".join("203.113.255.%d/32" % (200 + i) for i in range(10)),
              "attendees": "100", "stack_name": "L" * 32, "ssh_user": "u" * 32,
              "instance_type": "x" * 21 + ".metal-48xl", "volume_gb": "16384",
              "ami_ssm_parameter": "/" + "p" * 511, "root_device": "/dev/nvme12ab",
              "auto_stop_minutes": "1440", "expiry_action": "terminate", "allow_world_ssh": "false",
              "region": "ap-southeast-2", "availability_zone": "ap-southeast-2-akl-123ab",
              "lifetime_hours": "8"}
STACKS = ["L" * 32] + ["L" * 32 + "-%d" % k for k in range(2, 6)]


def _bare_env(home):
    """What a user's shell has: no CDK/jsii quieting variables, a fresh HOME."""
    node_dir = os.path.dirname(shutil.which("node"))
    return {"PATH": "%s:/usr/bin:/bin" % node_dir, "HOME": str(home), "LANG": "C.UTF-8"}


def _npx_cdk(args, home, strace_log=None):
    """Run `npx cdk ...` in a private network namespace: a regression that
    tries the network then fails there instead of leaving the machine."""
    argv = ["npx", "cdk"] + args + ["--output", str(home / "cdk.out")]
    if strace_log is not None:
        strace = shutil.which("strace")
        assert strace, "strace is needed to prove synth makes no network call (apt-get install strace)"
        argv = [strace, "-f", "-qq", "-e", "trace=connect", "-o", str(strace_log)] + argv
    argv = ["unshare", "--map-root-user", "--net"] + argv
    return subprocess.run(argv, cwd=str(REPO_ROOT), env=_bare_env(home),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def worst_case_synth(tmp_path_factory):
    """(first stack's CLI result, strace log, {stack: template}, UTC time before the synth)."""
    home = tmp_path_factory.mktemp("home")
    log = tmp_path_factory.mktemp("strace") / "connect.log"
    context = [a for k, v in WORST_CASE.items() for a in ("-c", "%s=%s" % (k, v))]
    # Naming the first stack prints its YAML (what deploy sends as TemplateBody);
    # every stack of the app is synthesized into cdk.out all the same.
    started = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    result = _npx_cdk(["synth"] + context + [STACKS[0]], home, strace_log=log)
    assert result.returncode == 0, result.stderr
    templates = {name: json.loads((home / "cdk.out" / ("%s.template.json" % name)).read_text())
                 for name in STACKS}
    # The last shard has the longest name: its YAML too, exactly as deploy sends it.
    last = _npx_cdk(["synth"] + context + [STACKS[-1]], home)
    assert last.returncode == 0, last.stderr
    templates["last-yaml"] = last.stdout
    return result, log.read_text(), templates, started


def test_synth_prints_no_node_end_of_life_banner(worst_case_synth):
    result, _, _, _ = worst_case_synth
    assert "end-of-life" not in result.stderr + result.stdout
    assert "!!!!" not in result.stderr
    assert "NodeVersionSupportWarning" not in result.stderr


def test_synth_makes_no_network_call(worst_case_synth):
    _, log, _, _ = worst_case_synth
    connects = [line for line in log.splitlines() if "connect(" in line]
    assert connects, "strace recorded no connect() at all: is it tracing?"
    for line in connects:
        if "AF_UNIX" in line:
            continue
        address = re.search(r'inet_(?:addr|pton)\((?:AF_INET6, )?"([^"]+)"', line)
        assert address and (address.group(1).startswith("127.") or address.group(1) == "::1"), line


@pytest.mark.aws_behaviour
def test_largest_lab_fits_the_inline_template_limit(worst_case_synth):
    """CloudFormation refuses a TemplateBody over 51,200 bytes; the worst case was 52,518 (ten
    CIDRs, long values) before the per-attendee ssh/ssm command outputs went."""
    result, _, templates, _ = worst_case_synth
    template = result.stdout.encode()  # the first stack, as the CLI's YAML
    assert template.count(b"Type: AWS::EC2::Instance") == 20
    assert len(template) <= HEADROOM_LIMIT, len(template)
    assert len(templates[STACKS[0]]["Outputs"]) <= 200
    last = templates["last-yaml"].encode()
    assert last.count(b"Type: AWS::EC2::Instance") == 20
    assert b"Fn::ImportValue" in last
    assert len(last) <= HEADROOM_LIMIT, len(last)
    # Shards 2-4 differ from the last only by attendee numbers (fewer digits).
    sizes = {name: len(yaml.safe_dump(templates[name])) for name in STACKS[1:]}
    assert max(sizes, key=sizes.get) == STACKS[-1], sizes
    for name in STACKS[1:]:
        shard = templates[name]
        assert sum(r["Type"] == "AWS::EC2::Instance" for r in shard["Resources"].values()) == 20
        assert len(shard["Outputs"]) <= 200


def test_bad_context_fails_synth_with_its_message(tmp_path):
    result = _npx_cdk(["synth", "-c", "ssh_cidr=203.0.113.7/32", "-c", "attendees=101"],
                      tmp_path)
    assert result.returncode != 0
    assert "attendees=101 is out of range; allowed 1 to 100" in result.stderr
    assert "Traceback" not in result.stderr


def test_lifetime_hours_synthesizes_a_schedule_and_no_lambda(worst_case_synth):
    """`npx cdk synth -c ssh_cidr=... -c lifetime_hours=8`: every stack carries its deadline."""
    _, _, templates, started = worst_case_synth
    earliest = started + datetime.timedelta(hours=8)
    for name in STACKS:
        resources = templates[name]["Resources"].values()
        (schedule,) = [r for r in resources if r["Type"] == "AWS::Scheduler::Schedule"]
        expression = schedule["Properties"]["ScheduleExpression"]
        deadline = datetime.datetime.strptime(expression, "at(%Y-%m-%dT%H:%M:%S)")
        # from the synth's own clock: 8 hours after the synth began, not before
        assert deadline >= earliest and deadline - earliest < datetime.timedelta(hours=1)
        assert schedule["Properties"]["Target"]["Arn"] == {  # the worst case's expiry_action
            "Fn::Sub": "arn:${AWS::Partition}:scheduler:::aws-sdk:ec2:terminateInstances"}
        assert not [r for r in resources if r["Type"].startswith(("AWS::Lambda", "Custom::"))]
        assert templates[name]["Outputs"]["LabDeadline"]["Value"] == \
            deadline.strftime("%Y-%m-%dT%H:%M:%SZ terminate")


def test_the_jsii_package_cache_is_the_users_whatever_home_a_child_gets(tmp_path):
    """A HOME of its own (the offline lab's children) would unpack aws-cdk-lib afresh at each synth there."""
    from cdk import cli as cdk_cli
    from mxlab.offline.lab import OfflineLab
    user = {"HOME": str(tmp_path / "organiser")}
    expected = tmp_path / "organiser" / ".cache" / "aws" / "jsii" / "package-cache"
    if sys.platform == "linux":
        assert cdk_cli.package_cache_root(user) == expected
    assert cdk_cli.package_cache_root(dict(user, JSII_RUNTIME_PACKAGE_CACHE_ROOT="/elsewhere")) == \
        cdk_cli.Path("/elsewhere")
    lab = OfflineLab(say=lambda text: None)  # not started: its children's environment only
    lab.state_dir = tmp_path / "lab"
    child = lab._child_env(dict(user))
    assert child["HOME"] != user["HOME"]
    assert child[cdk_cli.PACKAGE_CACHE_VARIABLE] == str(cdk_cli.package_cache_root(user))
    assert lab._child_env(child)[cdk_cli.PACKAGE_CACHE_VARIABLE] == child[cdk_cli.PACKAGE_CACHE_VARIABLE]
