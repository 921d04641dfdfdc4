"""Host-key trust: keys from the instance console pinned in our own known_hosts; never auto-added.

A lab instance's keys are pinned under its instance id (an OpenSSH HostKeyAlias, e.g. `i-0abc... ssh-ed25519
AAAA...`), not its address: a stopped and started instance comes back on a new public IP with the same keys,
and cloud-init prints them on its first boot only. A direct --host is looked up as `host` or `[host]:port`.

Where the console no longer shows the keys (the instance was stopped before anything pinned them: the idle
stop or the deadline the evening after `mxlab up`), they are read through SSM Run Command
(`cat /etc/ssh/ssh_host_*_key.pub`, which the instance role allows): an AWS API call authenticated as the
organiser, answered by the instance's own SSM agent, so as trustworthy as the console. `mxlab up` pins every
instance at once (pin_every_instance), before any stop can come.
"""
import base64
import binascii
import hashlib
import logging
import re
import threading
import time

import paramiko

from mxlab.hosts import backoff
from mxlab.atomic import write_atomic
from mxlab.lab import aws
from mxlab.errors import GaveUp, HostKeyError

log = logging.getLogger(__name__)
_PIN_LOCK = threading.Lock()  # one known_hosts file, several hosts pinned at once

_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
_END = "-----END SSH HOST KEY KEYS-----"
_KEY_RE = re.compile(r"((?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp(?:256|384|521)|"
                     r"sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com))\s+([A-Za-z0-9+/=]{20,})")


def parse_console_keys(text):
    """(type, base64) pairs from cloud-init's host-key block; [] if the block is not (yet) there.

    Lines may carry a prefix ("ec2: ", a kernel timestamp); only the last complete block counts.
    """
    if not text or _BEGIN not in text:
        return []
    block = text.rsplit(_BEGIN, 1)[1]
    if _END not in block:
        return []  # still being printed
    keys = []
    for line in block.split(_END, 1)[0].splitlines():
        m = _KEY_RE.search(line)
        if m:
            try:
                base64.b64decode(m.group(2), validate=True)
            except (binascii.Error, ValueError):
                continue
            keys.append((m.group(1), m.group(2)))
    return keys


# cloud-init's last line of a boot ("Cloud-init v. 23.1.2-0ubuntu0~22.04.1 finished at ..."): its host-key block,
# printed by the final stage on the first boot only, comes before it or never.
_FINISHED_RE = re.compile(r"Cloud-init v\. \S+ finished")


class KeysNotOnConsole(HostKeyError):
    """The console shows a finished boot without the host-key block: waiting cannot bring them."""


def boot_finished_without_keys(text):
    """True when the console shows a boot that cloud-init finished without printing host keys (an instance
    restarted since its first boot): waiting longer cannot bring them."""
    return bool(text) and not parse_console_keys(text) and bool(_FINISHED_RE.search(text))


def host_entry(host, port):
    return host if port == 22 else "[%s]:%d" % (host, port)


def alias(target):
    """The name target's keys are pinned under: the instance id for a lab instance, else the address."""
    return target.instance_id if target.pin_from_console and target.instance_id else host_entry(target.host,
                                                                                                 target.port)


def lookup(target):
    """{key type: paramiko key} pinned for target, or None."""
    return load(target.known_hosts).lookup(alias(target))


def fingerprint(key):
    """OpenSSH-style SHA256 fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "%s SHA256:%s" % (key.get_name(), base64.b64encode(digest).decode().rstrip("="))


def _fingerprint_b64(keytype, b64):
    digest = hashlib.sha256(base64.b64decode(b64)).digest()
    return "%s SHA256:%s" % (keytype, base64.b64encode(digest).decode().rstrip("="))


def load(path):
    """A paramiko HostKeys for `path` (empty if missing); loaded read-only: we never save learned keys."""
    keys = paramiko.HostKeys()
    if path.is_file():
        keys.load(str(path))
    return keys


def console_output(instance_id):
    """The instance's console text. `Latest` gives recent output within seconds on Nitro types, but Xen
    types (p2, p3, m4, c4, t2, ...) refuse it: there, ask again without it."""
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs (botocore costs ~0.2 s)

    ec2 = aws.client("ec2")
    try:
        return ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output") or ""
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "UnsupportedOperation":
            raise
    log.debug("%s: no Latest console output for this instance type; reading the buffered one", instance_id)
    return ec2.get_console_output(InstanceId=instance_id).get("Output") or ""


def wait_console_keys(target, timeout=backoff.READY_TIMEOUT, sleep=None):
    """Poll GetConsoleOutput (bounded backoff) until the instance has printed its host keys."""
    restarted = ("An instance whose keys were never pinned here and that has been restarted since no longer "
                 "shows them: pin them by hand (`%s TYPE KEY` lines in %s, checked on the instance with "
                 "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) or replace the instance"
                 % (target.instance_id, target.known_hosts))

    def attempt():
        text = console_output(target.instance_id)
        keys = parse_console_keys(text)
        if keys:
            return keys
        if boot_finished_without_keys(text):
            raise KeysNotOnConsole(
                "%s (%s): no host keys to pin: the instance's console shows a boot that cloud-init finished "
                "without printing them (it prints them on the first boot only). Nothing was run. %s."
                % (target.label, target.instance_id, restarted))
        raise LookupError("no SSH HOST KEY KEYS block in the console output yet")

    kw = {"sleep": sleep} if sleep else {}
    return backoff.retry(
        attempt, timeout, "%s (%s): waiting for host keys on the console" % (target.label, target.instance_id),
        retry_on=(LookupError,), first=2.0,
        advice="The instance prints them on its first boot, once cloud-init has run; check it with `aws ec2 "
               "get-console-output --instance-id %s`. %s" % (target.instance_id, restarted), **kw)


SSM_KEYS_SCRIPT = "cat /etc/ssh/ssh_host_*_key.pub"
_SSM_PENDING = ("Pending", "InProgress", "Delayed")


def ssm_host_keys(instance_id, timeout=120, sleep=time.sleep):
    """(type, base64) pairs of the instance's host keys, read by SSM Run Command; LookupError if SSM cannot."""
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs (botocore costs ~0.2 s)

    ssm = aws.client("ssm")
    try:
        command = ssm.send_command(InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
                                   Parameters={"commands": [SSM_KEYS_SCRIPT]},
                                   Comment="mxlab: read the host keys to pin")["Command"]
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise LookupError("SSM Run Command refused (%s: %s)" % (error.get("Code"), error.get("Message")))
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvocationDoesNotExist":
                raise LookupError("SSM Run Command: %s" % exc)
            answer = {"Status": "Pending"}  # asked too soon after send_command
        if answer["Status"] not in _SSM_PENDING:
            break
        if time.monotonic() > deadline:
            raise LookupError("SSM Run Command still %s after %d s" % (answer["Status"], timeout))
        sleep(1.0)
    if answer["Status"] != "Success":
        raise LookupError("SSM Run Command %s: %s" % (answer["Status"], answer.get("StandardErrorContent", "")[:300]))
    keys = []
    for line in answer.get("StandardOutputContent", "").splitlines():
        m = _KEY_RE.search(line)
        if m:
            keys.append((m.group(1), m.group(2)))
    if not keys:
        raise LookupError("SSM Run Command printed no host keys")
    return keys


def pin_from_console(target, timeout=backoff.READY_TIMEOUT, sleep=None):
    """Pin the instance's host keys under its instance id unless keys are already pinned: from the
    console, or, once that has waited `timeout` in vain, through SSM Run Command.

    Returns the alias. Already-pinned keys win: a replaced instance with new keys then fails the
    connection with a mismatch message instead of being trusted silently.
    """
    entry = alias(target)
    if lookup(target):
        return entry
    how = "the console of %s" % target.instance_id
    try:
        keys = wait_console_keys(target, timeout, sleep)
    except (GaveUp, KeysNotOnConsole) as console:
        try:
            keys = ssm_host_keys(target.instance_id)
        except LookupError as ssm:
            raise type(console)("%s Through SSM Run Command neither: %s." % (console, ssm)) from None
        how = "SSM Run Command on %s (its console does not show them)" % target.instance_id
    target.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _PIN_LOCK:  # hosts are made ready in threads: each read-and-rewrite must see the others' keys
        earlier = target.known_hosts.read_text() if target.known_hosts.is_file() else ""
        if earlier and not earlier.endswith("\n"):
            earlier += "\n"
        # All of this host's keys land together or not at all: a partial set would be trusted as is.
        write_atomic(target.known_hosts, earlier + "".join("%s %s %s\n" % (entry, t, b) for t, b in keys))
    log.info("%s: pinned %d host key(s) for %s from %s: %s", target.label, len(keys), entry, how,
             "; ".join(_fingerprint_b64(t, b) for t, b in keys))
    return entry


def pin_every_instance(lab_targets, say, timeout=backoff.READY_TIMEOUT):
    """Pin every lab instance's keys now (`mxlab up`): cloud-init prints them on the first boot only, and
    an instance stopped before its first prepare/run/ssh would otherwise come back unverifiable.
    A host that cannot be pinned yet is said and left for its first use; returns how many were pinned."""
    from concurrent.futures import ThreadPoolExecutor

    def pin(target):
        try:
            was = bool(lookup(target))
            pin_from_console(target, timeout)
            return target, "already pinned" if was else "pinned", None
        except Exception as exc:  # one host's trouble must not hide the others' pins
            return target, None, exc

    pinned = 0
    if lab_targets:
        say("pinning the host keys of %d instance(s): each console is read until it shows them (up to %d s; "
            "--timeout sets it)" % (len(lab_targets), timeout))
    # All at once (waiting on consoles, not working): the whole lab waits `timeout` at most, not per batch.
    with ThreadPoolExecutor(max_workers=min(100, len(lab_targets) or 1)) as pool:
        for target, done, exc in pool.map(pin, lab_targets):
            if exc is None:
                pinned += 1
                say("%s (%s): host keys %s" % (target.label, target.instance_id, done))
            else:
                say("%s (%s): host keys NOT pinned yet (%s); mxlab tries again on first use"
                    % (target.label, target.instance_id, exc))
    return pinned


def how_to_proceed(target, entry):
    if target.pin_from_console:
        return ("If the instance was replaced, remove its pinned entry with "
                "`ssh-keygen -R '%s' -f %s` and run again (mxlab re-reads the console)."
                % (entry, target.known_hosts))
    return ("Check the key out of band (e.g. on the host: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), "
            "then add it to %s (e.g. `ssh-keyscan -p %d %s >> %s` after checking) and run again."
            % (target.known_hosts, target.port, target.host, target.known_hosts))


class PinnedKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Verify the server's key against the keys pinned under the target's alias (paramiko itself looks
    keys up by address only, so the client starts with no host keys and every check comes here)."""

    def __init__(self, target):
        self.target = target

    def missing_host_key(self, client, hostname, key):
        t, entry = self.target, alias(self.target)
        pinned = lookup(t)
        if not pinned:
            raise HostKeyError(
                "%s (%s): host key not trusted: the host offered %s, and %s has no key for %s. "
                "Nothing was run. %s" % (t.label, t.address, fingerprint(key), t.known_hosts, entry,
                                          how_to_proceed(t, entry)))
        expected = pinned.get(key.get_name())
        if expected is None or expected != key:
            shown = fingerprint(expected) if expected is not None else " / ".join(
                fingerprint(k) for k in pinned.values())
            raise HostKeyError(
                "%s (%s): HOST KEY MISMATCH: expected %s (pinned for %s in %s), the host offered %s. Nothing was "
                "run; this may be a different machine or an attack. %s"
                % (t.label, t.address, shown, entry, t.known_hosts, fingerprint(key), how_to_proceed(t, entry)))
