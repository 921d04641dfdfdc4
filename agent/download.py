"""HTTP(S) downloads: stream to a file, retry transient errors, resume with Range.

Transient: connection errors, timeouts, HTTP 5xx/408/429 and bodies shorter than
their Content-Length. Those are retried with bounded exponential backoff; a partial
file is resumed with ``Range: bytes=N-`` when the server answers 206, and started
over when it answers 200. Anything else (404, 403, ...) fails at once.
"""
from __future__ import print_function, division, absolute_import

import os
import re
import socket
import time

from agent import disk, reporter
from agent.errors import FetchError

CHUNK = 64 * 1024
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
USER_AGENT = "mxlab-agent/0.1"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class Transient(Exception):
    """A failure worth another try."""


class Policy(object):
    """How hard to try: socket timeout (seconds) and retries after the first attempt."""

    def __init__(self, timeout=30.0, retries=4):
        self.timeout = timeout
        self.retries = retries

    def backoff(self, attempt):
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * (2 ** attempt))


def download(url, part_path, policy, model, name):
    """Download ``url`` into ``part_path``, resuming what is there; return the byte count.

    Reports fetch events for ``model``'s file ``name``. Raises FetchError naming the URL
    after the last failed attempt. The partial file is kept so that a later call can resume it.
    """
    last = None
    for attempt in range(policy.retries + 1):
        if attempt:
            _pause(url, policy, attempt, last)
        try:
            return _attempt(url, part_path, policy, model, name)
        except Transient as err:
            last = str(err)
    raise FetchError("cannot fetch {0}: {1} (after {2} attempts)".format(url, last, policy.retries + 1))


def _pause(url, policy, attempt, error):
    delay = policy.backoff(attempt - 1)
    reporter.emit("retry", url=url, attempt=attempt, of=policy.retries, error=error, delay=delay)
    time.sleep(delay)


def read_bytes(url, policy, max_bytes):
    """The body of ``url`` in memory (at most ``max_bytes``), with the same retries."""
    return _body(url, policy, max_bytes, {})[0]


def read_small(url, policy, headers, max_bytes=16 * 1024 * 1024):
    """(body, Last-Modified header or None) of a small document such as a catalogue."""
    body, info = _body(url, policy, max_bytes, headers)
    return body, info.get("Last-Modified")


def _body(url, policy, max_bytes, headers):
    last = None
    for attempt in range(policy.retries + 1):
        if attempt:
            _pause(url, policy, attempt, last)
        try:
            response = _open(url, policy, headers)
            try:
                length = _content_length(response)
                if length is not None and length > max_bytes:
                    raise FetchError("{0} is {1} bytes, more than the {2} byte limit".format(url, length, max_bytes))
                chunks, size = [], 0
                while True:
                    chunk = _read(response, url)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError("{0} is more than the {1} byte limit".format(url, max_bytes))
                    chunks.append(chunk)
                if length is not None and size < length:
                    raise Transient("body truncated: got {0} of {1} bytes".format(size, length))
                return b"".join(chunks), response.info()
            finally:
                response.close()
        except Transient as err:
            last = str(err)
    raise FetchError("cannot fetch {0}: {1} (after {2} attempts)".format(url, last, policy.retries + 1))


def _attempt(url, part_path, policy, model, name):
    have = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    headers = {"Range": "bytes={0}-".format(have)} if have else {}
    try:
        response = _open(url, policy, headers)
    except FetchError as err:
        if have and getattr(err, "http_status", None) == 416:
            # The partial file is not a prefix the server can continue: start over.
            os.remove(part_path)
            raise Transient("server refused to resume (HTTP 416); starting over")
        raise
    try:
        status = response.getcode()
        mode = "wb"
        offset = 0
        if have and status == 206:
            match = _CONTENT_RANGE.match(response.info().get("Content-Range", "") or "")
            if match and int(match.group(1)) == have:
                mode, offset = "ab", have
            else:
                raise Transient("server answered an unexpected Content-Range {0!r}"
                                .format(response.info().get("Content-Range")))
        length = _content_length(response)
        total = offset + length if length is not None else None
        if length is not None:  # before a byte is written: a file that cannot fit fails here
            disk.need(os.path.dirname(part_path) or ".", length, "{0} {1}".format(model, name))
        if offset:
            reporter.emit("resume", model=model, file=name, offset=offset)
        reporter.fetch(model, name, offset, total)
        received = 0
        try:
            with open(part_path, mode) as out:
                while True:
                    chunk = _read(response, url)
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    reporter.fetch(model, name, offset + received, total)
        except (IOError, OSError) as err:
            if not disk.is_full(err):
                raise
            raise disk.full_while_writing(part_path, total or offset + received, "{0} {1}".format(model, name))
        if length is not None and received < length:
            raise Transient("body truncated: got {0} of {1} bytes".format(offset + received, total))
        reporter.fetch(model, name, offset + received, total, last=True)
        return offset + received
    finally:
        response.close()


def _http():
    """(Request, urlopen, HTTPError, URLError, HTTPException), imported on first use: mxlab imports this
    module for Policy on every run, and urllib costs ~50 ms of a one-photo run's start-up."""
    try:  # Python 3
        from urllib.request import Request, urlopen  # novermin
        from urllib.error import HTTPError, URLError  # novermin
        from http.client import HTTPException  # novermin
    except ImportError:  # Python 2.7
        from urllib2 import Request, urlopen, HTTPError, URLError  # novermin
        from httplib import HTTPException  # novermin
    return Request, urlopen, HTTPError, URLError, HTTPException


def _open(url, policy, headers):
    Request, urlopen, HTTPError, URLError, HTTPException = _http()
    all_headers = {"User-Agent": USER_AGENT}
    all_headers.update(headers)
    request = Request(url, headers=all_headers)
    try:
        return urlopen(request, timeout=policy.timeout)
    except HTTPError as err:
        if err.code >= 500 or err.code in (408, 429):
            raise Transient("HTTP {0} {1}".format(err.code, err.reason))
        failure = FetchError("cannot fetch {0}: HTTP {1} {2}".format(url, err.code, err.reason))
        failure.http_status = err.code
        raise failure
    except URLError as err:
        reason = err.reason
        if isinstance(reason, socket.timeout):
            raise Transient("timed out after {0} s".format(policy.timeout))
        raise Transient("cannot connect: {0}".format(reason))
    except socket.timeout:
        raise Transient("timed out after {0} s".format(policy.timeout))
    except (socket.error, HTTPException) as err:
        raise Transient("connection failed: {0!r}".format(err))


def _read(response, url):
    HTTPException = _http()[4]
    try:
        return response.read(CHUNK)
    except socket.timeout:
        raise Transient("timed out while reading")
    except (socket.error, HTTPException) as err:
        # IncompleteRead and resets: what arrived so far stays in the partial file.
        raise Transient("connection broke while reading: {0!r}".format(err))


def _content_length(response):
    value = response.info().get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
