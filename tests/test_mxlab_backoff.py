"""mxlab.hosts.backoff gives up with mxlab's own GaveUp: a HostUnreachable, never an OSError (pure)."""
import pytest

from mxlab.hosts import backoff
from mxlab.errors import CommandTimeout, GaveUp, HostUnreachable, RemoteCommandError


def test_giving_up_is_not_a_connection_error_and_carries_the_advice():
    with pytest.raises(GaveUp) as caught:
        backoff.retry(lambda: (_ for _ in ()).throw(OSError("refused")), 0.01, "h: waiting for sshd",
                      retry_on=(OSError,), sleep=lambda s: None, advice="Check the security group.")
    assert not isinstance(caught.value, OSError) and isinstance(caught.value, HostUnreachable)
    assert str(caught.value).startswith("h: waiting for sshd: gave up after 0 s (last error: refused)")
    assert str(caught.value).endswith(". Check the security group.")


def test_a_slow_command_is_a_remote_command_error_not_an_oserror():
    assert issubclass(CommandTimeout, RemoteCommandError) and not issubclass(CommandTimeout, OSError)
