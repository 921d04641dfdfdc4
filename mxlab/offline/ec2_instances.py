"""EC2 instances in the emulator as real AWS runs them: their life cycle and their console.

What moto 5.2.5 lacks and this models (each has an `aws_behaviour` test):
- Stop/start: a stopped instance loses its public IPv4; a started one gets a NEW public IP (no Elastic IP)
  while keeping its id (and, on the instance, its disk and host keys). Every way an instance stops
  (StopInstances, the cost-guard alarm, a deadline schedule, a stack delete) goes through moto's
  Instance.stop/start/terminate, so listeners (the sandbox's sshd for that instance) hear of each one.
- The console: cloud-init prints the `BEGIN SSH HOST KEY KEYS` block on an instance's FIRST boot only
  (cc_keys_to_console runs once per instance); after a stop/start the console shows a boot log without it.
- The cost guard: a CloudWatch alarm whose action is `arn:aws:automate:<region>:ec2:stop` (or
  `:terminate`) stops (terminates) the instance in its InstanceId dimension when it goes to ALARM
  (SetAlarmState included, as in AWS); moto records alarm states but runs no actions.
- GetConsoleOutput with Latest=True is not supported on Xen instance families (p2, p3, m4, c4, t2, ...):
  AWS answers UnsupportedOperation; without Latest it works.
Public IPs are loopback addresses (127.0.0.10-254): tests reach an instance's public IP and nothing
leaves 127.0.0.0/8.
"""
import itertools
import threading

# Instance families that run on the Xen hypervisor (no `Latest` console output there).
XEN_FAMILIES = frozenset("""
    c1 c3 c4 cc2 cg1 cr1 d2 f1 g2 g3 g3s h1 hi1 hs1 i2 i3 m1 m2 m3 m4 p2 p3 r3 r4 t1 t2 x1 x1e
""".split())

_loopback_ips = ("127.0.0.%d" % i for i in itertools.cycle(range(10, 255)))
_lock = threading.Lock()
_console = {}  # instance id -> [first-boot text or None, boots so far]
_listeners = []  # callables (event, instance id, public ip or None); event: "start", "stop", "terminate"


def next_public_ip():
    with _lock:
        return next(_loopback_ips)


def is_xen(instance_type):
    return (instance_type or "").split(".", 1)[0] in XEN_FAMILIES


def add_listener(callback):
    """callback(event, instance_id, public_ip) after each start/stop/terminate; returns a remover."""
    _listeners.append(callback)
    return lambda: _listeners.remove(callback) if callback in _listeners else None


def _notify(event, instance):
    for callback in list(_listeners):
        callback(event, instance.id, instance.public_ip)


def set_first_boot_console(instance_id, text):
    """What the instance prints on its first boot (cloud-init's host-key block included)."""
    with _lock:
        _console[instance_id] = [text, 1]


def console_text(instance_id, default):
    with _lock:
        first, boots = _console.get(instance_id, [None, 1])
    if first is None:
        return default
    if boots == 1:
        return first
    # A later boot: cloud-init ran its per-instance modules already, so no host-key block.
    return ("[    0.000000] Linux version 5.15.0-1051-aws (buildd@lcy02-amd64-022)\n"
            "[   10.000000] cloud-init[612]: Cloud-init v. 23.1 running 'init' (boot %d)\n"
            "[   18.000000] cloud-init[700]: Cloud-init v. 23.1 finished\n" % boots)


def reset():
    with _lock:
        _console.clear()


def install():
    """Patch moto; emulator.install_extensions() calls it, once per process."""
    from moto.ec2.models import elastic_network_interfaces, instances

    elastic_network_interfaces.random_public_ip = next_public_ip
    instances.Instance.public_dns_name = property(lambda self: "localhost" if self.public_ip else None)
    _install_life_cycle()
    _install_console_output()
    _install_alarm_actions()


def _install_life_cycle():
    """Stop releases the public IP, start gives a new one and counts a boot; listeners hear each."""
    from moto.ec2.models import instances
    original_start, original_stop = instances.Instance.start, instances.Instance.stop
    original_terminate = instances.Instance.terminate

    def start(self):
        was = self._state.name
        previous = original_start(self)
        if was != "running":
            nic = self.nics.get(0) if hasattr(self.nics, "get") else None
            if nic is not None and not nic.public_ip:
                nic.public_ip = next_public_ip()  # a new address each start
            with _lock:
                if self.id in _console:
                    _console[self.id][1] += 1
            _notify("start", self)
        return previous

    def stop(self):
        was = self._state.name
        previous = original_stop(self)
        for nic in self.nics.values():
            nic.public_ip = None  # the public IPv4 is released on stop
        if was not in ("stopped", "terminated"):
            _notify("stop", self)
        return previous

    def terminate(self):
        was = self._state.name
        previous = original_terminate(self)
        if was != "terminated":
            _notify("terminate", self)
        return previous

    instances.Instance.start, instances.Instance.stop = start, stop
    instances.Instance.terminate = terminate


def _install_console_output():
    """The console as set per instance (host keys at first boot only); no `Latest` on Xen types."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses import general
    default_console = general.SAMPLE_CONSOLE_OUTPUT

    def get_console_output(self):
        from moto.core.responses import ActionResult
        from moto.core.utils import utcnow
        from moto.ec2.responses.general import Base64EncodedString
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        if str(self._get_param("Latest", "false")).lower() == "true" and is_xen(instance.instance_type):
            raise EC2ClientError("UnsupportedOperation",
                                 "Retrieving the latest console output is not supported for instance "
                                 "type %s." % instance.instance_type)
        return ActionResult({
            "InstanceId": instance.id,
            "Timestamp": utcnow(),
            "Output": Base64EncodedString.from_raw_string(console_text(instance.id, default_console)),
        })
    general.General.get_console_output = get_console_output


def _install_alarm_actions():
    from moto.cloudwatch.models import Alarm
    from moto.ec2.models import ec2_backends

    original_update = Alarm.update_state

    def update_state(self, reason, reason_data, state_value):
        was = self.state_value
        original_update(self, reason, reason_data, state_value)
        if state_value != "ALARM" or was == "ALARM":
            return
        ids = [d.value for d in self.dimensions if d.name == "InstanceId"]
        for action in self.alarm_actions:
            verb = action.rsplit(":", 1)[-1] if action.startswith("arn:aws:automate:") else None
            if ids and verb in ("stop", "terminate"):
                backend = ec2_backends[self.alarm_arn.split(":")[4]][self.region_name]
                (backend.stop_instances if verb == "stop" else backend.terminate_instances)(ids)
    Alarm.update_state = update_state
