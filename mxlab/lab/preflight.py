"""Pre-flight for `mxlab up`: will the lab's instances launch at all?

Checked with read-only calls before anything is created (the alternative is a
deploy that fails after minutes, halfway, and rolls back):
- The instance type is offered in the AZ the lab uses (DescribeInstanceTypeOfferings).
  A new lab takes the region's first AZ (what the template's Fn::GetAZs picks) or,
  when that one lacks the type, the first AZ that offers it, handed to the CDK app
  as the `availability_zone` context; a deployed lab keeps its AZ (a subnet that
  moves is replaced, and every host with it).
- No host of a deployed lab was terminated outside CloudFormation (a deadline with
  expiry_action=terminate): a deploy cannot recreate it, `mxlab down` then `up` can.
- The account's on-demand vCPU quota for the type's family (Service Quotas, e.g.
  L-1216C47A standard, L-DB2E81BA G and VT, L-417A185B P) covers attendees x the
  type's vCPUs plus the vCPUs of that family already running outside this lab.
  Spot instances have quotas of their own and are not counted.
- The image: the instance type's architecture runs it (a Graviton type with an x86_64 DLAMI
  passes synth, then fails at launch), volume_gb is at least its root snapshot, and root_device
  is its root device name (otherwise the lab's volume is a second, empty disk and the root
  stays at the snapshot's size). From DescribeImages of the AMI the lab will use.
- A new lab's VPC and internet gateway fit the region's quotas (5 each by default).
A shortfall raises PreflightError naming the quota, the need and how to raise it.
"""
import json
import logging
import re
from dataclasses import dataclass, field

from mxlab.lab import aws
from mxlab.errors import AwsAccessDenied, MxlabError
from cdk import outputs as stack_outputs

log = logging.getLogger(__name__)

# (quota code, quota name as Service Quotas shows it, instance families it counts)
VCPU_QUOTAS = (
    ("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
     {"a", "c", "d", "h", "i", "m", "r", "t", "z", "im", "is"}),
    ("L-DB2E81BA", "Running On-Demand G and VT instances", {"g", "gr", "vt"}),
    ("L-417A185B", "Running On-Demand P instances", {"p"}),
    ("L-1945791B", "Running On-Demand Inf instances", {"inf"}),
    ("L-2C3B7624", "Running On-Demand Trn instances", {"trn"}),
    ("L-6E869C2A", "Running On-Demand DL instances", {"dl"}),
    ("L-74FC7D96", "Running On-Demand F instances", {"f"}),
    ("L-7295265B", "Running On-Demand X instances", {"x"}),
    ("L-F7808C92", "Running On-Demand HPC instances", {"hpc"}),
    ("L-43DA4232", "Running On-Demand High Memory instances", {"u"}),
)
# (quota code, name, what a new lab adds): Service Quotas' "vpc" service
NETWORK_QUOTAS = (
    ("L-F678F1CE", "VPCs per Region", "describe_vpcs", "Vpcs"),
    ("L-A4707A72", "Internet gateways per Region", "describe_internet_gateways", "InternetGateways"),
)
FIRST_SUBNET = "LabPublicSubnet"  # cdk/network.py: the subnet that fixes the lab's AZ


class PreflightError(MxlabError):
    """`mxlab up` would fail: nothing was created. The message says what to change."""


@dataclass
class Preflight:
    region: str
    availability_zone: str
    context: dict = field(default_factory=dict)  # to add to the CDK context
    lines: list = field(default_factory=list)  # what was checked, for the operator


def family_of(instance_type):
    return re.match(r"[a-z]+", instance_type).group(0)


def quota_for(instance_type):
    """(code, name, families) of the vCPU quota that counts this type, or None."""
    family = family_of(instance_type)
    for quota in VCPU_QUOTAS:
        if family in quota[2]:
            return quota
    return None


def check(session, config, stack):
    """Run the checks for a validated cdk LabConfig; return a Preflight or raise PreflightError."""
    region = config.region or session.region_name
    ec2 = session.client("ec2", region_name=region, config=aws.retry_config())
    cfn = session.client("cloudformation", region_name=region, config=aws.retry_config())
    result = Preflight(region=region, availability_zone="")
    _check_no_host_terminated(ec2, cfn, stack)
    _choose_zone(ec2, cfn, config, stack, result)
    _check_image(session, ec2, config, result)
    _check_vcpus(session, ec2, config, stack, result)
    if not _deployed(cfn, stack):
        _check_network_quotas(session, ec2, result)
    return result


# -- a deployed lab whose hosts were terminated -------------------------------------

GONE_STATES = ("shutting-down", "terminated")


def _check_no_host_terminated(ec2, cfn, stack):
    """Refuse a deploy that cannot bring the lab back.

    An instance terminated outside CloudFormation (the deadline with expiry_action=terminate, or
    by hand) is still the stack's resource as far as CloudFormation knows: an update never
    recreates it, so the attendee has no host whatever `mxlab up` deploys.
    """
    import botocore.exceptions

    instances = {}  # instance id -> attendee label
    for name in _lab_stack_names(cfn, stack):
        try:
            for res in _pages(cfn, "list_stack_resources", "StackResourceSummaries", StackName=name):
                if res["ResourceType"] == "AWS::EC2::Instance" and res.get("PhysicalResourceId"):
                    number = re.match(r"Attendee(\d+)Instance$", res["LogicalResourceId"])
                    instances[res["PhysicalResourceId"]] = (
                        "attendee-%s" % number.group(1) if number else res["LogicalResourceId"])
        except botocore.exceptions.ClientError:
            continue  # no such stack (a new lab, or a shard still to come)
    if not instances:
        return
    alive = set()
    # A filter, not InstanceIds: an id AWS has forgotten (terminated a while ago) fails the whole call.
    for reservation in _pages(ec2, "describe_instances", "Reservations",
                              Filters=[{"Name": "instance-id", "Values": sorted(instances)}]):
        for instance in reservation["Instances"]:
            if instance["State"]["Name"] not in GONE_STATES:
                alive.add(instance["InstanceId"])
    gone = sorted((label for iid, label in instances.items() if iid not in alive),
                  key=lambda label: (len(label), label))
    if gone:
        raise PreflightError(
            "lab %s: the instance%s of %s %s terminated (expiry_action=terminate at the deadline, or "
            "by hand). CloudFormation does not recreate what was deleted outside it, so `mxlab up` "
            "cannot bring %s back: run `mxlab down`, then `mxlab up` (new hosts, with new keys and "
            "addresses: `mxlab prepare` and `mxlab handout` again)"
            % (stack, "s" if len(gone) > 1 else "", ", ".join(gone), "were" if len(gone) > 1 else "was",
               "them" if len(gone) > 1 else "it"))


def _lab_stack_names(cfn, stack):
    """The deployed lab's stacks (its LabStacks output), or [] for a lab not deployed."""
    import botocore.exceptions

    try:
        (first,) = cfn.describe_stacks(StackName=stack)["Stacks"]
    except (botocore.exceptions.ClientError, ValueError):
        return []
    if first.get("StackStatus") == "DELETE_COMPLETE":
        return []
    outputs = {o["OutputKey"]: o["OutputValue"] for o in first.get("Outputs", [])}
    return [n for n in outputs.get(stack_outputs.STACKS, stack).split(",") if n] or [stack]


# -- where the instances go -------------------------------------------------------

def _choose_zone(ec2, cfn, config, stack, result):
    itype = config.instance_type
    offered = _zones_offering(ec2, itype, result.region)
    zones = _available_zones(ec2)
    deployed, literal = _deployed_zone(ec2, cfn, stack)
    if config.availability_zone:
        zone = config.availability_zone
        if deployed and deployed != zone:
            raise PreflightError(
                "lab %s is deployed in %s; availability_zone=%s would replace its subnet and every "
                "host: leave it out (or set %s), or run `mxlab down` first" % (stack, deployed, zone, deployed))
        how = "availability_zone"
    elif deployed:
        zone, how = deployed, "where the lab is deployed"
        if literal:  # keep the template's subnet exactly as deployed
            result.context["availability_zone"] = zone
    else:
        zone, how = (zones or sorted(offered))[0], "the region's first"
        if zone not in offered:
            zone, how = sorted(offered & set(zones) or offered)[0], \
                "the first that offers %s (%s does not)" % (itype, zone)
            result.context["availability_zone"] = zone
    if zone not in offered:
        raise PreflightError(
            "instance_type=%s is not offered in %s (%s); it is in %s. %s"
            % (itype, zone, how, ", ".join(sorted(offered)),
               "Choose another -c instance_type, or `mxlab down` and deploy again "
               "(a new lab picks an AZ that offers it)" if deployed else
               "Give -c availability_zone=<one of those>, or another -c instance_type"))
    result.availability_zone = zone
    result.lines.append("pre-flight: %s is offered in %s (%s)" % (itype, zone, how))


def _zones_offering(ec2, itype, region):
    """The availability zones of the region that offer `itype`; none at all is a PreflightError."""
    offered = {o["Location"] for o in _pages(
        ec2, "describe_instance_type_offerings", "InstanceTypeOfferings",
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [itype]}])}
    if not offered:
        raise PreflightError(
            "instance_type=%s is not offered in any availability zone of %s "
            "(DescribeInstanceTypeOfferings): choose another -c instance_type, or another "
            "region (--region / -c region=...)" % (itype, region))
    return offered


def _available_zones(ec2):
    """The region's available availability zones (not Local or Wavelength Zones), sorted."""
    return sorted(z["ZoneName"] for z in ec2.describe_availability_zones(
        Filters=[{"Name": "zone-type", "Values": ["availability-zone"]},
                 {"Name": "state", "Values": ["available"]}])["AvailabilityZones"])


def _deployed_zone(ec2, cfn, stack):
    """(AZ of the deployed lab's first subnet, whether its template names it literally), or (None, False)."""
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs (botocore costs ~0.2 s)

    try:
        resource = cfn.describe_stack_resource(StackName=stack, LogicalResourceId=FIRST_SUBNET)
        subnet_id = resource["StackResourceDetail"]["PhysicalResourceId"]
        (subnet,) = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
    except (botocore.exceptions.ClientError, ValueError, KeyError):
        return None, False  # no such stack (a new lab) or no such subnet
    body = cfn.get_template(StackName=stack).get("TemplateBody")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            import yaml  # the CDK CLI sends YAML (long-form Fn::, no tags)
            body = yaml.safe_load(body)
    try:
        zone = body["Resources"][FIRST_SUBNET]["Properties"]["AvailabilityZone"]
    except (KeyError, TypeError):
        zone = None
    return subnet["AvailabilityZone"], isinstance(zone, str)


# -- the image the instances boot ---------------------------------------------------

def _lab_image(session, ec2, config, region):
    """(image id, how the lab names it) of the AMI the lab's instances will boot, or (None, why)."""
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs

    if config.ami_id:
        return config.ami_id, "ami_id"
    if config.ami_name:
        images = ec2.describe_images(Owners=["amazon"], Filters=[
            {"Name": "name", "Values": [config.ami_name]}])["Images"]
        if not images:
            raise PreflightError("ami_name=%s: no Amazon image of that name in %s"
                                 % (config.ami_name, region))
        return max(images, key=lambda i: i.get("CreationDate", ""))["ImageId"], "ami_name"
    ssm = session.client("ssm", region_name=region, config=aws.retry_config())
    try:
        value = ssm.get_parameter(Name=config.ami_ssm_parameter)["Parameter"]["Value"]
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise PreflightError(
                "ami_ssm_parameter=%s does not exist in %s: the deploy would fail on it. Check the "
                "name and the region" % (config.ami_ssm_parameter, region)) from None
        return None, "could not read %s (%s)" % (config.ami_ssm_parameter,
                                                  exc.response.get("Error", {}).get("Code"))
    return value, config.ami_ssm_parameter


def _check_image(session, ec2, config, result):
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs

    image_id, how = _lab_image(session, ec2, config, result.region)
    if image_id is None:
        result.lines.append("pre-flight: the image was not checked: %s" % how)
        return
    try:
        (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    except (botocore.exceptions.ClientError, ValueError) as exc:
        raise PreflightError("the lab's image %s (%s) cannot be described in %s: %s"
                             % (image_id, how, result.region, exc)) from None
    itype = config.instance_type
    (described,) = ec2.describe_instance_types(InstanceTypes=[itype])["InstanceTypes"]
    supported = described["ProcessorInfo"]["SupportedArchitectures"]
    name = image.get("Name") or image_id
    if image.get("Architecture") not in supported:
        raise PreflightError(
            "instance_type=%s runs %s, but the lab's image %s (%s) is %s: the launch would fail. "
            "Choose a type of that architecture (e.g. m5.2xlarge or g4dn.xlarge for x86_64) or an "
            "image for %s" % (itype, "/".join(supported), image_id, name,
                               image.get("Architecture"), "/".join(supported)))
    root = image.get("RootDeviceName")
    if root and root != config.root_device:
        raise PreflightError(
            "root_device=%s, but the image %s (%s) boots from %s: volume_gb would be a second, empty "
            "disk and the root would stay at the snapshot's size. Give -c root_device=%s"
            % (config.root_device, image_id, name, root, root))
    snapshot_gb = next((m["Ebs"].get("VolumeSize") for m in image.get("BlockDeviceMappings", [])
                        if m.get("DeviceName") == root and "Ebs" in m), None)
    if snapshot_gb and config.volume_gb < snapshot_gb:
        raise PreflightError(
            "volume_gb=%d is smaller than the root snapshot of the image %s (%s): %d GB; EC2 refuses "
            "the launch. Give -c volume_gb=%d or more" % (config.volume_gb, image_id, name,
                                                          snapshot_gb, snapshot_gb))
    result.lines.append("pre-flight: image %s (%s, %s, root %s %s GB) runs on %s"
                        % (image_id, name, image.get("Architecture"), root, snapshot_gb, itype))


# -- a new lab's network ------------------------------------------------------------

def _deployed(cfn, stack):
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs

    try:
        return bool(cfn.describe_stacks(StackName=stack)["Stacks"])
    except botocore.exceptions.ClientError:
        return False


def _check_network_quotas(session, ec2, result):
    for code, name, method, key in NETWORK_QUOTAS:
        limit = _quota_value(session, result.region, code, service="vpc")
        if limit is None:
            result.lines.append("pre-flight: could not read the quota %s (%s); not checked" % (name, code))
            continue
        existing = len(list(_pages(ec2, method, key)))
        if existing + 1 > limit:
            raise PreflightError(
                "pre-flight: the lab needs one more of \"%s\" (%s) in %s, and %d of %d exist. Nothing "
                "was created. Delete an unused one, or ask AWS to raise it (`aws service-quotas "
                "request-service-quota-increase --service-code vpc --quota-code %s --desired-value %d "
                "--region %s`)" % (name, code, result.region, existing, int(limit), code,
                                   existing + 1, result.region))
        result.lines.append("pre-flight: %s: %d of %d used, the lab adds 1 (%s)"
                            % (name, existing, int(limit), code))


# -- how many vCPUs the account may run -------------------------------------------

def _check_vcpus(session, ec2, config, stack, result):
    itype = config.instance_type
    quota = quota_for(itype)
    if quota is None:
        result.lines.append("pre-flight: no vCPU quota check for the %s family" % family_of(itype))
        return
    code, name, families = quota
    per_instance = _vcpus(ec2, [itype])[itype]
    need = config.attendees * per_instance
    running = _running_elsewhere(ec2, families, stack)
    limit = _quota_value(session, result.region, code)
    if limit is None:
        result.lines.append("pre-flight: could not read the quota %s (%s); not checked" % (name, code))
        return
    if need + running > limit:
        wanted = int(need + running)
        raise PreflightError(
            "pre-flight: %d x %s need %d vCPUs of the quota \"%s\" (%s) in %s, and %d of its vCPUs "
            "already run outside this lab: %d > %d allowed. Nothing was created. Ask AWS to raise it "
            "(Service Quotas console > Amazon EC2 > \"%s\" > Request increase, or `aws service-quotas "
            "request-service-quota-increase --service-code ec2 --quota-code %s --desired-value %d "
            "--region %s`), or use fewer attendees or a smaller instance_type; "
            "`mxlab up --skip-preflight` skips these checks"
            % (config.attendees, itype, need, name, code, result.region, running, wanted,
               int(limit), name, code, wanted, result.region))
    result.lines.append("pre-flight: %d vCPUs needed + %d running elsewhere <= %d (%s, %s)"
                        % (need, running, int(limit), code, name))


def _vcpus(ec2, instance_types):
    found = {}
    types = sorted(set(instance_types))
    for start in range(0, len(types), 100):
        for t in ec2.describe_instance_types(InstanceTypes=types[start:start + 100])["InstanceTypes"]:
            found[t["InstanceType"]] = t["VCpuInfo"]["DefaultVCpus"]
    return found


def _running_elsewhere(ec2, families, stack):
    """vCPUs of running/pending instances of these families that are not this lab's.

    The lab's own (its stack tag, or CloudFormation's stack-name tag of <stack> or a
    shard <stack>-k) stay as they are when `up` runs again: not counted twice.
    """
    shard = re.compile(re.escape(stack) + r"(-\d+)?$")
    counted = []
    for reservation in _pages(ec2, "describe_instances", "Reservations", Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running"]}]):
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            ours = (tags.get("stack") == stack
                    or shard.match(tags.get("aws:cloudformation:stack-name", "")))
            if instance.get("InstanceLifecycle") == "spot":
                continue  # spot instances count against the spot quotas, not on-demand
            if not ours and family_of(instance["InstanceType"]) in families:
                counted.append(instance["InstanceType"])
    if not counted:
        return 0
    vcpus = _vcpus(ec2, counted)
    return sum(vcpus.get(t, 0) for t in counted)


def _quota_value(session, region, code, service="ec2"):
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs (botocore costs ~0.2 s)

    quotas = session.client("service-quotas", region_name=region, config=aws.retry_config())
    for call in (quotas.get_service_quota, quotas.get_aws_default_service_quota):
        try:
            return float(call(ServiceCode=service, QuotaCode=code)["Quota"]["Value"])
        except AwsAccessDenied as exc:  # no servicequotas:GetServiceQuota: the check is skipped, said why
            log.warning("pre-flight: %s", exc)
            return None
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchResourceException":
                return None
    return None


def _pages(client, method, key, **kwargs):
    if client.can_paginate(method):
        for page in client.get_paginator(method).paginate(**kwargs):
            yield from page.get(key, [])
    else:
        yield from getattr(client, method)(**kwargs).get(key, [])
