"""IAM enforced in the emulator, as in an account where the organiser is a least-privilege user
(`mxlab sandbox --enforce-iam`).

moto 5.2.5 has IAM-like access control (moto/core/authorization.py, moto/iam/access_control.py):
once settings.INITIAL_NO_AUTH_ACTION_COUNT requests have been served (by default infinitely many:
never), each request must be signed with an IAM user's (or assumed role's) access key, and its
action allowed by that principal's identity policies (inline and attached, its groups' too; an
explicit Deny wins). moto reads the setting at every request, and the server runs in this
process: enable() switches it on at once. What moto does not do, and this module adds:

- Resources. moto checks every request against the resource "*" (IAM, STS and SQS aside), which
  no statement scoped to ARNs matches: a least-privilege policy would be refused everything. Here
  the requests mxlab and the CDK CLI make name their resources (CloudFormation stacks, SSM
  parameters, SSM Run Command's instances and document, EC2 instances, Service Quotas quotas),
  checked one by one.
- What a service does on the caller's behalf. moto's CloudFormation creates every resource without
  asking. Here it acts as the caller, or as the stack's service role (RoleARN, `cdk deploy
  --role-arn`): each resource it creates, updates or deletes needs the actions AWS's resource
  handlers call (HANDLER_ACTIONS), with iam:PassRole for a role handed to EC2 or the Scheduler,
  iam:CreateServiceLinkedRole for the account's first alarm with an EC2 action, ssm:GetParameters
  for the SSM-typed parameters it resolves, and the tagging actions for the stack's tags. A refusal
  fails the stack as CloudFormation does: a new one ROLLBACK_COMPLETE (nothing created), an update
  UPDATE_ROLLBACK_COMPLETE (nothing changed), a delete DELETE_FAILED, with AWS's reason in its events.
- EC2's refusal is UnauthorizedOperation (moto answers AccessDenied for every service); JSON
  services (SSM, Service Quotas, Scheduler) answer AccessDeniedException, with AWS's message.

Not checked (moto has no model of them): conditions (tag conditions such as aws:ResourceTag/stack,
iam:PassedToService, iam:AWSServiceName, iam:PolicyARN: moto compares StringEquals only against
request values it collects, none for identity policies), permission boundaries, SCPs, session
policies, resource-based and KMS key policies, and the role's trust policy for --role-arn.
"""
import json
import logging
import re
import threading

log = logging.getLogger(__name__)

_caller = threading.local()  # the access key of the CloudFormation request being served

# What CloudFormation's resource handlers call, per resource type: (create, update, delete).
# From the handlers' permissions in the CloudFormation resource schemas; the tagging actions go in
# TAG_ACTIONS (needed when the stack has tags), passed roles in _passed_roles().
HANDLER_ACTIONS = {
    "AWS::EC2::VPC": (["ec2:CreateVpc", "ec2:ModifyVpcAttribute"], ["ec2:ModifyVpcAttribute"], ["ec2:DeleteVpc"]),
    "AWS::EC2::Subnet": (["ec2:CreateSubnet", "ec2:ModifySubnetAttribute"], ["ec2:ModifySubnetAttribute"],
                         ["ec2:DeleteSubnet"]),
    "AWS::EC2::InternetGateway": (["ec2:CreateInternetGateway"], [], ["ec2:DeleteInternetGateway"]),
    "AWS::EC2::VPCGatewayAttachment": (["ec2:AttachInternetGateway"], ["ec2:AttachInternetGateway"],
                                       ["ec2:DetachInternetGateway"]),
    "AWS::EC2::RouteTable": (["ec2:CreateRouteTable"], [], ["ec2:DeleteRouteTable"]),
    "AWS::EC2::Route": (["ec2:CreateRoute"], ["ec2:ReplaceRoute"], ["ec2:DeleteRoute"]),
    "AWS::EC2::SubnetRouteTableAssociation": (["ec2:AssociateRouteTable"], ["ec2:AssociateRouteTable"],
                                              ["ec2:DisassociateRouteTable"]),
    "AWS::EC2::SecurityGroup": (["ec2:CreateSecurityGroup", "ec2:AuthorizeSecurityGroupIngress",
                                 "ec2:RevokeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupEgress"],
                                ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
                                ["ec2:DeleteSecurityGroup"]),
    "AWS::EC2::KeyPair": (["ec2:CreateKeyPair", "ssm:PutParameter"], [], ["ec2:DeleteKeyPair", "ssm:DeleteParameter"]),
    "AWS::EC2::LaunchTemplate": (["ec2:CreateLaunchTemplate"],
                                 ["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"],
                                 ["ec2:DeleteLaunchTemplate"]),
    "AWS::EC2::Instance": (["ec2:RunInstances"], ["ec2:ModifyInstanceAttribute"], ["ec2:TerminateInstances"]),
    "AWS::IAM::Role": (["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:GetRole"],
                       ["iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:UpdateAssumeRolePolicy"],
                       ["iam:ListRolePolicies", "iam:DeleteRolePolicy", "iam:ListAttachedRolePolicies",
                        "iam:DetachRolePolicy", "iam:DeleteRole"]),
    "AWS::IAM::InstanceProfile": (["iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile"],
                                  ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile"],
                                  ["iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"]),
    "AWS::CloudWatch::Alarm": (["cloudwatch:PutMetricAlarm"], ["cloudwatch:PutMetricAlarm"],
                               ["cloudwatch:DeleteAlarms"]),
    "AWS::Scheduler::Schedule": (["scheduler:CreateSchedule"], ["scheduler:UpdateSchedule"],
                                 ["scheduler:DeleteSchedule"]),
}
TAG_ACTIONS = {"ec2": "ec2:CreateTags", "iam-role": "iam:TagRole", "cloudwatch": "cloudwatch:TagResource"}
EVENTS_SERVICE_LINKED_ROLE = "role/aws-service-role/events.amazonaws.com/AWSServiceRoleForCloudWatchEvents"
_EC2_KIND = {"AWS::EC2::VPC": "vpc", "AWS::EC2::Subnet": "subnet", "AWS::EC2::InternetGateway": "internet-gateway",
             "AWS::EC2::VPCGatewayAttachment": "internet-gateway", "AWS::EC2::RouteTable": "route-table",
             "AWS::EC2::Route": "route-table", "AWS::EC2::SubnetRouteTableAssociation": "route-table",
             "AWS::EC2::SecurityGroup": "security-group", "AWS::EC2::KeyPair": "key-pair",
             "AWS::EC2::LaunchTemplate": "launch-template", "AWS::EC2::Instance": "instance"}
# EC2 actions whose resource is the instance (the others: "*", as EC2's Describe* are).
_INSTANCE_ACTIONS = ("StartInstances", "StopInstances", "TerminateInstances", "RebootInstances",
                     "GetConsoleOutput", "ModifyInstanceAttribute")
_JSON_SERVICES = ("ssm", "servicequotas", "scheduler")


def enabled():
    from moto import settings
    return settings.INITIAL_NO_AUTH_ACTION_COUNT != float("inf")


def enable():
    """Every request from now on is authenticated and authorized (this process's moto)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    install()
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0


def disable():
    from moto import settings
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")


class Denied(Exception):
    """An action the acting principal may not do: (action, resource, principal ARN)."""

    def __init__(self, action, resource, principal, logical_id=None, explicit=False):
        super().__init__(action)
        self.action, self.resource, self.principal, self.logical_id = action, resource, principal, logical_id
        self.explicit = explicit  # an explicit Deny, not just no Allow

    def message(self):
        why = ("with an explicit deny in an identity-based policy" if self.explicit else
               "because no identity-based policy allows the %s action" % self.action)
        return "User: %s is not authorized to perform: %s on resource: %s %s" % (
            self.principal, self.action, self.resource, why)


# ---- who acts, and what they may do ---------------------------------------------------------

class Principal:
    """An IAM user (by access key) or role (by ARN): its ARN and identity policies."""

    def __init__(self, account_id, partition, arn, policies):
        self.account_id, self.partition, self.arn, self.policies = account_id, partition, arn, policies

    @classmethod
    def of_access_key(cls, account_id, partition, access_key_id):
        from moto.iam.access_control import create_access_key
        key = create_access_key(account_id=account_id, partition=partition, access_key_id=access_key_id,
                                headers={})
        return cls(account_id, partition, key.arn, key.collect_policies())

    @classmethod
    def of_role(cls, account_id, partition, role_arn):
        from moto.iam.models import iam_backends
        backend = iam_backends[account_id][partition]
        name = role_arn.split("/")[-1]
        policies = [backend.get_role_policy(name, p)[1] for p in backend.list_role_policies(name)]
        policies += backend.list_attached_role_policies(name)[0]
        return cls(account_id, partition, role_arn, policies)

    def check(self, action, resource, logical_id=None):
        """As moto's IAMRequest.check_action_permitted: an explicit Deny wins, else some Allow is needed."""
        from moto.iam.access_control import IAMPolicy, PermissionResult
        permitted = False
        for policy in self.policies:
            result = IAMPolicy(policy).is_action_permitted(action, resource)
            if result == PermissionResult.DENIED:
                raise Denied(action, resource, self.arn, logical_id, explicit=True)
            permitted = permitted or result == PermissionResult.PERMITTED
        if not permitted:
            raise Denied(action, resource, self.arn, logical_id)


# ---- the resources of a request ---------------------------------------------------------------

def request_resources(response):
    """The ARNs a request acts on, as AWS authorizes it; [] for "whatever moto says"."""
    from moto.utilities.utils import get_partition
    service = getattr(response, "service_name", "")
    action = response._get_action()
    region, account = response.region, response.current_account
    partition = get_partition(region)
    arn = lambda svc, res, acct=account: "arn:%s:%s:%s:%s:%s" % (partition, svc, region, acct, res)  # noqa: E731
    if service == "cloudformation":
        stack = _cfn_stack_arn(response, account, region)
        return [stack] if stack else []
    if service == "ssm" and action == "SendCommand":  # the instances and the document it runs
        document = response._get_param("DocumentName") or ""
        return [arn("ec2", "instance/%s" % i) for i in response._get_param("InstanceIds") or []] + \
            [arn("ssm", "document/%s" % document, "" if document.startswith("AWS-") else account)]
    if service == "ssm":
        names = response._get_param("Names") or ([response._get_param("Name")] if response._get_param("Name") else [])
        return [arn("ssm", "parameter/" + n.lstrip("/"), "" if n.startswith("/aws/") else account) for n in names]
    if service == "ec2" and action in _INSTANCE_ACTIONS:
        ids = response._get_param("InstanceIds") or [response._get_param("InstanceId")]
        return [arn("ec2", "instance/%s" % i) for i in ids if i]
    if service == "service-quotas" and response._get_param("QuotaCode"):
        return [arn("servicequotas", "%s/%s" % (response._get_param("ServiceCode"), response._get_param("QuotaCode")))]
    return []


def _cfn_stack_arn(response, account, region):
    from moto.cloudformation.models import cloudformation_backends
    backend = cloudformation_backends[account][region]
    name = response._get_param("StackName")
    change_set = response._get_param("ChangeSetName")
    if not name and change_set and change_set in backend.change_sets:
        return backend.change_sets[change_set].stack_id
    if not name:
        return None  # DescribeStacks of every stack, ListStacks: "*"
    if name.startswith("arn:"):
        return name
    for stack in backend.stacks.values():
        if stack.name == name:
            return stack.stack_id
    from moto.utilities.utils import get_partition
    return "arn:%s:cloudformation:%s:%s:stack/%s/new" % (get_partition(region), region, account, name)


# ---- what CloudFormation does as the caller (or its service role) -------------------------------

def _acting(stack, role_arn=None):
    from moto.utilities.utils import get_partition
    partition = get_partition(stack.region_name)
    role_arn = role_arn or stack.role_arn
    if role_arn:
        return Principal.of_role(stack.account_id, partition, role_arn)
    return _calling(stack)


def _calling(stack):
    """The principal whose CloudFormation request is being served, or None."""
    from moto.utilities.utils import get_partition
    key = getattr(_caller, "access_key", None)
    return Principal.of_access_key(stack.account_id, get_partition(stack.region_name), key) if key else None


def _physical(stack, logical_id, resource_type):
    """The resource's name or id as deployed, else the name CloudFormation would give it."""
    resource = (stack.resource_map._parsed_resources or {}).get(logical_id)
    physical = getattr(resource, "physical_resource_id", None)
    if isinstance(physical, str) and physical:
        return physical
    return "%s-%s-NEW" % (stack.name, logical_id)


def _resource_arn(stack, logical_id, resource_type):
    from moto.utilities.utils import get_partition
    p, r, a = get_partition(stack.region_name), stack.region_name, stack.account_id
    name = _physical(stack, logical_id, resource_type)
    if resource_type in _EC2_KIND:
        return "arn:%s:ec2:%s:%s:%s/%s" % (p, r, a, _EC2_KIND[resource_type], name)
    if resource_type == "AWS::IAM::Role":
        return "arn:%s:iam::%s:role/%s" % (p, a, name.split("/")[-1])
    if resource_type == "AWS::IAM::InstanceProfile":
        return "arn:%s:iam::%s:instance-profile/%s" % (p, a, name.split("/")[-1])
    if resource_type == "AWS::CloudWatch::Alarm":
        return "arn:%s:cloudwatch:%s:%s:alarm:%s" % (p, r, a, name)
    if resource_type == "AWS::Scheduler::Schedule":
        return "arn:%s:scheduler:%s:%s:schedule/default/%s" % (p, r, a, name.split("/")[-1])
    return "*"


def _needs(stack, template, logical_id, phase, tagged):
    """[(action, resource ARN)] for one resource's create/update/delete."""
    from moto.utilities.utils import get_partition
    resource = template.get("Resources", {}).get(logical_id) or {}
    rtype = resource.get("Type", "")
    actions = HANDLER_ACTIONS.get(rtype)
    if actions is None:
        return []
    here = _resource_arn(stack, logical_id, rtype)
    p, r, a = get_partition(stack.region_name), stack.region_name, stack.account_id
    needs = [(action, here) for action in actions[("create", "update", "delete").index(phase)]]
    props = resource.get("Properties") or {}
    if rtype == "AWS::EC2::KeyPair":  # EC2 keeps the private key in SSM: /ec2/keypair/<key pair id>
        model = (stack.resource_map._parsed_resources or {}).get(logical_id)
        key_id = getattr(getattr(model, "key_pair", None), "id", None) or "key-" + logical_id
        parameter = "arn:%s:ssm:%s:%s:parameter/ec2/keypair/%s" % (p, r, a, key_id)
        needs = [(x, here if x.startswith("ec2:") else parameter) for x, _ in needs]
    if phase == "create" and rtype == "AWS::EC2::Instance":
        image = props.get("ImageId") if isinstance(props.get("ImageId"), str) else "ami-lab"
        needs.append(("ec2:RunInstances", "arn:%s:ec2:%s::image/%s" % (p, r, image)))
    if phase in ("create", "update"):
        needs += [("iam:PassRole", role) for role in _passed_roles(stack, template, rtype, props)]
    if phase == "create" and tagged:
        kind = "ec2" if rtype in _EC2_KIND else {"AWS::IAM::Role": "iam-role",
                                                 "AWS::CloudWatch::Alarm": "cloudwatch"}.get(rtype)
        if kind:
            needs.append((TAG_ACTIONS[kind], here))
    if phase == "create" and rtype == "AWS::CloudWatch::Alarm" and _has_ec2_action(props) \
            and not _service_linked_role_exists(stack):
        needs.append(("iam:CreateServiceLinkedRole", "arn:%s:iam::%s:%s" % (p, a, EVENTS_SERVICE_LINKED_ROLE)))
    return needs


def _passed_roles(stack, template, rtype, props):
    """ARNs of the roles this resource hands to a service (iam:PassRole on each)."""
    if rtype == "AWS::EC2::Instance" and props.get("IamInstanceProfile"):
        return [_role_arn(stack, template, r) for r in _profile_roles(stack, template, props["IamInstanceProfile"])]
    if rtype == "AWS::Scheduler::Schedule":
        role = (props.get("Target") or {}).get("RoleArn")
        if role is not None:
            return [_role_arn(stack, template, role)]
    return []


def _profile_roles(stack, template, profile):
    """The roles of an instance profile: one of this template ({"Ref"}) or an imported one's (by name)."""
    if isinstance(profile, dict) and "Ref" in profile:
        roles = ((template["Resources"].get(profile["Ref"]) or {}).get("Properties") or {}).get("Roles") or []
        return roles
    name = profile
    if isinstance(profile, dict) and "Fn::ImportValue" in profile:
        export = stack.cross_stack_resources.get(profile["Fn::ImportValue"])
        name = export.value if export else None
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition
    backend = iam_backends[stack.account_id][get_partition(stack.region_name)]
    for found in backend.instance_profiles.values():
        if found.name == name:
            return [role.arn for role in found.roles]
    return []


def _role_arn(stack, template, role):
    """A role reference of the template ({"Ref"}, {"Fn::GetAtt": [X, "Arn"]}) or an ARN, as an ARN."""
    logical = role.get("Ref") if isinstance(role, dict) else None
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        logical = role["Fn::GetAtt"][0]
    if logical:
        return _resource_arn(stack, logical, "AWS::IAM::Role")
    return role if isinstance(role, str) else "*"


def _has_ec2_action(props):
    return ":automate:" in json.dumps(props.get("AlarmActions") or [])


def _service_linked_role_exists(stack):
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition
    backend = iam_backends[stack.account_id][get_partition(stack.region_name)]
    return any(role.name == "AWSServiceRoleForCloudWatchEvents" for role in backend.roles.values())


def _create_service_linked_role(stack):
    """What CloudWatch does on the first alarm with an EC2 action (once an account)."""
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition
    if not _service_linked_role_exists(stack):  # (moto's create_service_linked_role names it otherwise)
        trust = {"Version": "2012-10-17", "Statement": [{"Action": ["sts:AssumeRole"], "Effect": "Allow",
                                                         "Principal": {"Service": ["events.amazonaws.com"]}}]}
        iam_backends[stack.account_id][get_partition(stack.region_name)].create_role(
            "AWSServiceRoleForCloudWatchEvents", json.dumps(trust), "/aws-service-role/events.amazonaws.com/",
            permissions_boundary=None, description="CloudWatch's EC2 alarm actions", tags=[],
            max_session_duration="3600", linked_service="events.amazonaws.com")


def _ssm_parameters(stack, template, parameters):
    """(action, ARN) for the SSM-typed parameters CloudFormation resolves."""
    from moto.utilities.utils import get_partition
    p, r, a = get_partition(stack.region_name), stack.region_name, stack.account_id
    needs = []
    for name, spec in (template.get("Parameters") or {}).items():
        if not str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value<"):
            continue
        value = (parameters or {}).get(name) or spec.get("Default")
        if isinstance(value, str) and not value.startswith("ami-"):
            needs.append(("ssm:GetParameters", "arn:%s:ssm:%s:%s:parameter/%s"
                          % (p, r, "" if value.startswith("/aws/") else a, value.lstrip("/"))))
    return needs


def check_change(stack, new_template, parameters, role_arn=None, tags=None):
    """Raise Denied if the acting principal may not bring `stack` to `new_template`."""
    if role_arn:  # handing CloudFormation a role is passing it: the caller needs iam:PassRole on it
        caller = _calling(stack)
        if caller is not None:
            caller.check("iam:PassRole", role_arn)
    principal = _acting(stack, role_arn)
    if principal is None:
        return
    old = stack.resource_map._resource_json_map or {}
    new = new_template.get("Resources") or {}
    old_template = {"Resources": old}
    tagged = bool(tags if tags is not None else stack.tags)
    for action, resource in _ssm_parameters(stack, new_template, parameters):
        principal.check(action, resource)
    for logical_id in new:
        phase = "create" if logical_id not in old else ("update" if old[logical_id] != new[logical_id] else None)
        if phase:
            for action, resource in _needs(stack, new_template, logical_id, phase, tagged):
                principal.check(action, resource, logical_id)
    for logical_id in old:
        if logical_id not in new:
            for action, resource in _needs(stack, old_template, logical_id, "delete", False):
                principal.check(action, resource, logical_id)


def check_delete(stack):
    principal = _acting(stack)
    if principal is None:
        return
    template = {"Resources": stack.resource_map._resource_json_map or {}}
    for logical_id in template["Resources"]:
        for action, resource in _needs(stack, template, logical_id, "delete", False):
            principal.check(action, resource, logical_id)


def _event(stack, logical_id, status, reason):
    from moto.cloudformation.models import Event
    rtype = ((stack.resource_map._resource_json_map or {}).get(logical_id) or {}).get("Type", "")
    stack.events.append(Event(
        stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id or stack.name,
        physical_resource_id="", resource_type=rtype or "AWS::CloudFormation::Stack", resource_status=status,
        resource_status_reason=reason, resource_properties=None))


def _reason(denied):
    service = denied.action.split(":")[0]
    return ('Resource handler returned message: "%s (Service: %s, Status Code: 403)"'
            % (denied.message(), service.capitalize()))


def _fail(stack, denied, kind, change_set_type=None):
    """The stack as CloudFormation leaves it after a refused create, update or delete."""
    logical = denied.logical_id or stack.name
    log.warning("IAM: CloudFormation %s of %s refused: %s", kind, stack.name, denied.message())
    if kind == "delete":
        stack._add_stack_event("DELETE_IN_PROGRESS", resource_status_reason="User Initiated")
        _event(stack, logical, "DELETE_FAILED", _reason(denied))
        stack._add_stack_event("DELETE_FAILED", resource_status_reason=(
            "The following resource(s) failed to delete: [%s]. " % logical))
        stack.status = "DELETE_FAILED"
        return
    if change_set_type == "CREATE":
        stack._add_stack_event("CREATE_IN_PROGRESS", resource_status_reason="User Initiated")
        _event(stack, logical, "CREATE_FAILED", _reason(denied))
        stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=(
            "The following resource(s) failed to create: [%s]. Rollback requested by user." % logical))
        stack._add_stack_event("ROLLBACK_COMPLETE")
        stack.status = "ROLLBACK_COMPLETE"
        return
    stack._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    _event(stack, logical, "UPDATE_FAILED", _reason(denied))
    stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=(
        "The following resource(s) failed to update: [%s]." % logical))
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
    stack.status = "UPDATE_ROLLBACK_COMPLETE"


# ---- install ------------------------------------------------------------------------------------

def install():
    """Patch moto; emulator.install_extensions() calls it, once per process (enforcement stays off until enable())."""
    _patch_authorization()
    _patch_inline_role_policies()
    _patch_role_managed_policies()
    _patch_wildcards()
    _patch_access_denied()
    _patch_stack_changes()


def _patch_authorization():
    """Every resource a request names is authorized (not only `*`); CloudFormation's caller noted."""
    from moto.core.authorization import ActionAuthenticatorMixin
    original_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def authorize(self, resource="*"):
        if not enabled():
            return original_authorize(self, resource)
        for arn in request_resources(self) or [resource]:
            original_authorize(self, arn)
        if getattr(self, "service_name", "") == "cloudformation":
            _caller.access_key = self.get_access_key()
    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize


def _patch_inline_role_policies():
    """A role made by CloudFormation keeps its inline policies as dicts, which moto's evaluation
    takes for its own {"policy_document": ...} records (KeyError): give it the JSON text."""
    from moto.iam import access_control
    original_policy = access_control.IAMPolicy.__init__

    def policy_init(self, policy):
        if isinstance(policy, dict) and "policy_document" not in policy:
            policy = json.dumps(policy)
        original_policy(self, policy)
    access_control.IAMPolicy.__init__ = policy_init


def _patch_role_managed_policies():
    """moto's CloudFormation ignores a role's ManagedPolicyArns: attach them (the AWS managed ones
    exist when the emulator loads them, as it does when enforcing), or the role's rights are missing."""
    from moto.iam import models as iam_models
    original_role = iam_models.Role.create_from_cloudformation_json.__func__

    def create_role(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        role = original_role(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = iam_models.iam_backends[account_id][role.partition]
        for arn in cloudformation_json.get("Properties", {}).get("ManagedPolicyArns") or []:
            if isinstance(arn, str) and arn in backend.managed_policies:
                backend.attach_role_policy(arn, role.name)
        return role
    iam_models.Role.create_from_cloudformation_json = classmethod(create_role)
    original_delete_role = iam_models.Role.delete_from_cloudformation_json.__func__

    def delete_role(cls, resource_name, cloudformation_json, account_id, region_name):
        # as CloudFormation does: the managed policies are detached before the role goes
        from moto.utilities.utils import get_partition
        backend = iam_models.iam_backends[account_id][get_partition(region_name)]
        for role in list(backend.roles.values()):
            if role.name == resource_name:
                for arn in list(role.managed_policies):
                    backend.detach_role_policy(arn, role.name)
        return original_delete_role(cls, resource_name, cloudformation_json, account_id, region_name)
    iam_models.Role.delete_from_cloudformation_json = classmethod(delete_role)


def _patch_wildcards():
    """IAM's wildcards: `*` any run of characters, `?` exactly one (moto turns `*` into `.*` and
    leaves `?` and every other character to the regex: "stack/Lab-?/*" matched "stack/Lab/x")."""
    from moto.iam import access_control

    def match(pattern, string):
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        return re.match("^%s$" % regex, string)
    access_control.IAMPolicyStatement._match = staticmethod(match)


def _patch_access_denied():
    """A refusal as each service words it (EC2's UnauthorizedOperation, the JSON services'
    AccessDeniedException, AccessDenied elsewhere), naming the resource and whether a Deny did it."""
    from moto.core.exceptions import JsonRESTError, _RESTError
    from moto.iam import access_control
    original_check = access_control.IAMRequestBase.check_action_permitted

    def check_action_permitted(self, resource):
        self._mxlab_resource = resource  # for the refusal's message
        return original_check(self, resource)
    access_control.IAMRequestBase.check_action_permitted = check_action_permitted

    class UnauthorizedOperation(_RESTError):
        code = 403

    class AccessDeniedException(JsonRESTError):
        code = 403

    class AccessDenied(_RESTError):
        code = 403

    def raise_access_denied(self):
        resource = getattr(self, "_mxlab_resource", "*")
        explicit = any(access_control.IAMPolicy(p).is_action_permitted(self._action, resource)
                       == access_control.PermissionResult.DENIED for p in self._access_key.collect_policies())
        denied = Denied(self._action, resource, self._access_key.arn, explicit=explicit)
        log.warning("IAM: refused: %s", denied.message())
        if self._service == "ec2":
            raise UnauthorizedOperation("UnauthorizedOperation",
                                        "You are not authorized to perform this operation. " + denied.message())
        if self._service in _JSON_SERVICES:
            raise AccessDeniedException("AccessDeniedException", denied.message())
        raise AccessDenied("AccessDenied", denied.message())
    access_control.IAMRequest._raise_access_denied = raise_access_denied


def _patch_stack_changes():
    """CloudFormation acts with the deployer's permissions: a change set or a stack deletion is
    checked first and fails as AWS fails it (events, status) when a resource's action is denied."""
    from moto.cloudformation import models as cf_models
    _patch_change_set_execution(cf_models.CloudFormationBackend)
    _patch_stack_deletion(cf_models.CloudFormationBackend)


def _patch_change_set_execution(backend_class):
    """A change set runs only if the deployer may do what it changes; an alarm that stops or
    terminates instances gets EC2's service-linked role, as in AWS."""
    original_execute = backend_class.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name
             and c.stack_id in self.stacks and stack_name in (None, c.stack_name, c.stack_id)), None)
        if enabled() and change_set is not None:
            stack = self.stacks[change_set.stack_id]
            try:
                check_change(stack, change_set.template_dict, change_set.parameters,
                             role_arn=change_set.role_arn, tags=change_set.tags)
            except Denied as denied:
                _fail(stack, denied, "change", change_set.change_set_type)
                change_set.execution_status = "EXECUTE_FAILED"
                return None
            result = original_execute(self, change_set_name, stack_name)
            if any(_has_ec2_action((r.get("Properties") or {})) for r in
                   (change_set.template_dict.get("Resources") or {}).values()
                   if r.get("Type") == "AWS::CloudWatch::Alarm"):
                _create_service_linked_role(stack)
            return result
        return original_execute(self, change_set_name, stack_name)

    backend_class.execute_change_set = execute_change_set


def _patch_stack_deletion(backend_class):
    """A stack is deleted only if the deployer may delete each of its resources (CloudFormation's own
    deletions inside it are not checked again); its change sets go with it."""
    original_delete = backend_class.delete_stack

    def delete_stack(self, name_or_stack_id):
        if enabled() and not getattr(_caller, "deleting", False):
            for stack in list(self.stacks.values()):
                if name_or_stack_id in (stack.stack_id, stack.name):
                    try:
                        check_delete(stack)
                    except Denied as denied:
                        _fail(stack, denied, "delete")
                        return None
            _caller.deleting = True
            try:
                return original_delete(self, name_or_stack_id)
            finally:
                _caller.deleting = False
                # A deleted stack's change sets go with it (a failed one's stay otherwise, and the
                # next stack of that name would find its old change set by name).
                for key in [k for k, c in self.change_sets.items() if c.stack_id not in self.stacks]:
                    del self.change_sets[key]
        return original_delete(self, name_or_stack_id)

    backend_class.delete_stack = delete_stack
