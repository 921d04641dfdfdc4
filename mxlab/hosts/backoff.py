"""Bounded exponential backoff shared by readiness checks and host-key polling."""
import time

from mxlab.errors import GaveUp

# How long mxlab waits for a host to be ready (`--timeout`, its documented default): a stopped lab instance that
# --start wakes needs minutes to boot, run cloud-init and show its host keys on the console (which lags), so the
# 300 s the run functions defaulted to cut a cold start short; every caller without --timeout uses this.
READY_TIMEOUT = 600


def delays(timeout, first=0.5, factor=2.0, cap=15.0, clock=time.monotonic):
    """Yield sleep lengths that grow exponentially and stop once `timeout` s have passed.

    The last delay is trimmed so the caller never sleeps past the deadline.
    """
    deadline = clock() + timeout
    delay = first
    while True:
        left = deadline - clock()
        if left <= 0:
            return
        yield min(delay, left)
        delay = min(delay * factor, cap)


def retry(attempt, timeout, what, retry_on=(Exception,), sleep=time.sleep, advice="", **kw):
    """Call attempt() until it returns without raising one of `retry_on` or time runs out.

    Returns attempt()'s value; on timeout raises GaveUp (a HostUnreachable) naming `what`, the
    last error and then `advice` (what the operator can do about it), if any.
    """
    last = None
    try:
        return attempt()
    except retry_on as exc:
        last = exc
    for delay in delays(timeout, **kw):
        sleep(delay)
        try:
            return attempt()
        except retry_on as exc:
            last = exc
    raise GaveUp("%s: gave up after %.0f s (last error: %s)%s" % (what, timeout, last, advice and ". " + advice))
