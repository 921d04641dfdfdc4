"""Instances: one Deep Learning AMI host per attendee, hardened by default.

LabImage picks the image (a launch template pinned at version 1 for the SSM
default, made once in the first stack and imported by shard stacks); LabInstances
makes the hosts of one stack, numbered with the lab's global attendee numbers.

L1 CfnInstance on purpose: the L2 Instance adds a launch template and an
instance profile per instance, which pushes a 30-attendee template past the
51,200-byte limit for inline (bootstrap-free) deploys.
"""
from aws_cdk import CfnParameter, CfnTag, Stack, aws_ec2 as ec2
from cdk_nag import NagSuppressions
from constructs import Construct

from cdk.config import LabConfig

# The pinned launch-template version: see LabImage._image's docstring.
PINNED_VERSION = "1"


class LabInstances(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: LabConfig,
                 numbers: list, subnet_ids: list, security_group_id: str,
                 key_pairs: list, instance_profile_name: str, image: dict) -> None:
        """numbers: the global attendee numbers of this stack; subnet_ids: each
        one's subnet (network.subnet_index); the ids are Refs in the first stack
        and Fn::ImportValue tokens in shard stacks; image: LabImage.kwargs
        (ImageId or the pinned launch template)."""
        super().__init__(scope, construct_id)
        _suppress_per_instance_findings(Stack.of(self))
        self.instances = [
            self._instance(n, config, subnet_id, security_group_id, key, instance_profile_name, image)
            for n, key, subnet_id in zip(numbers, key_pairs, subnet_ids)]

    def _instance(self, n, config, subnet_id, security_group_id, key, instance_profile_name, image):
        """Attendee n's host: IMDSv2 only, an encrypted gp3 root volume, tagged with its number."""
        instance = ec2.CfnInstance(
            self,
            "Attendee%dInstance" % n,
            instance_type=config.instance_type,
            subnet_id=subnet_id,  # public subnet: maps a public IP
            security_group_ids=[security_group_id],
            key_name=key.key_pair_name,
            iam_instance_profile=instance_profile_name,
            metadata_options=ec2.CfnInstance.MetadataOptionsProperty(
                http_tokens="required"),  # IMDSv2 only
            block_device_mappings=[ec2.CfnInstance.BlockDeviceMappingProperty(
                device_name=config.root_device,
                ebs=ec2.CfnInstance.EbsProperty(
                    volume_size=config.volume_gb, volume_type="gp3",
                    encrypted=True, delete_on_termination=True,
                ),
            )],
            propagate_tags_to_volume_on_creation=True,
            # with the stack's tags (project, stack: lab_stack.py)
            tags=[CfnTag(key="attendee", value=str(n))],
            **image,
        )
        instance.override_logical_id("Attendee%dInstance" % n)
        return instance


def _suppress_per_instance_findings(stack):
    """cdk-nag's per-instance findings the lab accepts, each with its reason."""
    # Suppressed once for the stack, not per instance: per-resource metadata
    # would cost ~300 bytes an attendee against the inline size limit.
    NagSuppressions.add_stack_suppressions(stack, [
        {"id": "AwsSolutions-EC28",
         "reason": "Basic 5-minute metrics are enough for the idle-stop "
                   "alarm; detailed monitoring costs per instance."},
        {"id": "AwsSolutions-EC29",
         "reason": "Lab hosts are disposable and removed by cdk destroy; "
                   "termination protection would block that."},
    ])


class LabImage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: LabConfig,
                 launch_template_id: str = None) -> None:
        """self.kwargs: CfnInstance image kwargs; self.template: the launch
        template made here (first stack, SSM image) or None. Shard stacks pass
        the first stack's launch_template_id (imported) instead of making one."""
        super().__init__(scope, construct_id)
        self.template = None
        if launch_template_id is not None:
            self.kwargs = _pinned(launch_template_id)
        else:
            self.kwargs = self._image(config)

    def _image(self, config: LabConfig) -> dict:
        """ImageId for the instances, or the launch template that pins it.

        An explicit ami_id, or ami_name (looked up at synth and cached in
        cdk.context.json), is a literal in the template: it changes only when the
        operator changes it. The SSM parameter (the default) resolves at deploy
        time, and re-resolves on every deploy: put straight on the instances, a
        newly published AMI would replace them all. So the image lives in a launch
        template and instances launch from its version 1: a later deploy that
        resolves a newer AMI only adds version 2; running hosts are kept.
        """
        if config.ami_id:
            return {"image_id": config.ami_id}
        if config.ami_name:
            image = ec2.MachineImage.lookup(name=config.ami_name, owners=["amazon"])
            return {"image_id": image.get_image(self).image_id}
        # The SSM-typed parameter MachineImage.from_ssm_parameter would make,
        # under a short id (it is written twice; template size limit).
        parameter = CfnParameter(
            self, "ImageIdParameter", type="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
            default=config.ami_ssm_parameter)
        parameter.override_logical_id("LabImageId")
        template = ec2.CfnLaunchTemplate(
            self,
            "ImageTemplate",
            launch_template_data=ec2.CfnLaunchTemplate.LaunchTemplateDataProperty(
                image_id=parameter.value_as_string,
            ),
        )
        template.override_logical_id("LabImageTemplate")
        self.template = template
        return _pinned(template.ref)


def _pinned(launch_template_id):
    return {"launch_template": ec2.CfnInstance.LaunchTemplateSpecificationProperty(
        launch_template_id=launch_template_id, version=PINNED_VERSION,
    )}
