"""Is a host ready for SSH? The instance's state and live address (and starting a stopped one), its
private key, its SSH server answering, its host keys pinned. Separate from the SSH channel (session.py):
`mxlab run`, `compare`, `prepare` and `ssh` all reach a host through ready().
"""
import logging
import socket

from mxlab.hosts import address_book, backoff, hostkeys, keys
from mxlab.lab import aws
from mxlab.errors import HostUnreachable, MxlabError

log = logging.getLogger(__name__)

GONE = ("terminated", "shutting-down")
STOPPED = ("stopped", "stopping")


class InstanceStopped(HostUnreachable):
    """The lab instance is stopped (the idle auto-stop, a deadline, or by hand); --start starts it."""


def not_running(target, state):
    """The one error for a lab instance that is stopped or gone, whichever command found it and whenever
    (before connecting, or mid-run when its connection dropped)."""
    if state in GONE:
        # CloudFormation does not recreate an instance deleted outside it: `up` alone cannot.
        return HostUnreachable("%s: instance %s is %s (the deadline's expiry_action=terminate, or by hand): "
                               "`mxlab down`, then `mxlab up` brings the lab back"
                               % (target.label, target.instance_id, state))
    return InstanceStopped("%s: instance %s is %s (the idle auto-stop, the lab's deadline, or by hand): run again "
                           "with --start to start it and go on, or `aws ec2 start-instances --instance-ids %s`"
                           % (target.label, target.instance_id, state, target.instance_id))


def stopped_now(target):
    """not_running()'s error when EC2 says the lab instance is stopped or gone now, else None (a direct host,
    a running instance, or no answer from EC2). A dropped connection asks this before waiting to reconnect:
    the stop ended everything on the instance, and no SSH server will come back."""
    if not target.instance_id:
        return None
    try:
        state = refresh(target)
    except Exception:  # no answer from EC2: the caller waits for SSH as usual
        log.debug("%s: instance state unknown", target.label, exc_info=True)
        return None
    return not_running(target, state) if state in STOPPED + GONE else None


def describe_instance(instance_id):
    """The instance's DescribeInstances record, or None."""
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs (botocore costs ~0.2 s)

    ec2 = aws.client("ec2")
    try:
        res = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except botocore.exceptions.ClientError as exc:
        if "NotFound" in exc.response.get("Error", {}).get("Code", ""):
            return None
        raise
    return res[0]["Instances"][0] if res and res[0]["Instances"] else None


def refresh(target, described=None):
    """Set target.state, and target.host to the instance's live public address when it has one:
    a stopped and started instance gets a new public IP, so the stack's outputs go stale.
    described: the instance's record from refresh_all's batch (None: ask EC2 now)."""
    inst = described if described is not None else describe_instance(target.instance_id)
    target.state = inst["State"]["Name"] if inst else "unknown"
    live = inst and (inst.get("PublicIpAddress") or inst.get("PublicDnsName"))
    if live and live != target.host:
        log.info("%s: instance %s is now at %s (was %s)", target.label, target.instance_id, live, target.host)
        target.host = live
    elif inst and not live:
        target.host = None  # a stopped instance has no public address
    return target.state


def refresh_all(targets):
    """refresh() every lab target with one DescribeInstances per 100 instances (not one per attendee:
    a room of 30 made 30 calls in turn, and AWS throttles bursts of them)."""
    ids = [t.instance_id for t in targets if t.instance_id]
    records = {}
    ec2 = aws.client("ec2")
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        try:
            found = ec2.describe_instances(InstanceIds=chunk)["Reservations"]
        except Exception:  # an id that is gone fails the whole batch: ask for each of this chunk
            for target in targets:
                if target.instance_id in chunk:
                    refresh(target)
            continue
        for reservation in found:
            for inst in reservation["Instances"]:
                records[inst["InstanceId"]] = inst
    for target in targets:
        if target.instance_id in records:
            refresh(target, records[target.instance_id])
    return targets


def start_instance(target, timeout):
    """Start a stopped (or stopping) instance and wait until it runs."""
    ec2 = aws.client("ec2")
    if target.state == "stopping":
        log.warning("%s: instance %s is stopping; waiting for it to stop before starting it",
                    target.label, target.instance_id)
        wait_state(target, ("stopped",), timeout)
    log.warning("%s: starting stopped instance %s", target.label, target.instance_id)
    ec2.start_instances(InstanceIds=[target.instance_id])


def wait_state(target, wanted, timeout):
    def attempt():
        state = refresh(target)
        if state in GONE:
            raise not_running(target, state)
        if state not in wanted:
            raise LookupError("instance %s is %s" % (target.instance_id, state))
    backoff.retry(attempt, timeout, "%s: waiting for instance %s to be %s"
                  % (target.label, target.instance_id, "/".join(wanted)), retry_on=(LookupError,))


def ensure_running(target, timeout, start=False):
    """Wait for a pending instance; start a stopped one if `start`, else say how (InstanceStopped)."""
    state = refresh(target)
    if state in STOPPED:
        if not start:
            raise not_running(target, state)
        start_instance(target, timeout)
    wait_state(target, ("running",), timeout)


def read_banner(host, port, timeout=10):
    """The SSH identification string the server sends first; raises OSError if none comes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = b""
        while b"\n" not in data and len(data) < 256:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"SSH-"):
        raise OSError("no SSH banner from %s:%d (got %r)" % (host, port, data[:40]))
    return data.split(b"\r\n")[0].split(b"\n")[0].decode("ascii", "replace")


def wait_ssh(target, timeout):
    """Wait (bounded backoff) until the host's SSH server sends its banner."""
    banner = backoff.retry(lambda: read_banner(target.host, target.port), timeout,
                           "%s (%s): waiting for the SSH server" % (target.label, target.address),
                           retry_on=(OSError,))
    log.debug("%s: %s", target.label, banner)
    return banner


def check_pinned(target):
    """A direct host must already be in its known_hosts (nothing is trusted on first use); for the ssh
    client, whose own refusal does not say what to do (mxlab's connection says it, with the offered key)."""
    if hostkeys.lookup(target) is None:
        entry = hostkeys.alias(target)
        raise MxlabError("%s: no key for %s in %s. %s" % (target.label, entry, target.known_hosts,
                                                          hostkeys.how_to_proceed(target, entry)))


def ready(target, timeout, start=False):
    """Make `target` ready for SSH: key, running (started with `start`), SSH up, host keys pinned.

    Lab instances are pinned by instance id from their first boot's console, so one restarted on a new
    address is verified against those keys with no wait for a console that no longer shows them.
    """
    if target.instance_id:
        keys.ensure_key(target)
        ensure_running(target, timeout, start)
    wait_ssh(target, timeout)
    if target.pin_from_console:
        hostkeys.pin_from_console(target, timeout)
    return target


QUICK_TIMEOUT_S = 3  # a running host answers SSH in well under this; a released address never does


def reach(target, session, timeout, start=False):
    """ready() and session.connect(), first one quick connection: to a lab instance's last known address
    (address_book) without asking AWS, to a direct host without probing its banner first. A one-photo run
    should cost a connection, not an API call. Whatever fails on that try (nobody there, another machine's
    host key) falls back to the full path, which says what is wrong and, once connected there, remembers a
    lab instance's address. Returns "remembered", "direct" or "ready" (the path taken)."""
    lab = bool(target.instance_id)
    guess = address_book.lookup(target.instance_id) if lab else target.host  # a direct host: its own
    if guess and hostkeys.lookup(target) is not None:
        stale_host, target.host = target.host, guess
        try:
            if lab:
                keys.ensure_key(target)
            # A lab address is remembered only once cloud-init had finished there (below); it survives a
            # reboot, never a stop and start, and a reboot re-runs none of the lab's first-boot set-up.
            session.connect(wait_cloud_init=not lab, quick_timeout=QUICK_TIMEOUT_S)
            return "remembered" if lab else "direct"
        except HostUnreachable:
            raise  # connected, but cloud-init failed: the full path would say the same
        except Exception as exc:  # nobody there, another machine's host key, a cut handshake: ask AWS
            session.close()
            log.info("%s: not reachable at %s (%s); %s", target.label,
                     "its last address %s" % guess if lab else guess, exc or type(exc).__name__,
                     "asking AWS" if lab else "waiting for it")
            target.host = stale_host
    ready(target, timeout, start)
    session.connect()
    address_book.remember(target.instance_id, target.host)
    return "ready"
