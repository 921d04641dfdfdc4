"""The lab's subnets only ever grow: no subnet id, CIDR or export changes with `attendees`.

A subnet whose CIDR changes is replaced by one made first, which overlaps the old
one (InvalidSubnet.Conflict), and an export other stacks import cannot change:
either fails `mxlab up -c attendees=<more>` on real AWS. The emulator refuses both
too (tests/test_offline_cloudformation_rules.py).
"""
import ipaddress

import pytest

from cdk.network import SUBNET_HOSTS, VPC_CIDR, subnet_index, subnet_plan

CIDR = "203.0.113.7/32"
STACK = "MxnetLab"
SYNTHESIZED = (1, 20, 21, 59, 60, 100)  # around every boundary: shards of 20, subnets of 59


def _planned(attendees):
    """logical id -> CIDR, and export name -> subnet logical id (shard stacks import)."""
    plan = subnet_plan(attendees)
    subnets = {s.logical_id: s.cidr for s in plan}
    exports = ({"%s-%s" % (STACK, s.export_key): s.logical_id for s in plan}
               if attendees > 20 else {})
    return subnets, exports


def _extends(small, big):
    return all(big.get(key) == value for key, value in small.items())


@pytest.mark.aws_behaviour
def test_every_lab_size_keeps_the_subnets_and_exports_of_the_smaller_one():
    previous = _planned(1)
    for attendees in range(2, 101):
        current = _planned(attendees)
        for before, after in zip(previous, current):
            assert _extends(before, after), (attendees, before, after)
        previous = current


def test_attendee_n_lives_in_the_same_subnet_for_every_total():
    vpc = ipaddress.ip_network(VPC_CIDR)
    for attendees in range(1, 101):
        plan = subnet_plan(attendees)
        networks = [ipaddress.ip_network(s.cidr) for s in plan]
        assert all(net.subnet_of(vpc) for net in networks)
        assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:])
        for n in range(1, attendees + 1):
            subnet = plan[subnet_index(n)]
            assert n in subnet.attendees
        for subnet in plan:  # AWS keeps 5 addresses of each subnet
            assert len([n for n in range(1, attendees + 1) if n in subnet.attendees]) \
                <= networks[subnet.index].num_addresses - 5 == SUBNET_HOSTS
    # the subnet labs of up to 59 always had is kept as it was
    assert _planned(59)[0] == {"LabPublicSubnet": "10.42.0.0/26"}
    assert _planned(60)[0] == {"LabPublicSubnet": "10.42.0.0/26", "LabPublicSubnet2": "10.42.0.64/26"}


def _synthesized(lab_stacks, attendees):
    """What the stacks really hold: subnets, exports, and each instance's subnet."""
    context = dict(ssh_cidr=CIDR, attendees=str(attendees))
    stacks = lab_stacks.stacks(**context)
    first = lab_stacks.template(**context).to_json()
    subnets = {k: r["Properties"]["CidrBlock"] for k, r in first["Resources"].items()
               if r["Type"] == "AWS::EC2::Subnet"}
    exports = {o["Export"]["Name"]: o["Value"]["Ref"] for o in first["Outputs"].values()
               if "Export" in o and "Ref" in o["Value"] and o["Export"]["Name"].startswith(
                   STACK + "-SubnetId")}
    placed = {}
    for index in range(len(stacks)):
        template = lab_stacks.template(shard=index, **context).to_json()
        for key, resource in template["Resources"].items():
            if resource["Type"] == "AWS::EC2::Instance":
                subnet = resource["Properties"]["SubnetId"]
                placed[int(key[len("Attendee"):-len("Instance")])] = (
                    subnet.get("Ref") or exports[subnet["Fn::ImportValue"]])
    return subnets, exports, placed


@pytest.mark.parametrize("attendees", SYNTHESIZED)
def test_the_synthesized_stacks_follow_the_plan(lab_stacks, attendees):
    subnets, exports, placed = _synthesized(lab_stacks, attendees)
    assert (subnets, exports) == _planned(attendees)
    plan = subnet_plan(attendees)
    assert placed == {n: plan[subnet_index(n)].logical_id for n in range(1, attendees + 1)}


@pytest.mark.aws_behaviour
def test_growing_the_synthesized_lab_changes_no_subnet_or_export(lab_stacks):
    for small, big in zip(SYNTHESIZED, SYNTHESIZED[1:]):
        before, after = _synthesized(lab_stacks, small), _synthesized(lab_stacks, big)
        assert _extends(before[0], after[0]) and _extends(before[1], after[1]), (small, big)
        assert _extends(before[2], after[2]), (small, big)  # no instance moves subnet


def test_the_subnets_go_to_the_chosen_availability_zone(lab_stacks):
    def zones(**context):
        template = lab_stacks.template(ssh_cidr=CIDR, attendees="60", **context).to_json()
        return {k: r["Properties"]["AvailabilityZone"] for k, r in template["Resources"].items()
                if r["Type"] == "AWS::EC2::Subnet"}
    # by default the region's first AZ, for every subnet of the lab
    first = {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert zones() == {"LabPublicSubnet": first, "LabPublicSubnet2": first}
    # the pre-flight's (or the operator's) choice
    assert zones(availability_zone="us-east-1c") == {"LabPublicSubnet": "us-east-1c",
                                                     "LabPublicSubnet2": "us-east-1c"}
