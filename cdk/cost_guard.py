"""Cost guard: stop each instance after auto_stop_minutes of low CPU.

Low means the busiest minute of every 5-minute period stayed under IDLE_CPU_PERCENT: EC2's basic
monitoring reports each period as five 1-minute samples, and their Average hides an attendee's short
bursts (a cell run, a pip install on 8 vCPUs) while their Maximum shows them, so an interactive
session is not stopped mid-lab.
"""
from aws_cdk import Fn, aws_cloudwatch as cloudwatch
from constructs import Construct

from cdk.config import LabConfig

IDLE_CPU_PERCENT = 5  # an idle DLAMI host sits near 0-2 %
PERIOD_SECONDS = 300  # EC2 basic monitoring granularity


class LabCostGuard(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: LabConfig,
                 instances: list, numbers: list) -> None:
        super().__init__(scope, construct_id)
        self.alarms = []
        if not config.auto_stop_minutes:
            return
        # The EC2 stop action: a plain ARN, no Lambda or role needed.
        stop = Fn.sub("arn:${AWS::Partition}:automate:${AWS::Region}:ec2:stop")
        for n, instance in zip(numbers, instances):
            alarm = cloudwatch.CfnAlarm(
                self,
                "Attendee%dIdleStop" % n,
                namespace="AWS/EC2",
                metric_name="CPUUtilization",
                dimensions=[cloudwatch.CfnAlarm.DimensionProperty(
                    name="InstanceId", value=instance.ref)],
                statistic="Maximum",
                period=PERIOD_SECONDS,
                evaluation_periods=config.idle_periods,
                threshold=IDLE_CPU_PERCENT,
                comparison_operator="LessThanThreshold",
                alarm_actions=[stop],
            )
            alarm.override_logical_id("Attendee%dIdleStop" % n)
            self.alarms.append(alarm)
