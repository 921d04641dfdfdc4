"""`mxlab up` on a lab that is already deployed: start from the context it was deployed with,
and refuse what would destroy hosts unless the organiser says --force.

CloudFormation carries out a changed template as it must: an attendee left out is deleted
(instance and key pair); a new root volume size or device, AMI or AZ replaces every instance
(new host keys, new address, an empty disk); a new instance type stops and starts each one
(running work lost, new public address). So a key left out of today's `-c` keeps its deployed
value, not its default, and a change that loses hosts or what is on them needs --force, with
what it would destroy named.
"""
import datetime
from dataclasses import dataclass, field

from mxlab.errors import UsageError
from cdk import outputs as stack_outputs


@dataclass
class Plan:
    context: dict  # the CDK context to deploy with
    notes: list = field(default_factory=list)  # what the operator should know, one line each


def plan(config, stack, saved, given, deployed, force=False, now=None):
    """The context for this deploy: `saved` (context.json) overlaid with `given` (today's -c).

    config: cdk/config.py; deployed: the lab's merged outputs, or None for a new lab.
    Raises UsageError for a change that destroys or replaces hosts (unless force).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if deployed is not None and not saved:
        return _unknown_baseline(config, stack, given, deployed, force)
    context, notes = merged(config, saved, given, now)
    if deployed is None or not saved:
        return Plan(context, notes)
    before = _config(config, _without_deadline(saved), now,
                     "the saved context %s" % _saved_name(stack))
    after = _config(config, context, now, "invalid context")
    refused, told = changes(before, after)
    notes += told
    if refused and not force:
        raise UsageError("lab %s: this deploy %s. Nothing was changed. Give --force to do it anyway, "
                         "or leave those keys out to keep what is deployed"
                         % (stack, "; it ".join(refused)))
    notes += ["--force: this deploy %s" % line for line in refused]
    return Plan(context, notes)


def merged(config, saved, given, now):
    """(context, notes): the saved context with today's keys over it.

    Keys that exclude each other go together: a new AMI key replaces the saved one, a new
    lifetime_hours the saved deadline; a saved deadline that has passed is dropped (synth
    refuses it), so lifetime_hours counts from now again.
    """
    context = dict(saved)
    notes = []
    if any(key in given for key in config.AMI_KEYS):
        for key in config.AMI_KEYS:
            context.pop(key, None)
    if "lifetime_hours" in given and "deadline" not in given:
        context.pop("deadline", None)
    if "deadline" not in given and context.get("deadline"):
        try:
            moment = config.deadline_moment(context["deadline"])
        except config.ConfigError:
            moment = None  # synth names the bad value
        if moment is not None and moment < now.replace(tzinfo=None) + config.DEADLINE_LEAD:
            notes.append("the saved deadline %s UTC has passed: the new one is lifetime_hours=%s from now"
                         % (context.pop("deadline"), context.get("lifetime_hours",
                                                                 config.default("lifetime_hours"))))
    context.update(given)
    return context, notes


def changes(before, after):
    """(refused, notes) for going from LabConfig `before` to `after`: what destroys or replaces
    hosts (refused without --force), and what only the operator should hear."""
    refused, notes = [], []
    if after.region != before.region:
        raise UsageError("lab %s is deployed in %s; region=%s would deploy a second lab there: run "
                         "`mxlab down` first to move it" % (before.stack_name, before.region or
                                                           "the region it was deployed to", after.region
                                                           or "the session's region"))
    if after.attendees < before.attendees:
        gone = ["attendee-%d" % n for n in range(after.attendees + 1, before.attendees + 1)]
        refused.append("would destroy %s with their keys and disks (attendees %d -> %d)"
                       % (", ".join(gone), before.attendees, after.attendees))
    replacing = [(key, getattr(before, key), getattr(after, key))
                 for key in ("volume_gb", "root_device", "availability_zone")
                 if getattr(before, key) != getattr(after, key)]
    if _ami(before) != _ami(after):
        replacing.append(("AMI", _ami(before), _ami(after)))
    for key, old, new in replacing:
        refused.append("would replace every host: new instances, host keys, addresses and empty disks "
                       "(%s %s -> %s)" % (key, old or "-", new or "-"))
    if after.instance_type != before.instance_type:
        refused.append("would stop and start every host: what runs on them ends, and each gets a new "
                       "public address (instance_type %s -> %s)" % (before.instance_type, after.instance_type))
    dropped = [c for c in before.ssh_cidrs if c not in after.ssh_cidrs]
    if dropped:  # updated in place, nothing destroyed: told, not refused
        notes.append("ssh_cidr %s -> %s: SSH from %s stops working when the deploy is done"
                     % (before.ssh_cidr, after.ssh_cidr, ", ".join(dropped)))
    return refused, notes


def _unknown_baseline(config, stack, given, deployed, force):
    """Deployed, but not from here (no context.json): nothing tells what the deploy would change."""
    context = dict(given)
    if "attendees" not in context and deployed.get(stack_outputs.ATTENDEES):
        context["attendees"] = deployed[stack_outputs.ATTENDEES]  # at least never fewer hosts by default
    if force:
        return Plan(context, ["--force: lab %s was deployed without its context saved here: every key "
                              "left out takes its default" % stack])
    raise UsageError(
        "lab %s is deployed, but the context it was deployed with is not saved here (%s): mxlab cannot "
        "tell which hosts this deploy would replace or destroy (a key left out takes its default). "
        "Run `mxlab up` where it was deployed, or give every key it was deployed with (-c ...) and --force"
        % (stack, _saved_name(stack)))


def _config(config, context, now, what):
    try:
        return config.from_context(context.get, now=now)
    except config.ConfigError as exc:
        raise UsageError("%s: %s" % (what, exc)) from None


def _without_deadline(saved):
    # What is deployed is compared, not when it ends: an old deadline must not fail the comparison.
    return {k: v for k, v in saved.items() if k != "deadline"}


def _ami(cfg):
    for key in ("ami_id", "ami_name", "ami_ssm_parameter"):
        if getattr(cfg, key):
            return "%s=%s" % (key, getattr(cfg, key))
    return ""


def _saved_name(stack):
    from mxlab.lab import statedir
    return statedir.context_file(stack)
