"""Connection failures against real sshd hosts: bad identity, host down; readiness backoff is bounded."""
import itertools

from mxlab import backoff
from tests.fixtures_sshd import direct_args
from tests.sshd_host import free_port


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
    except TimeoutError as exc:
        assert "waiting for h" in str(exc) and "still refused" in str(exc)
    else:
        raise AssertionError("retry did not give up")
