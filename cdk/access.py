"""Access: SSH from one CIDR, a key pair per attendee, an instance role for SSM.

LabAccess (first stack) holds the security group, role and profile and the
key pairs of the first stack's attendees; shard stacks call attendee_key_pairs.
"""
from aws_cdk import Fn, aws_ec2 as ec2, aws_iam as iam
from cdk_nag import NagSuppressions
from constructs import Construct

from cdk.config import LabConfig


def attendee_key_pairs(scope: Construct, config: LabConfig, numbers) -> list:
    """An ed25519 key pair per attendee number (global numbers: unique names).

    CloudFormation stores each private key in SSM Parameter Store as
    /ec2/keypair/<key-pair-id>; mxlab reads it from there.
    """
    key_pairs = []
    for n in numbers:
        key = ec2.KeyPair(
            scope,
            "Attendee%dKeyPair" % n,
            key_pair_name="%s-attendee%d" % (config.stack_name, n),
            type=ec2.KeyPairType.ED25519,
            format=ec2.KeyPairFormat.PEM,
        )
        # Stable short ids: outputs refer to them, and the template must
        # stay under the inline (no-bootstrap) size limit.
        key.node.default_child.override_logical_id("Attendee%dKeyPair" % n)
        key_pairs.append(key)
    return key_pairs


class LabAccess(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: LabConfig,
                 vpc: ec2.IVpc) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SshSecurityGroup",
            vpc=vpc,
            description="mxlab: SSH from the operator CIDR only",
            allow_all_outbound=True,
        )
        # IPv4 only: the lab has no IPv6 (config.py refuses an IPv6 ssh_cidr). Inline rules: a
        # changed list updates the group in place (no host is touched).
        for cidr in config.ssh_cidrs:
            self.security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(22), "SSH")
        # Short ids: every instance refers to these (template size limit).
        self.security_group.node.default_child.override_logical_id("LabSshSecurityGroup")
        if config.world_ssh:
            NagSuppressions.add_resource_suppressions(self.security_group, [{
                "id": "AwsSolutions-EC23",
                "reason": "The operator set allow_world_ssh=true on purpose; "
                          "SSH is key-only on the lab hosts.",
            }])

        self.key_pairs = attendee_key_pairs(self, config, config.shards[0][1])

        # One role and profile shared by all instances, so Session Manager works.
        # AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on every parameter, the other
        # attendees' private keys (/ec2/keypair/<id>) among them: an explicit Deny, which no
        # Allow overrides, keeps them from the instance (each attendee has their own as a file).
        keys = Fn.sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/ec2/keypair/*")
        self.role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "AmazonSSMManagedInstanceCore")
            ],
            inline_policies={"keys": iam.PolicyDocument(statements=[iam.PolicyStatement(
                effect=iam.Effect.DENY, actions=["ssm:GetParameter*"], resources=[keys])])},
        )
        NagSuppressions.add_resource_suppressions(self.role, [{
            "id": "AwsSolutions-IAM4",
            "reason": "AmazonSSMManagedInstanceCore is the AWS-maintained minimum "
                      "for Session Manager; a copy would drift from it.",
            "appliesTo": [
                "Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore"
            ],
        }])
        self.instance_profile = iam.CfnInstanceProfile(
            self, "InstanceProfile", roles=[self.role.role_name]
        )
        self.instance_profile.override_logical_id("LabInstanceProfile")
