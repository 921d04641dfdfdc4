"""Network: a VPC with one public subnet and an internet gateway, no NAT.

One per lab, in the first stack; shard stacks import its subnet. The subnet is
a /26 (59 usable addresses: AWS keeps 5) up to 59 attendees, as it always was,
and a /25 (123) for bigger labs: sized by attendees so labs that fit the old
/26 keep their subnet (a new CIDR would replace the subnet and every host).
"""
from aws_cdk import aws_ec2 as ec2
from constructs import Construct


SMALL_SUBNET_HOSTS = 59  # a /26 less the 5 addresses AWS reserves


class LabNetwork(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, hosts: int = 1) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.42.0.0/24"),
            max_azs=1,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Public", subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=26 if hosts <= SMALL_SUBNET_HOSTS else 25,
                )
            ],
            # On, this adds a custom resource backed by a Lambda asset, and the
            # bootstrap-free synthesizer cannot deploy assets.
            restrict_default_security_group=False,
        )
        self.subnet = self.vpc.public_subnets[0]
        # Short id: every instance refers to it (template size limit).
        self.subnet.node.default_child.override_logical_id("LabPublicSubnet")
