"""Host readiness (mxlab/hosts/readiness.py, with the host-key pinning it drives) against the emulator and real
sshd hosts: instance states, console host keys on Xen types, cloud-init's exit codes."""
import pytest

from mxlab.hosts import hostkeys, readiness
from mxlab.errors import HostKeyError, HostUnreachable
from mxlab.hosts.session import Session
from mxlab.lab.targets import Target, direct_target


@pytest.fixture
def emulated(aws_emulator, monkeypatch, tmp_path):
    """The emulator as mxlab's AWS (its variables in this process), and an empty MXLAB_HOME."""
    for key, value in aws_emulator.env({}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "mxlab-home"))
    from mxlab.lab import aws
    aws.configure(None, None)
    return aws_emulator


def _instance(emulator, instance_type):
    ec2 = emulator.boto3_client("ec2")
    (inst,) = ec2.run_instances(ImageId=emulator.default_image_id(), MinCount=1, MaxCount=1,
                                InstanceType=instance_type)["Instances"]
    return inst["InstanceId"]


def _lab_target(instance_id, tmp_path, host="127.0.0.1", port=22):
    return Target(label="attendee-1", host=host, port=port, user="ubuntu", identity=tmp_path / "k.pem",
                  known_hosts=tmp_path / "known_hosts", pin_from_console=True, instance_id=instance_id,
                  attendee=1)


@pytest.mark.aws_behaviour
def test_host_keys_are_read_on_xen_types_without_latest(emulated, tmp_path):
    """p2/t2/m4...: GetConsoleOutput(Latest=True) is refused (UnsupportedOperation); mxlab asks again without."""
    iid = _instance(emulated, "p2.xlarge")
    emulated.set_host_keys(iid, ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhvc3Rrzxl0aGF0aXNwaW5uZWRieWlk"])
    with pytest.raises(Exception) as refused:
        emulated.boto3_client("ec2").get_console_output(InstanceId=iid, Latest=True)
    assert "UnsupportedOperation" in str(refused.value)
    target = _lab_target(iid, tmp_path)
    assert hostkeys.pin_from_console(target, timeout=5) == iid
    assert (tmp_path / "known_hosts").read_text().startswith(iid + " ssh-ed25519 AAAAC3")


@pytest.mark.aws_behaviour
def test_keys_never_pinned_before_a_restart_fail_at_once_saying_why(emulated, tmp_path):
    """cloud-init prints the host keys on the first boot only: an instance stopped and started before mxlab
    pinned them shows a finished boot without them, so waiting (up to the run's timeout) cannot help."""
    iid = _instance(emulated, "m5.2xlarge")
    emulated.set_host_keys(iid, ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhvc3Rrzxl0aGF0aXNwaW5uZWRieWlk"])
    ec2 = emulated.boto3_client("ec2")
    ec2.stop_instances(InstanceIds=[iid])
    ec2.start_instances(InstanceIds=[iid])
    target = _lab_target(iid, tmp_path)
    with pytest.raises(HostKeyError) as refused:
        hostkeys.pin_from_console(target, timeout=60)
    text = str(refused.value)
    assert iid in text and "first boot only" in text and "pin them by hand" in text, text
    assert not (tmp_path / "known_hosts").exists(), "nothing pinned"


def test_a_console_still_printing_or_before_cloud_init_is_waited_for():
    first_boot = ("Cloud-init v. 23.1 running\n-----BEGIN SSH HOST KEY KEYS-----\n"
                  "ec2: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhvc3Rrzxl0aGF0aXNwaW5uZWRieWlk root@h\n"
                  "-----END SSH HOST KEY KEYS-----\nCloud-init v. 23.1.2-0ubuntu0~22.04.1 finished at Mon\n")
    assert not hostkeys.boot_finished_without_keys(first_boot), "keys there"
    assert not hostkeys.boot_finished_without_keys(first_boot.split("-----END")[0]), "still printing"
    assert not hostkeys.boot_finished_without_keys("[ 0.0] Linux version 5.15\n"), "cloud-init not done yet"
    assert not hostkeys.boot_finished_without_keys("")
    assert hostkeys.boot_finished_without_keys(
        "[ 0.0] Linux version 5.15\nCloud-init v. 23.1.2-0ubuntu0~22.04.1 finished at Mon, 07 Dec 2026\n")


@pytest.mark.aws_behaviour
def test_a_stopped_instance_is_named_and_start_starts_it(emulated, tmp_path):
    iid = _instance(emulated, "m5.2xlarge")
    ec2 = emulated.boto3_client("ec2")
    first_ip = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PublicIpAddress"]
    ec2.stop_instances(InstanceIds=[iid])
    target = _lab_target(iid, tmp_path, host=first_ip)
    with pytest.raises(readiness.InstanceStopped) as stopped:
        readiness.ensure_running(target, timeout=5)
    assert iid in str(stopped.value) and "--start" in str(stopped.value)
    assert target.address == "-", "a stopped instance has no address"
    readiness.ensure_running(target, timeout=10, start=True)
    assert target.state == "running" and target.host not in (None, first_ip)


@pytest.mark.aws_behaviour
@pytest.mark.parametrize("status,ok", [("done", True), ("recoverable", True), ("error", False)])
def test_cloud_init_exit_2_counts_as_done_with_its_warning(sshd_factory, status, ok):
    """cloud-init >= 23.4 exits 2 for 'done, with recoverable errors': the host is usable."""
    host = sshd_factory(cloud_init=status)
    target = direct_target(host.hostspec, host.user, host.identity, host.known_hosts)
    with Session(target, timeout=20) as session:
        session.connect(wait_cloud_init=False)
        if ok:
            warning = session.wait_cloud_init()
            assert (warning is None) == (status == "done")
            if warning:
                assert "recoverable errors (exit 2)" in warning and "locale" in warning
        else:
            with pytest.raises(HostUnreachable) as failed:
                session.wait_cloud_init()
            assert "exit 1" in str(failed.value) and "scripts_user" in str(failed.value)


@pytest.mark.aws_behaviour
@pytest.mark.parametrize("status,ok", [("done", True), ("recoverable", True), ("error", False)])
def test_connect_leaves_the_cloud_init_wait_to_the_first_command(sshd_factory, status, ok, caplog):
    """connect() waits for cloud-init in the session's first command (a round trip fewer across a far
    network): that command runs only once cloud-init is done, and a failed cloud-init fails it as before."""
    host = sshd_factory(cloud_init=status)
    target = direct_target(host.hostspec, host.user, host.identity, host.known_hosts)
    with Session(target, timeout=20) as session:
        session.connect()
        if ok:
            rc, out, err = session.exec("echo first; echo said >&2")
            assert (rc, out, err) == (0, "first\n", "said\n")
            assert ("recoverable errors (exit 2)" in caplog.text) == (status == "recoverable")
            assert session.exec("echo second")[1] == "second\n"
        else:
            with pytest.raises(HostUnreachable) as failed:
                session.exec("echo ran > ran.txt")
            assert "exit 1" in str(failed.value) and "scripts_user" in str(failed.value)
            assert not (host.home / "ran.txt").exists()


def test_a_direct_host_must_be_pinned_before_ssh(sshd_factory, tmp_path):
    host = sshd_factory()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = direct_target(host.hostspec, host.user, host.identity, empty)
    readiness.ready(target, timeout=10)  # SSH is up; trust is the connection's (or ssh's) business
    with pytest.raises(Exception) as refused:
        readiness.check_pinned(target)
    assert "[127.0.0.1]:%d" % host.port in str(refused.value) and "ssh-keyscan" in str(refused.value)
