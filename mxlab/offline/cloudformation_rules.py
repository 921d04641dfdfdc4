"""CloudFormation update rules that real AWS enforces and moto 5.2.5 does not.

- A subnet whose CidrBlock, AvailabilityZone or VpcId changes is replaced, and
  CloudFormation creates the replacement first: a new CIDR that overlaps any
  subnet of the VPC (the old one included) fails with InvalidSubnet.Conflict.
  moto silently "updates" it.
- An export that another stack imports (Fn::ImportValue) cannot change value
  or go away: neither by an update of the exporting stack ("Export X cannot be
  updated/deleted as it is in use by Y") nor by deleting that stack. moto lets
  both through.

- An AWS::EC2::SecurityGroup whose rules change is updated in place (its id and every instance
  that uses it stay), as AWS does; only a new GroupName, GroupDescription or VpcId replaces it.
  moto deletes and recreates it on every update, which replaced the lab's hosts for a changed
  ssh_cidr.

- Stack tags (the lab's project/stack, cdk/lab_stack.py) go on every EC2
  resource the stack creates, with CloudFormation's own aws:cloudformation:*
  tags; moto does that only for CreateStack, not for change sets (`cdk deploy`).

A refused update leaves the stack as it was, in UPDATE_ROLLBACK_COMPLETE with
the reason in its events (what the CDK CLI and waiters read); a refused delete
leaves it in DELETE_FAILED. Both through UpdateStack and change sets (`cdk
deploy`). install() patches moto's CloudFormation backend once per process;
the emulator calls it after its own patches.
"""
import ipaddress
import json


# Properties whose change replaces an AWS::EC2::Subnet (CloudFormation docs).
SUBNET_REPLACING = ("CidrBlock", "AvailabilityZone", "AvailabilityZoneId", "VpcId",
                    "Ipv4IpamPoolId", "Ipv4NetmaskLength")


class Refused(Exception):
    """An update or delete that CloudFormation would fail: (logical id, reason)."""

    def __init__(self, logical_id, reason):
        super().__init__(reason)
        self.logical_id = logical_id
        self.reason = reason


def install():
    """Patch moto; emulator.install_extensions() calls it, once per process."""
    _update_security_groups_in_place()
    _check_updates_and_deletes()
    _tag_what_change_sets_create()


def _check_updates_and_deletes():
    """Updates (UpdateStack, change sets) and deletes checked first, refused as AWS refuses them."""
    from moto.cloudformation import models as cf_models
    backend_class = cf_models.CloudFormationBackend
    original_execute = backend_class.execute_change_set
    original_update = backend_class.update_stack
    original_delete = backend_class.delete_stack

    def execute_change_set(self, change_set_name, stack_name=None):
        change_set = _change_set(self, change_set_name)
        if change_set is not None and change_set.change_set_type != "CREATE":
            stack = self.stacks[change_set.stack_id]
            try:
                check_update(self, stack, change_set.template_dict)
            except Refused as refused:
                _roll_back(stack, refused)
                change_set.execution_status = "EXECUTE_FAILED"
                return None
        return original_execute(self, change_set_name, stack_name)

    def update_stack(self, name, template, role_arn, parameters, tags):
        stack = self.get_stack(name)
        try:
            check_update(self, stack, stack.parse_template(template))
        except Refused as refused:
            _roll_back(stack, refused)
            return stack
        return original_update(self, name, template, role_arn, parameters, tags)

    def delete_stack(self, name_or_stack_id):
        for stack in list(self.stacks.values()):
            if name_or_stack_id in (stack.stack_id, stack.name):
                users = {name: _importers(self, stack, name) for name in _exports_of(self, stack)}
                for name, importers in sorted(users.items()):
                    if importers:
                        reason = ("Export %s cannot be deleted as it is in use by %s"
                                  % (name, ", ".join(importers)))
                        stack._add_stack_event("DELETE_IN_PROGRESS")
                        stack._add_stack_event("DELETE_FAILED", resource_status_reason=reason)
                        stack.status = "DELETE_FAILED"
                        return None
        return original_delete(self, name_or_stack_id)

    backend_class.execute_change_set = execute_change_set
    backend_class.update_stack = update_stack
    backend_class.delete_stack = delete_stack


def _tag_what_change_sets_create():
    """moto tags a stack's EC2 resources for CreateStack only; a change set's get them too."""
    from moto.cloudformation import parsing
    original_map_update = parsing.ResourceMap.update

    def update(self, template, parameters=None):
        before = set(self._parsed_resources)
        original_map_update(self, template, parameters)
        _tag_created(self, [k for k in self._parsed_resources if k not in before])
    parsing.ResourceMap.update = update


# Properties whose change replaces an AWS::EC2::SecurityGroup (CloudFormation docs).
SECURITY_GROUP_REPLACING = ("GroupName", "GroupDescription", "VpcId")


def _update_security_groups_in_place():
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.security_groups import SecurityGroup

    original = SecurityGroup.update_from_cloudformation_json.__func__

    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        properties = cloudformation_json["Properties"]
        old = getattr(original_resource, "_mxlab_properties", None)
        if old is None or any(old.get(k) != properties.get(k) for k in SECURITY_GROUP_REPLACING):
            group = original(cls, original_resource, new_resource_name, cloudformation_json,
                             account_id, region_name)
        else:
            group = original_resource
            backend = ec2_backends[account_id][region_name]
            group.ingress_rules = []
            for rule in properties.get("SecurityGroupIngress", []):
                backend.authorize_security_group_ingress(
                    group_name_or_id=group.id, ip_protocol=rule["IpProtocol"],
                    from_port=rule["FromPort"], to_port=rule["ToPort"],
                    ip_ranges=rule.get("CidrIp", []), source_groups=[], vpc_id=group.vpc_id)
        group._mxlab_properties = dict(properties)
        return group

    original_create = SecurityGroup.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        group = original_create(cls, resource_name, cloudformation_json, account_id, region_name,
                                **kwargs)
        group._mxlab_properties = dict(cloudformation_json["Properties"])
        return group

    SecurityGroup.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)
    SecurityGroup.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


def _tag_created(resource_map, logical_ids):
    """Stack tags on EC2 resources a change set created, as CreateStack puts them."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.core import TaggedEC2Resource
    tags = dict(resource_map.tags)
    tags["aws:cloudformation:stack-name"] = resource_map["AWS::StackName"]
    tags["aws:cloudformation:stack-id"] = resource_map["AWS::StackId"]
    ec2 = ec2_backends[resource_map._account_id][resource_map._region_name]
    for logical_id in logical_ids:
        resource = resource_map._parsed_resources.get(logical_id)
        if isinstance(resource, TaggedEC2Resource):
            ec2.create_tags([resource.physical_resource_id],
                            dict(tags, **{"aws:cloudformation:logical-id": logical_id}))


def check_update(backend, stack, new_template):
    """Raise Refused if CloudFormation would fail updating `stack` to `new_template`."""
    old = stack.resource_map._resource_json_map or {}
    new = new_template.get("Resources", {})
    replaced = set()
    for logical_id, resource in new.items():
        if resource.get("Type") != "AWS::EC2::Subnet":
            continue
        before = old.get(logical_id)
        props = resource.get("Properties", {})
        if before is not None and all(before.get("Properties", {}).get(k) == props.get(k)
                                      for k in SUBNET_REPLACING):
            continue  # unchanged, or changed in place
        if before is not None:
            replaced.add(logical_id)
        _check_subnet_cidr(stack, logical_id, props)
    _check_exports(backend, stack, new_template, replaced)


def _check_subnet_cidr(stack, logical_id, props):
    from moto.cloudformation.parsing import clean_json
    from moto.ec2.models import ec2_backends
    cidr = clean_json(props.get("CidrBlock"), stack.resource_map)
    vpc_id = clean_json(props.get("VpcId"), stack.resource_map)
    if not isinstance(cidr, str) or not isinstance(vpc_id, str):
        return
    ec2 = ec2_backends[stack.account_id][stack.region_name]
    new = ipaddress.ip_network(cidr, strict=False)
    for subnet in ec2.describe_subnets(filters={"vpc-id": [vpc_id]}):
        if new.overlaps(ipaddress.ip_network(subnet.cidr_block)):
            # the message EC2 gives, as CloudFormation reports it
            raise Refused(logical_id, "The CIDR '%s' conflicts with another subnet (Service: Ec2, "
                                      "Status Code: 400, Error Code: InvalidSubnet.Conflict)" % cidr)


def _check_exports(backend, stack, new_template, replaced):
    current = _exports_of(backend, stack)
    if not current:
        return
    old_outputs = stack.template_dict.get("Outputs") or {}
    old_by_name = {name: value for name, value in _export_values(old_outputs, stack)}
    new_by_name = dict(_export_values(new_template.get("Outputs") or {}, stack))
    for name in sorted(current):
        importers = _importers(backend, stack, name)
        if not importers:
            continue
        if name not in new_by_name:
            raise Refused(stack.name, "Export %s cannot be deleted as it is in use by %s"
                          % (name, ", ".join(importers)))
        value = new_by_name[name]
        if value != old_by_name.get(name) or _refers_to(value, replaced):
            raise Refused(stack.name, "Export %s cannot be updated as it is in use by %s"
                          % (name, ", ".join(importers)))


def _export_values(outputs, stack):
    """(export name, the output's Value as written) of a template's Outputs."""
    from moto.cloudformation.parsing import clean_json
    for output in outputs.values():
        export = (output or {}).get("Export")
        if export:
            yield clean_json(export.get("Name"), stack.resource_map), output.get("Value")


def _refers_to(value, logical_ids):
    text = json.dumps(value)
    return any('"Ref": "%s"' % i in text or '["%s",' % i in text or "${%s" % i in text
               for i in logical_ids)


def _exports_of(backend, stack):
    return {name for name, export in backend.exports.items()
            if export.exporting_stack_id == stack.stack_id}


def _importers(backend, exporting, export_name):
    """Names of the other live stacks whose template imports `export_name`."""
    names = []
    for other in backend.stacks.values():
        if other.stack_id == exporting.stack_id or other.status.startswith("DELETE_COMPLETE"):
            continue
        if export_name in _imported_names(getattr(other, "template_dict", None) or {}):
            names.append(other.name)
    return sorted(names)


def _imported_names(node):
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::ImportValue" and isinstance(value, str):
                found.add(value)
            else:
                found |= _imported_names(value)
    elif isinstance(node, list):
        for item in node:
            found |= _imported_names(item)
    return found


def _change_set(backend, name):
    if name in backend.change_sets:
        return backend.change_sets[name]
    for change_set in backend.change_sets.values():
        if change_set.change_set_name == name:
            return change_set
    return None


def _roll_back(stack, refused):
    """What CloudFormation leaves after a failed update: nothing changed, the reason told."""
    from moto.cloudformation.models import Event
    stack._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    stack.events.append(Event(
        stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=refused.logical_id,
        physical_resource_id="", resource_type=_type_of(stack, refused.logical_id),
        resource_status="UPDATE_FAILED", resource_status_reason=refused.reason,
        resource_properties=None))
    stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=(
        "The following resource(s) failed to update: [%s]." % refused.logical_id))
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
    stack.status = "UPDATE_ROLLBACK_COMPLETE"


def _type_of(stack, logical_id):
    if logical_id == stack.name:
        return "AWS::CloudFormation::Stack"
    resources = stack.resource_map._resource_json_map or {}
    return resources.get(logical_id, {}).get("Type", "AWS::CloudFormation::Stack")
