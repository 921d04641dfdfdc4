"""The lab's deadline comes true in the sandbox (mxlab/offline/scheduler.py).

The lab's own synthesized template, deployed into the emulator through its
CloudFormation API (boto3, as the CLI would send it), with the deadline set by the
`deadline` context key (UTC; the seam tests use instead of lifetime_hours): the
emulator's scheduler thread stops (or terminates) the instances once it is due,
and a later deploy with a new deadline moves it.
"""
import datetime
import json
import time

import pytest

from mxlab.offline import scheduler

pytestmark = pytest.mark.aws_behaviour

CIDR = "127.0.0.1/32"
PAST = "2020-01-01T00:00:00"
FUTURE = "2099-01-01T00:00:00"


def _template(lab_stacks, **context):
    return json.dumps(lab_stacks.template(ssh_cidr=CIDR, attendees="2", **context).to_json())


def _due_template(lab_stacks, **context):
    """A template synthesized earlier whose deadline has come: synth refuses a deadline in the past
    (cdk/config.py), so time is made to pass in the body, where the deadline is written."""
    return _template(lab_stacks, deadline=FUTURE, **context).replace(FUTURE, PAST)


def _deploy(cfn, body, update=False):
    call = cfn.update_stack if update else cfn.create_stack
    call(StackName="MxnetLab", TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
         Tags=[{"Key": "project", "Value": "mxlab"}, {"Key": "stack", "Value": "MxnetLab"}])
    return {o["OutputKey"]: o["OutputValue"] for o in
            cfn.describe_stacks(StackName="MxnetLab")["Stacks"][0]["Outputs"]}


def _states(aws_emulator, outputs):
    ids = [outputs["Attendee%dInstanceId" % n] for n in (1, 2)]
    found = aws_emulator.boto3_client("ec2").describe_instances(InstanceIds=ids)
    return [i["State"]["Name"] for r in found["Reservations"] for i in r["Instances"]]


def _wait_for(aws_emulator, outputs, state, seconds=60):
    """Poll (the scheduler thread runs every second) until both instances are in `state`."""
    for _ in range(seconds * 4):
        states = _states(aws_emulator, outputs)
        if set(states) == {state}:
            return states
        time.sleep(0.25)
    return _states(aws_emulator, outputs)


def test_a_due_deadline_stops_the_labs_instances(aws_emulator, lab_stacks):
    cfn = aws_emulator.boto3_client("cloudformation")
    outputs = _deploy(cfn, _due_template(lab_stacks))
    assert outputs["LabDeadline"] == PAST + "Z stop"
    (schedule,) = aws_emulator.boto3_client("scheduler").list_schedules()["Schedules"]
    assert schedule["State"] == "ENABLED"
    assert _wait_for(aws_emulator, outputs, "stopped") == ["stopped", "stopped"]


def test_terminate_as_the_expiry_action(aws_emulator, lab_stacks):
    cfn = aws_emulator.boto3_client("cloudformation")
    outputs = _deploy(cfn, _due_template(lab_stacks, expiry_action="terminate"))
    assert _wait_for(aws_emulator, outputs, "terminated") == ["terminated", "terminated"]


def test_running_up_again_moves_the_deadline(aws_emulator, lab_stacks):
    cfn = aws_emulator.boto3_client("cloudformation")
    outputs = _deploy(cfn, _template(lab_stacks, deadline=FUTURE))
    assert scheduler.run_due() == []  # not due: nothing happens
    assert _states(aws_emulator, outputs) == ["running", "running"]
    # the lab is deployed again with a deadline that is now past
    outputs = _deploy(cfn, _due_template(lab_stacks), update=True)
    (schedule,) = aws_emulator.boto3_client("scheduler").list_schedules()["Schedules"]
    detail = aws_emulator.boto3_client("scheduler").get_schedule(Name=schedule["Name"])
    assert detail["ScheduleExpression"] == "at(%s)" % PAST
    assert json.loads(detail["Target"]["Input"]) == {
        "InstanceIds": [outputs["Attendee1InstanceId"], outputs["Attendee2InstanceId"]]}
    assert _wait_for(aws_emulator, outputs, "stopped") == ["stopped", "stopped"]


def test_a_schedule_runs_once_when_due_and_not_before(aws_emulator, lab_stacks):
    cfn = aws_emulator.boto3_client("cloudformation")
    deadline = datetime.datetime(2030, 6, 1, 18, 0, 0, tzinfo=datetime.timezone.utc)
    scheduler.stop()  # drive it by hand: run_due(now)
    outputs = _deploy(cfn, _template(lab_stacks, deadline="2030-06-01T18:00:00"))
    assert scheduler.run_due(now=deadline - datetime.timedelta(seconds=1)) == []
    assert _states(aws_emulator, outputs) == ["running", "running"]
    (ran,) = scheduler.run_due(now=deadline)
    assert _states(aws_emulator, outputs) == ["stopped", "stopped"]
    aws_emulator.boto3_client("ec2").start_instances(
        InstanceIds=[outputs["Attendee1InstanceId"], outputs["Attendee2InstanceId"]])
    assert scheduler.run_due(now=deadline) == []  # one-time: started again, it stays up
    assert _states(aws_emulator, outputs) == ["running", "running"]
