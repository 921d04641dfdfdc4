"""The agent's exceptions; each fatal kind carries the process exit code it maps to."""
from __future__ import print_function, division, absolute_import

from agent.contract import EXIT_FATAL, EXIT_USAGE


class AgentError(Exception):
    """A fatal error: the command cannot go on (exit 1)."""
    exit_code = EXIT_FATAL


class UsageError(AgentError):
    """The command line asks for something that does not exist (exit 2)."""
    exit_code = EXIT_USAGE


class FetchError(AgentError):
    """A model file could not be fetched or did not verify (exit 1)."""


class InputError(Exception):
    """One input cannot be classified; it gets an error record, the rest go on."""
