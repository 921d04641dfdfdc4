"""Static checks on the synthesized templates (every stack of the lab): cdk-nag
AwsSolutions and cfn-lint."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Aspects
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from cdk.config import validate
from cdk.lab_stack import LabStack, build_lab

CONFIGS = {
    "default": {"ssh_cidr": "203.0.113.7/32"},
    "three-g4dn": {"ssh_cidr": "203.0.113.7/32", "attendees": "3", "instance_type": "g4dn.xlarge"},
    # a pre-Turing GPU is allowed (with a warning) on an image of one's own
    "ami-id-p2": {"ssh_cidr": "198.51.100.0/24", "ami_id": "ami-0123456789abcdef0",
                  "instance_type": "p2.xlarge", "auto_stop_minutes": "0"},
    "no-deadline": {"ssh_cidr": "203.0.113.7/32", "lifetime_hours": "0"},
    "terminate": {"ssh_cidr": "203.0.113.7/32", "expiry_action": "terminate"},
    "world": {"ssh_cidr": "0.0.0.0/0", "allow_world_ssh": "true", "attendees": "2"},
    # Two stacks: MxnetLab (network, 1-20) and MxnetLab-2 (21-30, imports).
    "thirty": {"ssh_cidr": "203.0.113.7/32", "attendees": "30"},
    # Five stacks, two subnets (attendees 60-100 in the second), in a chosen AZ.
    "hundred": {"ssh_cidr": "203.0.113.7/32", "attendees": "100",
                "availability_zone": "eu-west-1b"},
    "thirty-ami-id": {"ssh_cidr": "203.0.113.7/32", "attendees": "30",
                      "ami_id": "ami-0123456789abcdef0"},
}
SHARDED = {"thirty": 2, "thirty-ami-id": 2, "hundred": 5}


@pytest.fixture(scope="module")
def nagged():
    """Each config's stacks built with the AwsSolutions pack applied, as app.py does."""
    stacks = {}
    for name, context in CONFIGS.items():
        app = App()
        stacks[name] = build_lab(app, validate(context))
        assert len(stacks[name]) == SHARDED.get(name, 1)
        Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
        app.synth()
    return stacks


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cdk_nag_has_no_unsuppressed_findings(nagged, name):
    pattern = Match.string_like_regexp("AwsSolutions-")
    for stack in nagged[name]:
        annotations = Annotations.from_stack(stack)
        assert annotations.find_error("*", pattern) == []
        assert annotations.find_warning("*", pattern) == []


def _suppressions(template):
    found = list(template.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []))
    for resource in template["Resources"].values():
        found += resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    return found


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_suppression_carries_its_reason(nagged, name):
    for index, stack in enumerate(nagged[name]):
        suppressions = _suppressions(Template.from_stack(stack).to_json())
        ids = {s["id"] for s in suppressions}
        # Shard stacks hold no VPC, role or security group: only instance rules.
        expected = ({"AwsSolutions-VPC7", "AwsSolutions-IAM4", "AwsSolutions-EC28",
                     "AwsSolutions-EC29"} if index == 0
                    else {"AwsSolutions-EC28", "AwsSolutions-EC29"})
        assert ids - {"AwsSolutions-EC23"} == expected
        assert ("AwsSolutions-EC23" in ids) is (name == "world")
        for suppression in suppressions:
            assert len(suppression["reason"].split()) >= 6, suppression


def test_the_nag_pack_really_runs():
    """Without its suppression, the world-open SSH rule is reported."""
    app = App()
    config = validate(CONFIGS["world"])
    stack = LabStack(app, "MxnetLab", config=config)
    group = stack.node.find_child("Access").node.find_child("SshSecurityGroup")
    group.node.default_child.cfn_options.metadata = {}  # drop the suppression
    Aspects.of(app).add(AwsSolutionsChecks())
    app.synth()
    errors = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp("AwsSolutions-EC23"))
    assert errors


def test_cfn_lint_is_clean(nagged, tmp_path):
    paths = []
    for name, stacks in nagged.items():
        for stack in stacks:
            path = tmp_path / ("%s-%s.json" % (name, stack.stack_name))
            path.write_text(json.dumps(Template.from_stack(stack).to_json()))
            paths.append(str(path))
    assert len(paths) == len(CONFIGS) + sum(n - 1 for n in SHARDED.values())
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--regions", "us-east-1", "eu-west-1", "--"]
        + paths, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
