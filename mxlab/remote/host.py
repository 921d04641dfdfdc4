"""One host made ready for the agent, the same way for `mxlab run`, `run --shard` and `prepare`: reached
(hosts/readiness.py: a stopped instance named at once, started with --start), the agent uploaded (install.py),
its environment made sure of (python_env.py); and any failure there turned into one text.

Written once so that the same fault reads the same whichever command met it.
"""
import logging
import posixpath
import shlex

from agent.contract import ENV_FILE, REMOTE_ROOT
from mxlab.errors import MxlabError
from mxlab.hosts import home_book, readiness
from mxlab.remote import install, python_env
from mxlab.remote.python_env import RemoteEnv
from mxlab.remote.run import CONNECTION_ERRORS, NOT_READY_EXIT

log = logging.getLogger(__name__)

_HOME = "MXLAB-HOME"  # _look's first line: the home, so that nothing asks for it
_LOOKED = "MXLAB-LOOK"  # Prepared.script's last line where the host was not ready: _look's exit status
_READY = "MXLAB-READY"


def reach(session, timeout, start=False, on_step=None):
    """Connect `session` to its target (readiness.reach); the target's address is then the live one."""
    (on_step or _quiet)("connecting")
    return readiness.reach(session.target, session, timeout, start=start)


def install_agent(session, env=None, engine="mxnet", say=None, lock=True, on_step=None, looked=None):
    """Upload the agent and make sure of its environment on a connected session; returns the RemoteEnv
    (its `prefix` activates it) and the environment's name. `lock`: False when the caller holds the host's
    set-up lock (prepare). `looked`: run.NotReady's output, where a Prepared check looked already."""
    step = on_step or _quiet
    step("uploading the agent")
    have, env_text = _look(session, looked)
    install.upload_agent(session, have=have)
    step("preparing the environment")
    remote_env = RemoteEnv(session, say=say, lock=lock, env_text=env_text)
    return remote_env, remote_env.ensure(env, engine=engine)


def _look_command():
    return "printf '%s %%s\\n' \"$HOME\"; %s; %s" % (_HOME, python_env.env_file_command(), install.hash_command())


def _look(session, looked=None):
    """(the agent's hashes there, env.sh's text or None) and the home, from one command (or from `looked`,
    Prepared.script's output that ran it): across a far network each command is round trips, and a run on a
    prepared host needs nothing more before it starts. The home is remembered for the next run's Prepared."""
    if looked is None:
        rc, out, _ = session.exec(_look_command())
    else:
        out, _, last = looked.rstrip("\n").rpartition("\n")
        rc = int(last.split()[1]) if last.startswith(_LOOKED + " ") else 1
    first, _, rest = out.partition("\n")
    if first.startswith(_HOME + " /"):
        session.knows_home(first[len(_HOME) + 1:])
        home_book.remember(session.target, first[len(_HOME) + 1:])
    return install.parse_hashes(rc, rest), python_env.parse_env_file(rest)


class Prepared:
    """A host the last run left ready (the agent there, its environment named in env.sh, the home as
    home_book remembers it), checked by the run's own command instead of a command of its own (_look): across
    a far network that is two round trips fewer. `script` goes first in the start command: when the check
    holds it prints env.sh and the agent starts; else it prints what _look prints, reads its stdin away and
    exits NOT_READY_EXIT (run.NotReady), and install_agent(looked=) goes on from there."""

    def __init__(self, session, home, say=None):
        self.session = session
        self.say = say
        self.environment = None  # ensure()'s name, once the check has printed env.sh
        session.knows_home(home)  # a guess: the check compares it with $HOME
        self.remote_env = RemoteEnv(session, say=say)
        env_file = shlex.quote(posixpath.join(REMOTE_ROOT, ENV_FILE))
        # env.sh's first line as RemoteEnv._remembered reads it: an environment is named there.
        self.script = (
            "if [ \"$HOME\" = %s ] && head -n 1 %s 2>/dev/null | grep -q '^# mxlab environment: [^[:space:]]' "
            "&& [ \"$(%s)\" = %s ]; then\n"
            "  { %s; } 2>/dev/null; echo %s\n"
            "else\n"
            "  { %s; } 2>/dev/null; rc=$?; cat >/dev/null; echo \"%s $rc\"; exit %d\n"
            "fi\n" % (shlex.quote(home), env_file, install.digest_command(), shlex.quote(install.digest()),
                       python_env.env_file_command(), _READY, _look_command(), _LOOKED, NOT_READY_EXIT))

    @property
    def prefix(self):
        return self.remote_env.prefix

    def took(self, out):
        """The check held: `out` is what it printed (env.sh's text); the environment's name as ensure() says it."""
        log.info("%s: agent unchanged, uploaded 0 file(s) (the run's command checked its digest)",
                 self.session.target.label)
        self.remote_env = RemoteEnv(self.session, say=self.say, env_text=python_env.parse_env_file(out))
        self.environment = self.remote_env.as_remembered()


def prepared(session, env=None, engine="mxnet", say=None):
    """A Prepared for `session`'s host where the run's command can check readiness itself: a home remembered from
    an earlier run there and nothing asked that a remembered environment may lack (a named env, another
    engine: install_agent's path); else None."""
    if env is not None or engine != "mxnet":
        return None
    home = home_book.lookup(session.target)
    return Prepared(session, home, say) if home else None


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
