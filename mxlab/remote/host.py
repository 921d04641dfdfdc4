"""One host made ready for the agent, the same way for `mxlab run`, `run --shard` and `prepare`: reached
(hosts/readiness.py: a stopped instance named at once, started with --start), the agent uploaded (install.py),
its environment made sure of (python_env.py); and any failure there turned into one text.

Written once so that the same fault reads the same whichever command met it.
"""
import logging

from mxlab.errors import MxlabError
from mxlab.hosts import readiness
from mxlab.remote import install, python_env
from mxlab.remote.python_env import RemoteEnv
from mxlab.remote.run import CONNECTION_ERRORS

log = logging.getLogger(__name__)

_HOME = "MXLAB-HOME"  # _look's first line: the home, so that nothing asks for it


def reach(session, timeout, start=False, on_step=None):
    """Connect `session` to its target (readiness.reach); the target's address is then the live one."""
    (on_step or _quiet)("connecting")
    return readiness.reach(session.target, session, timeout, start=start)


def install_agent(session, env=None, engine="mxnet", say=None, lock=True, on_step=None):
    """Upload the agent and make sure of its environment on a connected session; returns the RemoteEnv
    (its `prefix` activates it) and the environment's name. `lock`: False when the caller holds the host's
    set-up lock (prepare)."""
    step = on_step or _quiet
    step("uploading the agent")
    have, env_text = _look(session)
    install.upload_agent(session, have=have)
    step("preparing the environment")
    remote_env = RemoteEnv(session, say=say, lock=lock, env_text=env_text)
    return remote_env, remote_env.ensure(env, engine=engine)


def _look(session):
    """(the agent's hashes there, env.sh's text or None) and the home, from one command: across a far network
    each command is round trips, and a run on a prepared host needs nothing more before it starts."""
    rc, out, _ = session.exec("printf '%s %%s\\n' \"$HOME\"; %s; %s"
                              % (_HOME, python_env.env_file_command(), install.hash_command()))
    first, _, rest = out.partition("\n")
    if first.startswith(_HOME + " /"):
        session.knows_home(first[len(_HOME) + 1:])
    return install.parse_hashes(rc, rest), python_env.parse_env_file(rest)


def failure_text(target, exc):
    """The one text for any exception met on a host: mxlab's own errors as they say it; a dropped connection
    to a lab instance EC2 now calls stopped or gone as that (readiness.not_running: the same text as when
    found before connecting); other connection errors with the host and address; anything else as unexpected
    (logged with its traceback at -v)."""
    if isinstance(exc, MxlabError):
        return str(exc)
    if isinstance(exc, CONNECTION_ERRORS):
        address = target.address  # before stopped_now(): a stopped instance has no address any more
        stopped = readiness.stopped_now(target)
        if stopped is not None:
            return str(stopped)
        return "%s (%s): connection failed: %s" % (target.label, address, exc or type(exc).__name__)
    log.debug("%s: unexpected error", target.label, exc_info=(type(exc), exc, exc.__traceback__))
    return "%s: unexpected %s: %s" % (target.label, type(exc).__name__, exc)


def _quiet(message):
    pass
