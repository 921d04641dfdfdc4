"""The least-privilege IAM policy an organiser needs for mxlab: one copy, built from statement groups.

Each group names the mxlab commands that need it and why; `mxlab policy` prints the policy made of
them, the tests remove one group at a time and check the command that needs it fails (in the sandbox,
where the emulator enforces the policy: mxlab/offline/iam_enforcement.py).

How mxlab deploys decides what the deploy needs: `cdk deploy` of a LegacyStackSynthesizer app
(cdk/lab_stack.py), the template inline, no assets, no `cdk bootstrap`. So the CLI needs no
bootstrap bucket, ECR repository or cdk-* roles: CloudFormation on the lab's stacks only, acting
with the organiser's own permissions on every resource it creates (the DEPLOY groups below). With
`-c cfn_role_arn=ARN` CloudFormation acts as that service role instead (`cdk deploy --role-arn`):
the DEPLOY groups go into the role's policy (`mxlab policy --service-role`), and the organiser
keeps only the rest plus iam:PassRole on the role (`mxlab policy --cfn-role`).

Names the lab's resources get: CloudFormation names each resource without an explicit name
"<stack name>-<logical id>-<random>", so the roles, instance profile, alarms and schedule of lab
NAME match "NAME-*" (its shard stacks are NAME-2 .. NAME-5, whose resources match too). The
instances carry the stack tag `stack=NAME` (cdk/lab_stack.py), which scopes what EC2 allows to be
scoped by tag. The key pairs' private keys are SSM parameters /ec2/keypair/<key pair id>: the id
is made at deploy, so the scope is /ec2/keypair/* (the SecureStrings use the AWS managed key
aws/ssm, whose key policy lets every principal allowed to use SSM decrypt them: no kms:Decrypt).
"""
import json
from dataclasses import dataclass

MAX_SHARD_STACKS = 5  # cdk/config.py: MAX_ATTENDEES // ATTENDEES_PER_STACK
MANAGED_POLICY_LIMIT = 6144  # characters, whitespace not counted (IAM quota)
SSM_CORE_POLICY = "AmazonSSMManagedInstanceCore"  # cdk/access.py
DEFAULT_CFN_ROLE_NAME = "mxlab-cloudformation"


def partition_of(region):
    """The ARN partition of a region ('*' and commercial regions: aws)."""
    for prefix, partition in (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"),
                              ("us-isob-", "aws-iso-b"), ("us-iso-", "aws-iso")):
        if region.startswith(prefix):
            return partition
    return "aws"


@dataclass(frozen=True)
class Lab:
    """What the ARNs of one lab are made of; account '*' unless known."""
    stack: str
    region: str = "*"
    account: str = "*"

    @property
    def partition(self):
        return partition_of(self.region)

    def arn(self, service, resource, region=None, account=None):
        return "arn:%s:%s:%s:%s:%s" % (self.partition, service, self.region if region is None else region,
                                       self.account if account is None else account, resource)

    @property
    def stack_names(self):
        return [self.stack] + ["%s-%d" % (self.stack, k) for k in range(2, MAX_SHARD_STACKS + 1)]

    @property
    def stack_arns(self):
        # `?` is one character: the shard stacks NAME-2 .. NAME-5 (not NAME-anything), in one ARN
        # (the policy must fit one managed policy: IAM_POLICY_LIMIT)
        return [self.arn("cloudformation", "stack/%s/*" % self.stack),
                self.arn("cloudformation", "stack/%s-?/*" % self.stack)]

    def iam_arn(self, resource):
        return self.arn("iam", resource, region="")

    @property
    def instances(self):
        return self.arn("ec2", "instance/*")

    @property
    def tagged(self):
        """The condition EC2 checks on the lab's own instances."""
        return {"StringEquals": {"aws:ResourceTag/stack": self.stack}}


@dataclass(frozen=True)
class Group:
    """Statements one concern needs; `commands`: the mxlab commands that need them.

    deploy: what CloudFormation needs to create, update and delete the lab's resources (the
    organiser's without a CloudFormation service role, else the role's).
    """
    sid: str
    commands: tuple
    why: str
    build: object  # Lab -> [statement without Sid]
    deploy: bool = False

    def statements(self, lab):
        built = self.build(lab)
        return [dict({"Sid": self.sid + ("" if i == 0 else str(i + 1))}, **s) for i, s in enumerate(built)]


def _allow(actions, resources, condition=None):
    statement = {"Effect": "Allow", "Action": sorted(actions),
                 "Resource": resources if isinstance(resources, str) or len(resources) > 1 else resources[0]}
    if condition:
        statement["Condition"] = condition
    return statement


LAB_COMMANDS = ("hosts", "run", "compare", "prepare", "handout", "ssh", "status", "notebook")
HOST_COMMANDS = ("run", "compare", "prepare", "handout", "ssh", "status", "notebook")

GROUPS = (
    Group("ReadLabStacks", ("up", "extend", "down") + LAB_COMMANDS,
          "the lab's outputs and state (DescribeStacks when ~/.mxlab/<stack>/outputs.json is missing; "
          "the pre-flight and cdk read the deployed stack)",
          lambda lab: [_allow(["cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
                               "cloudformation:DescribeStackResource", "cloudformation:DescribeStackResources",
                               "cloudformation:ListStackResources", "cloudformation:GetTemplate",
                               "cloudformation:GetTemplateSummary"], lab.stack_arns)]),
    Group("DeployLabStacks", ("up", "extend", "down"),
          "cdk deploy (change sets) and cdk destroy of the lab's stacks, with their tags",
          lambda lab: [_allow(["cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet",
                               "cloudformation:ExecuteChangeSet", "cloudformation:DeleteChangeSet",
                               "cloudformation:ListChangeSets", "cloudformation:CreateStack",
                               "cloudformation:UpdateStack", "cloudformation:DeleteStack",
                               "cloudformation:TagResource", "cloudformation:UntagResource"], lab.stack_arns)]),
    Group("ReadEc2", ("up", "extend") + LAB_COMMANDS,
          "instances and their state, the pre-flight's offerings, types, AZs and subnet, what "
          "CloudFormation reads back (EC2 Describe* allows no resource scope)",
          lambda lab: [_allow(["ec2:Describe*"], "*")]),
    Group("AttendeeKeys", HOST_COMMANDS,
          "the attendees' private keys, which CloudFormation stores as SecureString /ec2/keypair/<id>",
          lambda lab: [_allow(["ssm:GetParameter"], lab.arn("ssm", "parameter/ec2/keypair/*"))]),
    Group("HostKeysFromConsole", ("up", "extend") + HOST_COMMANDS,
          "the host keys each instance prints on its console at first boot (`up` pins them all before "
          "the first connection)",
          lambda lab: [_allow(["ec2:GetConsoleOutput"], lab.instances, lab.tagged)]),
    Group("HostKeysThroughSsm", ("up", "extend") + HOST_COMMANDS,
          "where the console no longer shows them (an instance restarted before anything pinned it), the "
          "host keys read through SSM Run Command: `cat /etc/ssh/ssh_host_*_key.pub` with AWS-RunShellScript "
          "on the lab's instances only (GetCommandInvocation takes no resource scope)",
          lambda lab: [_allow(["ssm:SendCommand"], [lab.instances], lab.tagged),
                       _allow(["ssm:SendCommand"], lab.arn("ssm", "document/AWS-RunShellScript", account="")),
                       _allow(["ssm:GetCommandInvocation"], "*")]),
    Group("StartStopLabInstances", HOST_COMMANDS,
          "--start starts a stopped lab instance (the idle auto-stop, the deadline); stopping one by "
          "hand (`aws ec2 stop-instances`) at the end of a day",
          lambda lab: [_allow(["ec2:StartInstances", "ec2:StopInstances"], lab.instances, lab.tagged)]),
    Group("ReadQuotas", ("up", "extend"),
          "the pre-flight's vCPU quota (without it the check is skipped with a note)",
          lambda lab: [_allow(["servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota"],
                              [lab.arn("servicequotas", "ec2/*"), lab.arn("servicequotas", "vpc/*")])]),
    Group("ReadImageParameter", ("up", "extend"),
          "the Deep Learning AMI's public SSM parameter, which CloudFormation resolves with the "
          "deployer's permissions (the lab's SSM-typed image parameter)",
          lambda lab: [_allow(["ssm:GetParameters", "ssm:GetParameter"],
                              lab.arn("ssm", "parameter/aws/service/deeplearning/*", account="*"))]),
    # -- what CloudFormation does with the deployer's permissions (DEPLOY) -----------------------
    Group("DeployNetwork", ("up", "extend", "down"),
          "the lab's VPC, subnets, internet gateway, route table and security group",
          lambda lab: [_allow(["ec2:CreateVpc", "ec2:DeleteVpc", "ec2:ModifyVpcAttribute",
                               "ec2:CreateSubnet", "ec2:DeleteSubnet", "ec2:ModifySubnetAttribute",
                               "ec2:CreateInternetGateway", "ec2:DeleteInternetGateway",
                               "ec2:AttachInternetGateway", "ec2:DetachInternetGateway",
                               "ec2:CreateRouteTable", "ec2:DeleteRouteTable", "ec2:CreateRoute",
                               "ec2:DeleteRoute", "ec2:ReplaceRoute", "ec2:AssociateRouteTable",
                               "ec2:DisassociateRouteTable", "ec2:CreateSecurityGroup",
                               "ec2:DeleteSecurityGroup", "ec2:AuthorizeSecurityGroupIngress",
                               "ec2:RevokeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
                               "ec2:RevokeSecurityGroupEgress"], lab.arn("ec2", "*"))],
          deploy=True),
    Group("DeployInstances", ("up", "extend", "down"),
          "the attendees' key pairs (EC2 puts each private key in SSM), the launch template and the "
          "instances",
          lambda lab: [_allow(["ec2:RunInstances", "ec2:TerminateInstances", "ec2:ModifyInstanceAttribute",
                               "ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion",
                               "ec2:ModifyLaunchTemplate", "ec2:DeleteLaunchTemplate",
                               "ec2:DeleteLaunchTemplateVersions", "ec2:CreateKeyPair", "ec2:ImportKeyPair",
                               "ec2:DeleteKeyPair"], [lab.arn("ec2", "*"), lab.arn("ec2", "image/*", account="")]),
                       _allow(["ssm:PutParameter", "ssm:DeleteParameter"],
                              lab.arn("ssm", "parameter/ec2/keypair/*"))],
          deploy=True),
    Group("DeployRoles", ("up", "extend", "down"),
          "the instance role (with only AmazonSSMManagedInstanceCore attached) and its profile, the "
          "deadline's role",
          lambda lab: [_allow(["iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole",
                               "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
                               "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
                               "iam:UpdateAssumeRolePolicy"], lab.iam_arn("role/%s-*" % lab.stack)),
                       _allow(["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
                              lab.iam_arn("role/%s-*" % lab.stack),
                              {"ArnLike": {"iam:PolicyARN": "arn:%s:iam::aws:policy/%s"
                                           % (lab.partition, SSM_CORE_POLICY)}}),
                       _allow(["iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
                               "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile"],
                              lab.iam_arn("instance-profile/%s-*" % lab.stack))],
          deploy=True),
    Group("PassLabRoles", ("up", "extend"),
          "the instances get the instance role (their profile), the deadline's schedule its role: "
          "passing a role needs iam:PassRole, to that service only",
          lambda lab: [_allow(["iam:PassRole"], lab.iam_arn("role/%s-*" % lab.stack),
                              {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com",
                                                                        "scheduler.amazonaws.com"]}})],
          deploy=True),
    Group("DeployIdleAlarms", ("up", "extend", "down"),
          "the cost guard's CloudWatch alarms, whose action stops the instance",
          lambda lab: [_allow(["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"],
                              lab.arn("cloudwatch", "alarm:%s-*" % lab.stack))],
          deploy=True),
    Group("AlarmServiceLinkedRole", ("up", "extend"),
          "the first alarm with an EC2 action in an account makes CloudWatch create its service-linked "
          "role AWSServiceRoleForCloudWatchEvents, as the deployer",
          lambda lab: [_allow(["iam:CreateServiceLinkedRole"], lab.iam_arn(
              "role/aws-service-role/events.amazonaws.com/AWSServiceRoleForCloudWatchEvents*"),
              {"StringEquals": {"iam:AWSServiceName": "events.amazonaws.com"}})],
          deploy=True),
    Group("DeployDeadline", ("up", "extend", "down"),
          "the deadline's EventBridge Scheduler one-time schedule (moved by every `mxlab up`)",
          lambda lab: [_allow(["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule",
                               "scheduler:GetSchedule"], lab.arn("scheduler", "schedule/default/%s-*" % lab.stack))],
          deploy=True),
    Group("TagLabResources", ("up", "extend"),
          "CloudFormation puts the stack's tags (project, stack) on every resource it creates",
          lambda lab: [_allow(["ec2:CreateTags", "ec2:DeleteTags"], lab.arn("ec2", "*")),
                       _allow(["iam:TagRole", "iam:UntagRole", "iam:TagInstanceProfile",
                               "iam:UntagInstanceProfile"],
                              [lab.iam_arn("role/%s-*" % lab.stack),
                               lab.iam_arn("instance-profile/%s-*" % lab.stack)]),
                       _allow(["cloudwatch:TagResource", "cloudwatch:UntagResource"],
                              lab.arn("cloudwatch", "alarm:%s-*" % lab.stack))],
          deploy=True),
)

# Read-only lookups CloudFormation makes as whoever acts for it (caller or service role).
SHARED_WITH_ROLE = ("ReadEc2", "ReadImageParameter")


def group(sid):
    for g in GROUPS:
        if g.sid == sid:
            return g
    raise KeyError(sid)


def _document(statements):
    return {"Version": "2012-10-17", "Statement": statements}


def cfn_role_arn(lab, role=None):
    """The service role's ARN: `role` as given (an ARN or a role name), else mxlab's default name."""
    if role and role.startswith("arn:"):
        return role
    return lab.iam_arn("role/%s" % (role or DEFAULT_CFN_ROLE_NAME))


def organiser_policy(lab, cfn_role=None, leave_out=()):
    """The organiser's policy. cfn_role: deploying through that CloudFormation service role (an ARN,
    a role name, or True for mxlab's default name): no DEPLOY groups, iam:PassRole on the role instead.
    leave_out: group sids to drop (the tests' one-at-a-time removal)."""
    statements = []
    for g in GROUPS:
        if g.sid in leave_out or (cfn_role and g.deploy):
            continue
        statements += g.statements(lab)
    if cfn_role and "PassCloudFormationRole" not in leave_out:
        statements.append({"Sid": "PassCloudFormationRole", "Effect": "Allow", "Action": "iam:PassRole",
                           "Resource": cfn_role_arn(lab, None if cfn_role is True else cfn_role),
                           "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}})
    return _document(statements)


def service_role_policy(lab):
    """The CloudFormation service role's permissions: what it does for the lab's stacks."""
    statements = []
    for g in GROUPS:
        if g.deploy or g.sid in SHARED_WITH_ROLE:
            statements += g.statements(lab)
    return _document(statements)


def service_role_trust(lab):
    """The service role's trust policy: CloudFormation may assume it."""
    return _document([{"Effect": "Allow", "Principal": {"Service": "cloudformation.amazonaws.com"},
                       "Action": "sts:AssumeRole"}])


def size(document):
    """Characters IAM counts against a managed policy's limit (whitespace is not counted)."""
    return len(json.dumps(document, separators=(",", ":")).replace(" ", ""))


def split(document, limit=MANAGED_POLICY_LIMIT):
    """The document as few documents as fit the managed-policy limit each (whole statements)."""
    parts, current = [], []
    for statement in document["Statement"]:
        if current and size(_document(current + [statement])) > limit:
            parts.append(_document(current))
            current = []
        current.append(statement)
    parts.append(_document(current))
    return parts


def explain(lab, cfn_role=None):
    """Lines naming each group of the organiser's policy, its commands and why (`mxlab policy`)."""
    lines = []
    for g in GROUPS:
        if cfn_role and g.deploy:
            continue
        lines.append("%s (%s): %s" % (g.sid, ", ".join(g.commands), g.why))
    if cfn_role:
        lines.append("PassCloudFormationRole (up, extend, down): cdk deploy/destroy --role-arn %s (-c cfn_role_arn=...)"
                     % cfn_role_arn(lab, None if cfn_role is True else cfn_role))
    return lines
