"""Network: a VPC with public /26 subnets and an internet gateway, no NAT.

One per lab, in the first stack; shard stacks import its subnets. A subnet,
once made, never changes: CloudFormation replaces a subnet whose CIDR changes
by creating the new one first, which fails on the overlap
(InvalidSubnet.Conflict), and an export other stacks import cannot change.
So the lab grows by adding subnets: attendee n always lives in subnet
(n - 1) // 59 (a /26 less the 5 addresses AWS keeps), whatever the total.
subnet_plan() is that rule, pure, for the construct and the tests alike.
"""
import ipaddress
from dataclasses import dataclass

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

VPC_CIDR = "10.42.0.0/24"
SUBNET_PREFIX = 26
SUBNET_HOSTS = 59  # a /26 less the 5 addresses AWS reserves


@dataclass(frozen=True)
class PlannedSubnet:
    index: int  # 0-based
    logical_id: str  # LabPublicSubnet, LabPublicSubnet2, ...
    cidr: str
    export_key: str  # "<stack_name>-<export_key>" when shard stacks import it

    @property
    def attendees(self):
        return range(self.index * SUBNET_HOSTS + 1, (self.index + 1) * SUBNET_HOSTS + 1)


def subnet_index(attendee):
    """The subnet of attendee n (1-based), the same for every lab size."""
    return (attendee - 1) // SUBNET_HOSTS


def subnet_plan(attendees):
    """The lab's subnets for `attendees`: a prefix of one fixed, endless-enough list."""
    blocks = list(ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=SUBNET_PREFIX))
    count = subnet_index(attendees) + 1
    if count > len(blocks):
        raise ValueError("%d attendees need %d /%d subnets; %s holds %d"
                         % (attendees, count, SUBNET_PREFIX, VPC_CIDR, len(blocks)))
    suffix = lambda i: "" if i == 0 else str(i + 1)  # noqa: E731  (ids of old labs kept)
    return [PlannedSubnet(i, "LabPublicSubnet" + suffix(i), str(blocks[i]),
                          "SubnetId" + suffix(i)) for i in range(count)]


class LabNetwork(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, hosts: int = 1,
                 availability_zone: str = "") -> None:
        """hosts: the lab's attendees; availability_zone: "" for the region's first."""
        super().__init__(scope, construct_id)
        plan = subnet_plan(hosts)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=1,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Public", subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=SUBNET_PREFIX,
                )
            ],
            # On, this adds a custom resource backed by a Lambda asset, and the
            # bootstrap-free synthesizer cannot deploy assets.
            restrict_default_security_group=False,
        )
        first = self.vpc.public_subnets[0]
        cfn_first = first.node.default_child
        # Short id: every instance refers to it (template size limit).
        cfn_first.override_logical_id(plan[0].logical_id)
        if availability_zone:
            # Set on the resource: a literal AZ in an env-agnostic VPC's props
            # is refused (not among the stack's AZ tokens).
            cfn_first.add_property_override("AvailabilityZone", availability_zone)
            _chosen_az(cfn_first)
        az = availability_zone or first.availability_zone
        self.plan = plan
        self.subnet_ids = [first.subnet_id]
        # Later subnets: L1, same AZ, sharing the first one's route table
        # (its default route to the internet gateway): two resources each.
        for planned in plan[1:]:
            subnet = ec2.CfnSubnet(
                self, "PublicSubnet%d" % (planned.index + 1), vpc_id=self.vpc.vpc_id,
                cidr_block=planned.cidr, availability_zone=az,
                map_public_ip_on_launch=True)
            subnet.override_logical_id(planned.logical_id)
            if availability_zone:
                _chosen_az(subnet)
            association = ec2.CfnSubnetRouteTableAssociation(
                self, "PublicSubnet%dRouteTable" % (planned.index + 1),
                subnet_id=subnet.ref, route_table_id=first.route_table.route_table_id)
            association.override_logical_id(planned.logical_id + "Rta")
            self.subnet_ids.append(subnet.ref)

    def subnet_id(self, attendee):
        return self.subnet_ids[subnet_index(attendee)]


def _chosen_az(subnet):
    # cfn-lint W3010 flags any literal AZ; this one is chosen on purpose (the
    # pre-flight's pick of an AZ offering instance_type, or the operator's).
    subnet.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3010"]}})
