"""SSM Run Command in the emulator: moto records SendCommand and answers every invocation "Success" with
no output, running nothing. Here an AWS-RunShellScript command runs on the instance, as its SSM agent
would, through a runner the offline lab registers for the instances it hosts (set_runner): its output,
exit code and status come back from GetCommandInvocation. As in AWS, SendCommand to an instance that is
not running (or that no runner hosts: no SSM agent registered) fails with InvalidInstanceId.
Not modelled: the agent's registration delay after boot, S3 output, rate limits, other documents.
"""
import threading

_lock = threading.Lock()
# (instance id, [shell lines]) -> (exit code, stdout, stderr), or None where it hosts no such instance;
# called with lines None it only says whether it hosts the instance (None: no).
_runner = None


def set_runner(runner):
    """Register the callable that runs commands on hosted instances; returns an unregister callable."""
    global _runner
    with _lock:
        _runner = runner

    def unregister():
        global _runner
        with _lock:
            if _runner is runner:
                _runner = None
    return unregister


def install():
    """Patch moto; emulator.install_extensions() calls it, once per process."""
    from moto.ssm.exceptions import SSMException as RESTError  # (code, message), as moto raises them
    from moto.ec2.models import ec2_backends
    from moto.ssm.models import SimpleSystemManagerBackend

    original_send = SimpleSystemManagerBackend.send_command

    def send_command(self, comment, document_name, timeout_seconds, instance_ids, *args, **kwargs):
        runner = _runner
        if document_name == "AWS-RunShellScript" and runner is not None:
            ec2 = ec2_backends[self.account_id][self.region_name]
            for instance_id in instance_ids:
                instance = ec2.get_instance(instance_id) if instance_id in _ids(ec2) else None
                if instance is None or instance._state.name != "running" or runner(instance_id, None) is None:
                    raise RESTError("InvalidInstanceId",
                                    "Instances [[%s]] not in a valid state for account %s"
                                    % (instance_id, self.account_id))
        command = original_send(self, comment, document_name, timeout_seconds, instance_ids, *args, **kwargs)
        if document_name == "AWS-RunShellScript" and runner is not None:
            lines = list((command.parameters or {}).get("commands", []))
            for invocation in command.invocations:
                result = runner(invocation["InstanceId"], lines)
                if result is None:
                    code, stdout, stderr = 1, "", "no SSM agent answered on this instance"
                else:
                    code, stdout, stderr = result
                status = "Success" if code == 0 else "Failed"
                # GetCommandInvocation's output is cut at 24,000 characters in AWS too
                invocation.update({"ResponseCode": code, "Status": status, "StatusDetails": status,
                                   "StandardOutputContent": stdout[:24000],
                                   "StandardErrorContent": stderr[:8000]})
        return command

    SimpleSystemManagerBackend.send_command = send_command


def _ids(ec2):
    return {i.id for reservation in ec2.reservations.values() for i in reservation.instances}
