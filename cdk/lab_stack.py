"""The lab stack: wires the four concerns and publishes the outputs mxlab reads."""
from aws_cdk import (Annotations, CfnOutput, Fn, LegacyStackSynthesizer, Stack)
from cdk_nag import NagSuppressions
from constructs import Construct

from cdk.access import LabAccess
from cdk.config import LabConfig
from cdk.cost_guard import LabCostGuard
from cdk.instances import LabInstances
from cdk.network import LabNetwork


class LabStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: LabConfig,
                 **kwargs) -> None:
        # Workshop accounts are often fresh: the legacy synthesizer deploys the
        # template inline with the caller's credentials, no `cdk bootstrap`.
        kwargs.setdefault("synthesizer", LegacyStackSynthesizer())
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        for message in config.warnings:
            Annotations.of(self).add_warning_v2("mxlab:config", message)

        network = LabNetwork(self, "Network")
        access = LabAccess(self, "Access", config=config, vpc=network.vpc)
        instances = LabInstances(
            self, "Instances", config=config, subnet=network.subnet,
            security_group=access.security_group, key_pairs=access.key_pairs,
            instance_profile=access.instance_profile,
        )
        self.instances = instances.instances
        LabCostGuard(self, "CostGuard", config=config, instances=self.instances)
        self._outputs(access.key_pairs, instances.instances)

        NagSuppressions.add_resource_suppressions(network.vpc, [{
            "id": "AwsSolutions-VPC7",
            "reason": "A short-lived lab VPC with SSH only from one CIDR; flow "
                      "logs would add a log group and role to every lab.",
        }])

    def _outputs(self, key_pairs, instances) -> None:
        """Keys of `cdk deploy --outputs-file`: a contract with mxlab/."""
        config = self.config
        CfnOutput(self, "LabAttendees", value=str(config.attendees))
        CfnOutput(self, "LabSshUser", value=config.ssh_user)
        for n, (key, instance) in enumerate(zip(key_pairs, instances), start=1):
            inst = instance.logical_id
            prefix = "Attendee%d" % n
            CfnOutput(self, prefix + "InstanceId", value=instance.ref)
            # Fn::Sub renders on one line: shorter than GetAtt (size limit).
            CfnOutput(self, prefix + "PublicIp", value=Fn.sub("${%s.PublicIp}" % inst))
            CfnOutput(self, prefix + "PublicDns",
                      value=Fn.sub("${%s.PublicDnsName}" % inst))
            CfnOutput(self, prefix + "KeyPairId", value=key.key_pair_id)
            CfnOutput(self, prefix + "PrivateKeyParameter",
                      value=Fn.sub("/ec2/keypair/${%s.KeyPairId}" % key.node.default_child.logical_id))
            CfnOutput(self, prefix + "SshCommand", value=Fn.sub(
                "ssh -i %s-attendee%d.pem %s@${%s.PublicIp}"
                % (config.stack_name, n, config.ssh_user, inst)))
            CfnOutput(self, prefix + "SsmCommand", value=Fn.sub(
                "aws ssm start-session --target ${%s} --region ${AWS::Region}" % inst))
