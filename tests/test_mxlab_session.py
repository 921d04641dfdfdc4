"""Connection failures against real sshd hosts: bad identity, host down; readiness backoff is bounded."""
import itertools

import pytest

from mxlab.hosts import backoff
from mxlab.errors import CommandTimeout, GaveUp
from tests.fixtures_sshd import direct_args
from mxlab.offline.lab_host import free_port


def test_bad_identity_fails_authentication_without_leaking_the_key(conda_host, mxlab_cli, sample_photos,
                                                                   tmp_path):
    import subprocess
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    args = direct_args(conda_host)
    args[args.index("--identity") + 1] = wrong
    code, out, err = mxlab_cli("run", *args, "-v", "--model", "efficientnet-lite0", "--results", tmp_path / "r",
                               sample_photos / "coffee.jpg")
    assert code == 1
    assert "authentication as %r" % conda_host.user in err and str(wrong) in err
    secret = "".join(wrong.read_text().splitlines()[1:-1])
    assert secret[:40] not in out + err


def test_identity_that_is_not_a_key_is_reported(conda_host, mxlab_cli, sample_photos, tmp_path):
    junk = tmp_path / "junk"
    junk.write_text("not a key\n")
    args = direct_args(conda_host)
    args[args.index("--identity") + 1] = junk
    code, out, err = mxlab_cli("run", *args, "--model", "efficientnet-lite0", "--results", tmp_path,
                               sample_photos / "coffee.jpg")
    assert code == 1 and "not a private key" in err


def test_host_down_gives_a_clear_timeout(conda_host, mxlab_cli, sample_photos, tmp_path):
    args = direct_args(conda_host)
    args[args.index("--host") + 1] = "127.0.0.1:%d" % free_port()
    code, out, err = mxlab_cli("run", *args, "--timeout", "2", "--model", "efficientnet-lite0",
                               "--results", tmp_path, sample_photos / "coffee.jpg")
    assert code == 1
    assert "waiting for the SSH server" in err and "gave up after 2 s" in err


def test_backoff_grows_is_capped_and_stops_at_the_deadline():
    now = [0.0]
    got = []
    for d in backoff.delays(30, first=0.5, cap=8, clock=lambda: now[0]):
        got.append(d)
        now[0] += d
    assert got[:5] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert max(got) == 8 and abs(sum(got) - 30) < 1e-9


def test_retry_returns_the_first_success_and_names_the_last_error():
    calls = itertools.count()

    def flaky():
        if next(calls) < 2:
            raise OSError("refused")
        return "ok"

    assert backoff.retry(flaky, 10, "x", retry_on=(OSError,), sleep=lambda s: None) == "ok"
    try:
        backoff.retry(lambda: (_ for _ in ()).throw(OSError("still refused")), 0.01, "waiting for h",
                      retry_on=(OSError,), sleep=lambda s: None)
    except GaveUp as exc:
        assert "waiting for h" in str(exc) and "still refused" in str(exc)
    else:
        raise AssertionError("retry did not give up")


def _direct_session(host, known_hosts=None, timeout=10):
    from mxlab.lab import targets
    from mxlab.hosts.session import Session
    target = targets.direct_target(host.hostspec, host.user, host.identity, known_hosts or host.known_hosts)
    return Session(target, timeout=timeout)


def _transport_threads():
    import threading

    import paramiko
    return {t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_alive()}


def test_a_failed_connect_closes_its_client(conda_host, tmp_path):
    import time

    import pytest

    from mxlab.errors import MxlabError
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    before = _transport_threads()
    session = _direct_session(conda_host, known_hosts=empty)
    with pytest.raises(MxlabError):
        session.connect(wait_cloud_init=False)  # unknown host key: rejected
    deadline = time.monotonic() + 5
    while _transport_threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _transport_threads() - before, "a failed connect left its transport running"


def test_exec_reads_stdout_and_a_large_stderr_together(conda_host):
    with _direct_session(conda_host) as session:
        session.connect(wait_cloud_init=False)
        lines = []
        rc, out, err = session.exec("echo first; head -c 4000000 /dev/zero | tr '\\0' e >&2; "
                                    "seq 1 20000; exit 7", timeout=60, on_stdout=lines.append)
        assert rc == 7
        assert len(err) == 4000000 and set(err) == {"e"}
        assert out.splitlines()[0] == "first" and out.splitlines()[-1] == "20000" and len(lines) == 20001
        # The session is still usable, and a command past its timeout is cut off.
        assert session.exec("echo again")[1] == "again\n"
        with pytest.raises(CommandTimeout) as slow:  # a slow command, not a dropped connection
            session.exec("sleep 30", timeout=1)
        assert not isinstance(slow.value, OSError)
        assert session.exec("echo still")[1] == "still\n"


def test_the_connection_sends_small_writes_at_once(conda_host):
    """TCP_NODELAY: paramiko writes an SFTP request in pieces; with Nagle on, the last piece waited for the
    server's delayed ACK (~40 ms a request: every poll of a run, every upload)."""
    import socket
    with _direct_session(conda_host) as session:
        session.connect(wait_cloud_init=False)
        sock = session.client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert session.sftp().normalize(".")  # and it is the connection everything goes over
