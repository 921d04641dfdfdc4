"""Deadline: the lab stops (or terminates) its own instances at a set time.

One EventBridge Scheduler one-time schedule per stack, `at(<deadline>)` in
UTC, with the universal target ec2:stopInstances (or terminateInstances): AWS
itself makes the call, so there is no Lambda, asset or bootstrap. The role it
assumes may do that one action on this stack's instances only. The deadline is
computed at synth (config.deadline), so every `mxlab up` moves it.

L1 resources with the instance list written once, compactly (one Fn::Sub
each for the input and the role's resources): the first stack of a 100-attendee
lab is close to the inline template size limit.
"""
from aws_cdk import Fn, aws_iam as iam, aws_scheduler as scheduler
from constructs import Construct

from cdk.config import LabConfig

# expiry_action -> the EC2 API the universal target calls, and its IAM action
ACTIONS = {"stop": ("stopInstances", "ec2:StopInstances"),
           "terminate": ("terminateInstances", "ec2:TerminateInstances")}
# The universal target in the stack's own partition (aws-cn, aws-us-gov: a literal "aws" ARN is
# refused there): resolved by CloudFormation, one Fn::Sub.
TARGET_ARN = "arn:${AWS::Partition}:scheduler:::aws-sdk:ec2:%s"


class LabDeadline(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: LabConfig,
                 instances: list) -> None:
        super().__init__(scope, construct_id)
        self.schedule = None
        if not config.deadline or not instances:
            return
        api, iam_action = ACTIONS[config.expiry_action]
        ids = [instance.logical_id for instance in instances]
        arn = Fn.sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/")
        role = iam.CfnRole(
            self, "Role",
            assume_role_policy_document={
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"Service": "scheduler.amazonaws.com"},
                    # only schedules of this account may use it (confused deputy)
                    "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                }],
            },
            policies=[iam.CfnRole.PolicyProperty(policy_name="expire", policy_document={
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow", "Action": iam_action,
                    "Resource": Fn.split(",", Fn.sub(
                        ",".join("${a}${%s}" % i for i in ids), {"a": arn})),
                }],
            })],
        )
        role.override_logical_id("LabExpiryRole")
        self.schedule = scheduler.CfnSchedule(
            self, "Schedule",
            # at() is read in ScheduleExpressionTimezone, UTC by default
            schedule_expression="at(%s)" % config.deadline,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=Fn.sub(TARGET_ARN % api), role_arn=role.attr_arn,
                input=Fn.sub('{"InstanceIds":[%s]}' % ",".join('"${%s}"' % i for i in ids))),
        )
        self.schedule.override_logical_id("LabExpiry")


def deadline_output(config: LabConfig):
    """The LabDeadline output's value: "<yyyy-mm-ddThh:mm:ss>Z <stop|terminate>", or None."""
    if not config.deadline:
        return None
    return "%sZ %s" % (config.deadline, config.expiry_action)
