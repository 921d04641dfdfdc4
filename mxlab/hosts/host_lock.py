"""One organiser at a time sets a host up: a lock on the host, held by `mxlab prepare` (and by a run that has to
make the environment), so that two laptops never build one venv, start two warm agents or lay out one
workspace at once.

The lock is an flock on ~/.mxlab-agent/prepare.lock, held by a small shell on the host for as long as its SSH
channel is open: mxlab killed, the connection gone, and the lock is free again. Beside it,
prepare.lock.holder says who holds it (user@machine, mxlab's pid, since when); mxlab sends a heartbeat every
few seconds and the holder file's mtime is the last one heard. A holder not heard for STALE_S (a laptop
that went to sleep with its connection still up) is stale: the next organiser ends its shell and takes the
lock over; the suspended mxlab, when it wakes, finds its lock gone and stops that host cleanly.
"""
import getpass
import logging
import os
import posixpath
import socket
import threading
import time

from agent.contract import REMOTE_ROOT
from mxlab.errors import MxlabError
from mxlab.hosts.session import guarded

log = logging.getLogger(__name__)

LOCK_FILE = "prepare.lock"
HOLDER_FILE = "prepare.lock.holder"
HEARTBEAT_S = 5.0
STALE_S = float(os.environ.get("MXLAB_LOCK_STALE_S") or 120)  # the tests make it short; nothing else depends on it
_BUSY = 75  # the holder script's exit status when the lock is held by another

# $1: who (user@machine pid N), $2: stale seconds, $3: 1 to take a stale lock over.
_HOLD = r"""
cd "$HOME" && mkdir -p %(root)s && cd %(root)s || exit 1
exec 9>>%(lock)s
if ! flock -n 9; then
  now=$(date +%%s); heard=$(stat -c %%Y %(holder)s 2>/dev/null || echo "$now"); age=$((now - heard))
  holder=$(head -n 1 %(holder)s 2>/dev/null)
  if [ "$3" = 1 ] && [ "$age" -ge "$2" ]; then
    pid=$(sed -n 's/.* shell=\([0-9][0-9]*\).*/\1/p' %(holder)s 2>/dev/null)
    echo "TAKEOVER $age $holder"
    [ -n "$pid" ] && kill -TERM -- -"$pid" 2>/dev/null
    flock -w 30 9 || { echo "BUSY $age $holder"; exit %(busy)d; }
  else
    echo "BUSY $age $holder"
    exit %(busy)d
  fi
fi
printf '%%s since %%s shell=%%s\n' "$1" "$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)" "$$" > %(holder)s.tmp &&
  mv %(holder)s.tmp %(holder)s
echo LOCKED
while read -r _; do touch %(holder)s; done
grep -qs " shell=$$\$" %(holder)s && rm -f %(holder)s
""" % {"root": REMOTE_ROOT, "lock": LOCK_FILE, "holder": HOLDER_FILE, "busy": _BUSY}


def who():
    return "%s@%s pid %d" % (getpass.getuser(), socket.gethostname(), os.getpid())


class HostBusy(MxlabError):
    pass


class HostLock:
    """`with HostLock(session, say):` holds the host's set-up lock, waiting up to `wait_s` for another holder;
    raises HostBusy naming the holder when it does not come free. `lost` turns true when a stale-lock takeover
    by another organiser ended this one (check() raises then)."""

    def __init__(self, session, say=None, wait_s=600.0, poll_s=2.0):
        self.session = session
        self.say = say or (lambda message: log.warning("%s", message))
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.chan = None
        self.lost = False
        self._stop = threading.Event()
        self._beat = None

    def _try(self):
        """(state, age seconds, holder): LOCKED (self.chan holds it), BUSY, or TAKEOVER then LOCKED."""
        chan = self.session.channel()
        chan.exec_command(guarded(_HOLD, who(), str(int(STALE_S)), "1"))
        stream = chan.makefile("r")
        taken = None
        while True:
            line = stream.readline()
            if not line:
                chan.close()
                return "BUSY", 0, taken or "(the lock script ended: %s)" % chan.recv_exit_status()
            kind, _, rest = line.strip().partition(" ")
            if kind == "LOCKED":
                self.chan = chan
                return ("TAKEOVER" if taken else "LOCKED"), 0, taken
            age, _, holder = rest.partition(" ")
            if kind == "TAKEOVER":
                taken = "%s (not heard for %s s)" % (holder or "unknown", age)
                continue
            chan.close()
            return "BUSY", int(age or 0), holder or "unknown"

    def __enter__(self):
        label = self.session.target.label
        deadline = time.monotonic() + self.wait_s
        said = False
        while True:
            state, age, holder = self._try()
            if state == "TAKEOVER":
                self.say("%s: took over the set-up lock of %s: it was stale" % (label, holder))
                break
            if state == "LOCKED":
                break
            if time.monotonic() > deadline:
                raise HostBusy("%s: another mxlab is setting this host up (%s, last heard %d s ago) and did not "
                               "finish within %.0f s; run again when it has" % (label, holder, age, self.wait_s))
            if not said:
                self.say("%s: waiting for another mxlab that is setting this host up (%s, last heard %d s ago; "
                         "~/%s)" % (label, holder, age, posixpath.join(REMOTE_ROOT, HOLDER_FILE)))
                said = True
            time.sleep(self.poll_s)
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="host-lock %s" % label)
        self._beat.start()
        return self

    def _heartbeat(self):
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if self.chan.exit_status_ready() or self.chan.closed:
                    raise EOFError("the lock's shell ended")
                self.chan.sendall(b"\n")
            except (OSError, EOFError, Exception):  # the channel is gone: so is the lock
                self.lost = True
                return

    def check(self):
        """Raise when the lock was lost (taken over as stale while this mxlab was suspended, or its shell ended)."""
        if self.lost or (self.chan is not None and self.chan.exit_status_ready()):
            self.lost = True
            raise HostBusy("%s: this mxlab's set-up lock on the host was lost (taken over by another organiser "
                           "while this one was suspended, or its connection dropped); stopped here: run it again"
                           % self.session.target.label)

    def __exit__(self, *exc):
        self._stop.set()
        if self.chan is not None:
            try:
                self.chan.shutdown_write()  # the holder's read ends: it removes its holder file and exits
                self.chan.close()
            except Exception:
                pass
            self.chan = None
        return False
