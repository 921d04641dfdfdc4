"""The errors mxlab reports to the operator, and the exit status each maps to."""
import re

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


class AwsAccessDenied(MxlabError):
    """AWS refused a call for lack of an IAM permission; names the action and where the policy is.

    Raised for every boto3 call (mxlab/lab/aws.py hooks each session's clients) and for a `cdk deploy`
    or `cdk destroy` that CloudFormation failed for one (mxlab/lab/deploy.py reads its output).
    """

    # the error codes AWS gives a call the caller's policies do not allow
    CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess")
    # "User: arn:... is not authorized to perform: ec2:StartInstances on resource: ..." (every service)
    _ACTION = re.compile(r"not authorized to perform:? ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")

    def __init__(self, action, doing=None):
        self.action = action
        super().__init__("AWS refused %s%s: the IAM policy of this user does not allow it; "
                         "`mxlab policy` prints what mxlab needs" % (action, " (%s)" % doing if doing else ""))

    @classmethod
    def action_in(cls, text):
        """The action an AWS refusal message names, or None."""
        found = cls._ACTION.search(text or "")
        return found.group(1) if found else None
