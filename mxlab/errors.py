"""The errors mxlab reports to the operator, and the exit status each maps to."""
from mxlab import status_codes


class MxlabError(Exception):
    """A failure the operator can act on; str() is the whole message."""

    exit_code = status_codes.FAILED


class UsageError(MxlabError):
    """Bad command-line input (unknown model, missing image, no stack, bad --host)."""

    exit_code = status_codes.USAGE


class HostKeyError(MxlabError):
    """A host offered a key that is not pinned/known: nothing was run on it."""


class HostUnreachable(MxlabError):
    """A host did not become ready (running, SSH banner, cloud-init) in time."""


class GaveUp(HostUnreachable):
    """backoff.retry ran out of time: names what it waited for and the last error.

    Not an OSError (the built-in TimeoutError is one): code that treats OSError as a dropped
    connection and reconnects can never take a wait that has ended for one.
    """


class RemoteCommandError(MxlabError):
    """A command on the host failed (environment set-up, agent fatal error)."""


class CommandTimeout(RemoteCommandError):
    """A command on the host ran past its deadline; the connection itself is fine (not an OSError)."""
