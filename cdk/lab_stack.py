"""The lab's stacks: wire the four concerns and publish the outputs mxlab reads.

A bootstrap-free stack holds at most ATTENDEES_PER_STACK (20) attendees
(inline template <= 51,200 bytes, <= 200 outputs), so build_lab() splits a lab
of up to 100 attendees into shard stacks, deployed together (`cdk deploy --all`):

- LabStack `<stack_name>`: the one VPC (its subnets, IGW), the security group,
  the instance role and profile, the launch template (default SSM image), and
  attendees 1-20. With shards it exports the ids they need as
  `<stack_name>-SubnetId` (`-SubnetId2` from 60 attendees: see network.py),
  `-SecurityGroupId`, `-InstanceProfile` (and `-ImageTemplateId`), also
  outputs `LabSubnetId`... in the outputs file. An export, once made, keeps its
  value for every lab size (other stacks import it).
- LabShardStack `<stack_name>-k` (k = 2..5): attendees 20(k-1)+1 .. 20k, their
  key pairs, instances and idle alarms; it reads the network with
  Fn::ImportValue and depends on the first stack (deployed after it,
  destroyed before it).

Outputs contract, in every stack of the lab:
- `LabAttendees`: the lab's TOTAL attendee count (the same in every stack);
- `LabStacks`: the lab's stack names in deploy order, comma-separated
  ("MxnetLab" or "MxnetLab,MxnetLab-2"): read them all for every attendee;
- `LabSshUser`;
- `LabDeadline` (unless lifetime_hours=0): "<yyyy-mm-ddThh:mm:ss>Z <stop|terminate>",
  when that stack's instances are stopped/terminated by its schedule (deadline.py);
- per attendee held by THAT stack, with the GLOBAL number n:
  `Attendee{n}InstanceId`, `…PublicIp`, `…PublicDns`, `…KeyPairId`,
  `…PrivateKeyParameter` (`mxlab ssh --attendee n` is the ssh command: the ready-made
  command outputs cost ~5 kB of the size-limited template).
So `cdk deploy --all --outputs-file F` writes
{"MxnetLab": {…Attendee1..20…}, "MxnetLab-2": {…Attendee21..40…}}.
"""
from aws_cdk import (Annotations, CfnOutput, Fn, LegacyStackSynthesizer, Stack)
from cdk_nag import NagSuppressions
from constructs import Construct

from cdk.access import LabAccess, attendee_key_pairs
from cdk import outputs
from cdk.config import LabConfig
from cdk.cost_guard import LabCostGuard
from cdk.deadline import LabDeadline, deadline_output
from cdk.instances import LabImage, LabInstances
from cdk.network import LabNetwork, subnet_index, subnet_plan


def build_lab(scope: Construct, config: LabConfig, **kwargs) -> list:
    """All the lab's stacks, first one first (kwargs: Stack props, e.g. env)."""
    shards = config.shards
    first = LabStack(scope, shards[0][0], config=config, **kwargs)
    stacks = [first]
    for name, numbers in shards[1:]:
        stacks.append(LabShardStack(scope, name, config=config, first=first,
                                    numbers=numbers, **kwargs))
    return stacks


class _LabStackBase(Stack):
    def __init__(self, scope, construct_id, *, config: LabConfig, **kwargs):
        # Workshop accounts are often fresh: the legacy synthesizer deploys the
        # template inline with the caller's credentials, no `cdk bootstrap`.
        kwargs.setdefault("synthesizer", LegacyStackSynthesizer())
        # Stack tags: CloudFormation puts them on every resource it can tag (the
        # instances and, through them, their volumes), without the bytes of a
        # Tags entry per resource in the size-limited template.
        kwargs.setdefault("tags", {"project": "mxlab", "stack": config.stack_name})
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        for message in config.warnings:
            Annotations.of(self).add_warning_v2("mxlab:config", message)

    def _attendees(self, numbers, key_pairs, *, subnet_ids, security_group_id,
                   instance_profile_name, image) -> None:
        config = self.config
        instances = LabInstances(
            self, "Instances", config=config, numbers=numbers, subnet_ids=subnet_ids,
            security_group_id=security_group_id, key_pairs=key_pairs,
            instance_profile_name=instance_profile_name, image=image,
        )
        self.instances = instances.instances
        LabCostGuard(self, "CostGuard", config=config, instances=self.instances,
                     numbers=numbers)
        LabDeadline(self, "Deadline", config=config, instances=self.instances)
        self._outputs(numbers, key_pairs, self.instances)

    def _outputs(self, numbers, key_pairs, instances) -> None:
        """Keys of `cdk deploy --outputs-file`: a contract with mxlab/."""
        config = self.config
        CfnOutput(self, outputs.ATTENDEES, value=str(config.attendees))
        CfnOutput(self, outputs.STACKS, value=",".join(n for n, _ in config.shards))
        CfnOutput(self, outputs.SSH_USER, value=config.ssh_user)
        if deadline_output(config):
            CfnOutput(self, outputs.DEADLINE, value=deadline_output(config))
        for n, key, instance in zip(numbers, key_pairs, instances):
            inst = instance.logical_id
            CfnOutput(self, outputs.attendee(n, outputs.INSTANCE_ID), value=instance.ref)
            # Fn::Sub renders on one line: shorter than GetAtt (size limit).
            CfnOutput(self, outputs.attendee(n, outputs.PUBLIC_IP), value=Fn.sub("${%s.PublicIp}" % inst))
            CfnOutput(self, outputs.attendee(n, outputs.PUBLIC_DNS),
                      value=Fn.sub("${%s.PublicDnsName}" % inst))
            CfnOutput(self, outputs.attendee(n, outputs.KEY_PAIR_ID), value=key.key_pair_id)
            CfnOutput(self, outputs.attendee(n, outputs.PRIVATE_KEY_PARAMETER),
                      value=Fn.sub("/ec2/keypair/${%s.KeyPairId}" % key.node.default_child.logical_id))


class LabStack(_LabStackBase):
    """The first stack: network, security group, role, image, attendees 1-20."""

    def __init__(self, scope: Construct, construct_id: str, *, config: LabConfig,
                 **kwargs) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        numbers = config.shards[0][1]
        network = LabNetwork(self, "Network", hosts=config.attendees,
                             availability_zone=config.availability_zone)
        access = LabAccess(self, "Access", config=config, vpc=network.vpc)
        image = LabImage(self, "Image", config=config)
        self._attendees(
            numbers, access.key_pairs, subnet_ids=[network.subnet_id(n) for n in numbers],
            security_group_id=access.security_group.security_group_id,
            instance_profile_name=access.instance_profile.ref, image=image.kwargs)

        # What shard stacks import: short explicit export names (each shard
        # instance repeats them; the template size limit counts).
        self.exports = {}
        if len(config.shards) > 1:
            shared = [(planned.export_key, subnet_id)
                      for planned, subnet_id in zip(network.plan, network.subnet_ids)]
            shared += [("SecurityGroupId", access.security_group.security_group_id),
                       ("InstanceProfile", access.instance_profile.ref)]
            if image.template is not None:
                shared.append(("ImageTemplateId", image.template.ref))
            for key, value in shared:
                name = "%s-%s" % (config.stack_name, key)
                CfnOutput(self, "Lab" + key, value=value, export_name=name)
                self.exports[key] = name

        NagSuppressions.add_resource_suppressions(network.vpc, [{
            "id": "AwsSolutions-VPC7",
            "reason": "A short-lived lab VPC with SSH only from one CIDR; flow "
                      "logs would add a log group and role to every lab.",
        }])


class LabShardStack(_LabStackBase):
    """Attendees 21-40, 41-60...: instances in the first stack's VPC (imported)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: LabConfig,
                 first: LabStack, numbers: list, **kwargs) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        self.add_stack_dependency(first, "network, security group and role live there")
        imported = {key: Fn.import_value(name) for key, name in first.exports.items()}
        template_id = imported.get("ImageTemplateId")
        image = LabImage(self, "Image", config=config, launch_template_id=template_id)
        key_pairs = attendee_key_pairs(self, config, numbers)
        plan = subnet_plan(config.attendees)
        self._attendees(
            numbers, key_pairs,
            subnet_ids=[imported[plan[subnet_index(n)].export_key] for n in numbers],
            security_group_id=imported["SecurityGroupId"],
            instance_profile_name=imported["InstanceProfile"], image=image.kwargs)
