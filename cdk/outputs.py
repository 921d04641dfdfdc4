"""The lab stack's output keys (`cdk deploy --outputs-file`, CloudFormation's Outputs): cdk/lab_stack.py writes
them, mxlab/lab/ and mxlab/offline/ read them. Stdlib only, as config.py is: mxlab reads it without
aws-cdk-lib. A key here is a contract with labs already deployed: renaming one strands them."""
import re

ATTENDEES = "LabAttendees"  # how many attendees (hosts) the lab has
STACKS = "LabStacks"  # the lab's stacks, comma-separated, first one first (past 20 attendees: shard stacks)
SSH_USER = "LabSshUser"
DEADLINE = "LabDeadline"  # when the lab ends (absent: lifetime_hours=0)

# Per attendee N: attendee(N, INSTANCE_ID) is "Attendee<N>InstanceId".
INSTANCE_ID = "InstanceId"
PUBLIC_IP = "PublicIp"
PUBLIC_DNS = "PublicDns"
KEY_PAIR_ID = "KeyPairId"
PRIVATE_KEY_PARAMETER = "PrivateKeyParameter"

_ATTENDEE_INSTANCE = re.compile(r"Attendee(\d+)%s$" % INSTANCE_ID)


def attendee(n, what):
    return "Attendee%d%s" % (n, what)


def attendee_numbers(outputs):
    """The attendee numbers that have an instance output (a lab deployed before ATTENDEES was written)."""
    return [int(m.group(1)) for k in outputs for m in [_ATTENDEE_INSTANCE.match(k)] if m]
