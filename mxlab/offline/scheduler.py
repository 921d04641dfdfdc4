"""EventBridge Scheduler in the emulator: the lab's deadline (cdk/deadline.py) comes true.

moto 5.2.5 keeps schedules (its scheduler backend) but has no AWS::Scheduler::Schedule
in CloudFormation and never runs anything. Here:
- CfnSchedule: the CloudFormation resource, kept in moto's scheduler backend (so
  `aws scheduler list-schedules` sees it); an update (a re-run `mxlab up`) moves it.
- A background thread in the emulator process runs every due one-time schedule,
  `at(yyyy-mm-ddThh:mm:ss)` in its ScheduleExpressionTimezone, once, and carries
  out the universal targets the lab uses, arn:aws:scheduler:::aws-sdk:ec2:
  stopInstances / terminateInstances with Input {"InstanceIds": [...]}, by calling
  moto's EC2 backend (whose stop paths the sandbox also follows). After it ran,
  ActionAfterCompletion=DELETE removes the schedule, as AWS does.
install() registers the model (once per process); start()/stop() run the thread.
"""
import datetime
import json
import logging
import re
import threading

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
_AT = re.compile(r"^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$")
_EC2_TARGET = re.compile(r"^arn:aws[a-z-]*:scheduler:::aws-sdk:ec2:(stopInstances|terminateInstances)$")

_state = {"thread": None, "stop": None}
_done = set()  # (schedule arn, expression) already carried out
_lock = threading.Lock()


def install():
    """Patch moto; emulator.install_extensions() calls it, once per process."""
    schedule = _add_cfn_schedule()  # held: moto finds models as (weakly held) subclasses
    from moto.cloudformation import parsing
    for cached in (parsing.get_model_list, parsing.get_model_map,
                   parsing.get_name_type_map):
        cached.cache_clear()  # moto caches its model lists: the one added counts only then
    assert schedule.cloudformation_type() == "AWS::Scheduler::Schedule" in parsing.get_model_map()


def _schedule_settings(props):
    """What an AWS::Scheduler::Schedule's properties set, as moto's create and update take them."""
    return dict(
        description=props.get("Description"), end_date=props.get("EndDate"),
        flexible_time_window=props["FlexibleTimeWindow"],
        kms_key_arn=props.get("KmsKeyArn"),
        schedule_expression=props["ScheduleExpression"],
        schedule_expression_timezone=props.get("ScheduleExpressionTimezone"),
        start_date=props.get("StartDate"), state=props.get("State"),
        target=dict(props["Target"]))


class _ScheduleResource:
    """What an AWS::Scheduler::Schedule resource is to CloudFormation (its type, Ref and GetAtt);
    _add_cfn_schedule makes it a moto model (moto imported only there)."""

    def __init__(self, schedule, account_id, region_name):
        self.schedule = schedule
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_type():
        return "AWS::Scheduler::Schedule"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @property
    def physical_resource_id(self):
        return self.schedule.name  # Ref gives the name, as in AWS

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name):
        if attribute_name == "Arn":
            return self.schedule.arn
        raise KeyError(attribute_name)


def _add_cfn_schedule():
    """AWS::Scheduler::Schedule in CloudFormation (moto has the API, not the resource): the lab's deadline."""
    from moto.core.common_models import CloudFormationModel
    from moto.scheduler.models import scheduler_backends

    # moto finds models as CloudFormationModel's direct subclasses: this class, not _ScheduleResource.
    class CfnSchedule(_ScheduleResource, CloudFormationModel):
        # moto files models by the 2nd part of their module name (the service)
        __module__ = "moto.scheduler.cfn_schedule"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json,
                                            account_id, region_name, **kwargs):
            props = cloudformation_json["Properties"]
            backend = scheduler_backends[account_id][region_name]
            schedule = backend.create_schedule(
                group_name=props.get("GroupName"), name=resource_name[:64],
                action_after_completion=props.get("ActionAfterCompletion"), **_schedule_settings(props))
            return cls(schedule, account_id, region_name)

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                            cloudformation_json, account_id, region_name):
            props = cloudformation_json["Properties"]
            original_resource.schedule.update(**_schedule_settings(props))
            original_resource.schedule.action_after_completion = props.get("ActionAfterCompletion")
            return original_resource

        def delete(self, account_id, region_name):
            backend = scheduler_backends[account_id][region_name]
            try:
                backend.delete_schedule(self.schedule.group_name, self.schedule.name)
            except Exception:  # already gone (ActionAfterCompletion=DELETE)
                pass
    return CfnSchedule


def start(poll_seconds=POLL_SECONDS):
    """Run due schedules in a daemon thread until stop()."""
    with _lock:
        if _state["thread"] is not None:
            return
        event = threading.Event()
        thread = threading.Thread(target=_loop, args=(event, poll_seconds),
                                  name="mxlab-scheduler", daemon=True)
        _state.update(thread=thread, stop=event)
        thread.start()


def stop():
    with _lock:
        thread, event = _state["thread"], _state["stop"]
        _state.update(thread=None, stop=None)
    if thread is not None:
        event.set()
        thread.join(timeout=10)
    _done.clear()


def _loop(event, poll_seconds):
    while not event.wait(poll_seconds):
        try:
            run_due()
        except Exception:  # one bad schedule must not end the thread
            log.exception("scheduler: running due schedules failed")


def run_due(now=None):
    """Carry out every due, not yet run, enabled at() schedule; return their names."""
    from moto.scheduler.models import scheduler_backends
    ran = []
    for account_id in list(scheduler_backends.keys()):
        for region, backend in list(scheduler_backends[account_id].items()):
            for group in list(backend.schedule_groups.values()):
                for schedule in list(group.schedules.values()):
                    if _due(schedule, now) and (schedule.arn, schedule.schedule_expression) not in _done:
                        _done.add((schedule.arn, schedule.schedule_expression))
                        _invoke(schedule, account_id, region)
                        ran.append(schedule.name)
                        if schedule.action_after_completion == "DELETE":
                            group.delete_schedule(schedule.name)
    return ran


def _due(schedule, now):
    match = _AT.match(schedule.schedule_expression or "")
    if not match or (schedule.state or "ENABLED") != "ENABLED":
        return False
    at = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    zone = schedule.schedule_expression_timezone or "UTC"
    if zone != "UTC":
        import zoneinfo
        at = at.replace(tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(datetime.timezone.utc)
    at = at.replace(tzinfo=datetime.timezone.utc)
    return at <= (now or datetime.datetime.now(datetime.timezone.utc))


def _invoke(schedule, account_id, region):
    from moto.ec2.models import ec2_backends
    target = schedule.target
    match = _EC2_TARGET.match(target.get("Arn", ""))
    if not match:
        log.warning("scheduler: %s: target %s is not modelled; nothing done",
                    schedule.name, target.get("Arn"))
        return
    ids = json.loads(target.get("Input") or "{}").get("InstanceIds", [])
    ec2 = ec2_backends[account_id][region]
    present = [i for i in ids if i in _instance_ids(ec2)]
    if not present:
        return
    if match.group(1) == "stopInstances":
        ec2.stop_instances(present)
    else:
        ec2.terminate_instances(present)
    log.info("scheduler: %s: %s %s", schedule.name, match.group(1), ", ".join(present))


def _instance_ids(ec2):
    return {instance.id for instance in ec2.all_instances()}
