"""The Deep Learning AMI as the emulator shows it, and images a test needs.

moto's own AMIs are Amazon Linux images (the first one sorted is an arm64 AL2023 with /dev/xvda)
and every moto AMI claims a 15 GB root snapshot, so mxlab's pre-flight could not check what real
AWS decides at launch: the instance type's architecture against the image's, the root device
name, and volume_gb against the root snapshot. register() adds an image with those facts; the
emulator's stand-in for the DLAMI (behind the public SSM parameter) is an x86_64 Ubuntu image
with its root on /dev/sda1 and a ROOT_SNAPSHOT_GB snapshot, as the DLAMI has. AWS publishes the DLAMI's
parameter in every commercial region: install() makes it appear in any region the first time it is read.
"""
import itertools

DLAMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261201 (emulated)"
# The stand-in's root snapshot: the lab's default volume_gb (75) fits it, as on the real DLAMI
# (the pre-flight reads the real one's size from DescribeImages).
ROOT_SNAPSHOT_GB = 75
_numbers = itertools.count(1)


def _image_class():
    from moto.ec2.models.amis import Ami

    class SizedAmi(Ami):
        """An AMI whose root snapshot has the size it was registered with (moto says 15)."""

        @property
        def block_device_mappings(self):
            mappings = super().block_device_mappings
            for mapping in mappings:
                mapping["Ebs"]["VolumeSize"] = self.mxlab_root_gb
            return mappings
    return SizedAmi


def register(backend, name, architecture="x86_64", root_device_name="/dev/sda1",
             root_gb=ROOT_SNAPSHOT_GB):
    """Add a public Amazon image to moto's EC2 backend of one region; returns its id."""
    ami_id = "ami-%017x" % (0x0dee9000000000000 + next(_numbers))
    image = _image_class()(backend, ami_id, name=name, architecture=architecture,
                           root_device_name=root_device_name, root_device_type="ebs",
                           virtualization_type="hvm", public=True, owner_alias="amazon",
                           owner_id="898082745236", hypervisor="xen")
    image.mxlab_root_gb = root_gb
    backend.amis[ami_id] = image
    return ami_id


def deep_learning_ami(backend):
    """The id of the backend's DLAMI stand-in, registered on first use (a reset backend forgets it)."""
    for ami_id, image in backend.amis.items():
        if image.name == DLAMI_NAME:
            return ami_id
    return register(backend, DLAMI_NAME)




def publish(account_id, region, parameter_name):
    """The DLAMI stand-in registered in `region` and its public parameter put there (once)."""
    from moto.core.utils import utcnow
    from moto.ec2.models import ec2_backends
    from moto.ssm.models import Parameter, ssm_backends
    params = ssm_backends[account_id][region]._parameters
    if params.get(parameter_name):
        return
    image_id = deep_learning_ami(ec2_backends[account_id][region])
    params[parameter_name].append(Parameter(
        account_id=account_id, name=parameter_name, value=image_id, parameter_type="String",
        description=None, allowed_pattern=None, keyid=None, last_modified_date=utcnow(),
        version=len(params[parameter_name]) + 1, data_type="aws:ec2:image"))


def install(parameter_name):
    """Patch moto; emulator.install_extensions() calls it, once per process."""
    from moto.ssm.models import SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.get_parameter

    def get_parameter(self, name, *args, **kwargs):
        if name == parameter_name:
            publish(self.account_id, self.region_name, parameter_name)
        return original(self, name, *args, **kwargs)
    SimpleSystemManagerBackend.get_parameter = get_parameter
