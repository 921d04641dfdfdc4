"""A real headless Chromium (Debian's `chromium`, installed by `scripts/setup --tests`), driven over
the DevTools protocol: open a local page, run checks in it, collect what it logged as errors and
every request it made, take a screenshot.

Chromium must not reach the network: the flags below turn its own background traffic off, and
the tests only open file:// pages (the requests they made are recorded so a test can prove it).
"""
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import websocket  # websocket-client: the DevTools protocol runs over a WebSocket

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]


class BrowserError(AssertionError):
    pass


class Page:
    """One tab. `errors`: console errors, uncaught exceptions and error log entries (CSP
    violations, failed loads); `requests`: the URL of every request the page made."""

    def __init__(self, browser, target_id, session_id):
        self.browser, self.target_id, self.session_id = browser, target_id, session_id
        self.errors, self.requests, self.events = [], [], []

    def call(self, method, timeout=30, **params):
        return self.browser.call(method, params, self.session_id, timeout)

    def on_event(self, message):
        method, params = message["method"], message.get("params", {})
        self.events.append(method)
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console.%s: %s" % (params["type"], " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", []))))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append("exception: %s %s" % (details.get("text", ""),
                                                     details.get("exception", {}).get("description", "")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append("log (%s): %s %s" % (entry.get("source"), entry.get("text"), entry.get("url", "")))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])

    def goto(self, url, timeout=60):
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.browser.wait_for(lambda: "Page.loadEventFired" in self.events, timeout)

    def evaluate(self, expression, timeout=60):
        """The value of a JS expression (a promise is awaited); a thrown error fails the test."""
        reply = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                          returnByValue=True)
        if "exceptionDetails" in reply:
            raise BrowserError("page script failed: %s" % json.dumps(reply["exceptionDetails"])[:2000])
        return reply["result"].get("value")

    def screenshot(self, path, full_page=True):
        params = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        png = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        Path(path).write_bytes(png)
        return Path(path)

    def close(self):
        self.browser.call("Target.closeTarget", {"targetId": self.target_id})


class Browser:
    def __init__(self, executable):
        self.profile = tempfile.mkdtemp(prefix="mxlab-chromium-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        # Own process group: closing stops the renderer and helper processes it started too.
        self.proc = subprocess.Popen([executable] + FLAGS + ["--user-data-dir=" + self.profile, "about:blank"],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.ids = itertools.count(1)
        self.pages = {}
        self.ws = None
        try:
            port, path = self._devtools_address()
            self.ws = websocket.create_connection("ws://127.0.0.1:%d%s" % (port, path), timeout=30,
                                                  suppress_origin=True, enable_multithread=False)
        except BaseException:
            self.close()
            raise

    def _devtools_address(self, timeout=60):
        """(port, browser path) from DevToolsActivePort, which Chromium writes once it listens."""
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError("chromium exited %s before listening:\n%s" % (self.proc.returncode, self._log()))
            lines = marker.read_text().split() if marker.exists() else []
            if len(lines) == 2:
                return int(lines[0]), lines[1]
            time.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port in %d s:\n%s" % (timeout, self._log()))

    def _log(self):
        self.log.flush()
        return Path(self.profile, "chromium.log").read_text(errors="replace")[-3000:]

    def _dispatch(self, message):
        page = self.pages.get(message.get("sessionId"))
        if page is not None and "method" in message:
            page.on_event(message)

    def _receive(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError("no answer from chromium in time")
        self.ws.settimeout(remaining)
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            raise BrowserError("no answer from chromium in time")

    def call(self, method, params=None, session_id=None, timeout=30):
        msg_id = next(self.ids)
        message = {"id": msg_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError("%s failed: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self._dispatch(reply)

    def wait_for(self, condition, timeout=60):
        deadline = time.monotonic() + timeout
        while not condition():
            self._dispatch(self._receive(deadline))

    def new_page(self, width=1200, height=900):
        target_id = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session_id = self.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        page = Page(self, target_id, session_id)
        self.pages[session_id] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(domain + ".enable")
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        return page

    def close(self):
        try:
            if self.ws is not None:
                try:
                    self.call("Browser.close", timeout=10)
                except (BrowserError, websocket.WebSocketException, OSError):
                    pass
                self.ws.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        finally:
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium for the session; `chromium.new_page()` opens a tab."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        pytest.fail("chromium not found: `scripts/setup --tests` installs it (apt-get install chromium)")
    browser = Browser(executable)
    yield browser
    browser.close()


@pytest.fixture
def browser_page(chromium):
    """A fresh tab, closed after the test."""
    page = chromium.new_page()
    yield page
    chromium.pages.pop(page.session_id, None)
    page.close()
