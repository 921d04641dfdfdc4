"""A real HTTP server for a model-zoo folder, on 127.0.0.1, with fault injection.

It serves GET/HEAD for files under a directory, honours ``Range: bytes=N-[M]``
(206 + Content-Range; a ``no_range`` fault answers 200 instead), answers 304 to
a matching If-Modified-Since, counts the body bytes it sends (total and per path)
(file bodies only) and logs every request. Faults, per URL path, each used for a number of requests:

- ``("status", N, code)``: answer ``code`` (e.g. 500) N times, then serve normally.
- ``("truncate", N, keep)``: send full headers (whole Content-Length) but only
  ``keep`` body bytes, then close the connection.
- ``("stall", N, seconds)``: wait ``seconds`` before answering (past a client timeout).
- ``("no_range", N, None)``: ignore Range headers (answer 200 with the whole file).
- ``("slow", N, bytes_per_s)``: send the body at about that rate (a slow link: a download still in
  progress while a test does something else on the host, such as filling its disk).

Run by hand (the demo serves the local zoo with it):
``python -m mxlab.offline.zoo_server DIR [--port P]``.
"""
import argparse
import email.utils
import os
import posixpath
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ZooServer:
    """Serve ``directory`` on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, directory, port=0):
        self.directory = os.path.abspath(directory)
        self.lock = threading.Lock()
        self.faults = {}
        self.bytes_sent = 0
        self.bytes_by_path = {}
        self.requests = []  # (method, path, Range header or None, status)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.httpd.daemon_threads = True
        self.thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:{}/".format(self.port)

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="zoo-server", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread:
            self.thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def add_fault(self, path, kind, times, value=None):
        """Inject ``kind`` for the next ``times`` requests of URL path ``path`` (e.g. '/a/b.params')."""
        if kind not in ("status", "truncate", "stall", "no_range", "slow"):
            raise ValueError("unknown fault kind {!r}".format(kind))
        with self.lock:
            self.faults.setdefault(path, []).append([kind, times, value])

    def take_fault(self, path):
        with self.lock:
            for fault in self.faults.get(path, []):
                if fault[1] > 0:
                    fault[1] -= 1
                    return fault[0], fault[2]
        return None, None

    def count(self, path, sent):
        with self.lock:
            self.bytes_sent += sent
            self.bytes_by_path[path] = self.bytes_by_path.get(path, 0) + sent

    def log(self, method, path, range_header, status):
        with self.lock:
            self.requests.append((method, path, range_header, status))

    def reset_counters(self):
        with self.lock:
            self.bytes_sent = 0
            self.bytes_by_path = {}
            self.requests = []


def _handler_for(server):
    """A handler class bound to ``server`` (the ZooServer: its folder, faults and counters)."""
    return type("Handler", (_ZooHandler,), {"zoo": server})


class _ZooHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    zoo = None  # the ZooServer, set by _handler_for

    def log_message(self, *args):  # keep test output clean
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        range_header = self.headers.get("Range")
        kind, value = self.zoo.take_fault(path)
        if kind == "stall":
            time.sleep(value)
        if kind == "status":
            return self._status(path, range_header, value)
        file_path = self._file(path)
        if file_path is None:
            return self._status(path, range_header, 404)
        stat = os.stat(file_path)
        size = stat.st_size
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        since = self.headers.get("If-Modified-Since")
        if since and since == last_modified:
            return self._empty(path, range_header, 304, "Last-Modified", last_modified)
        start, end, status = 0, size - 1, 200
        if range_header and kind != "no_range":
            parsed = _parse_range(range_header, size)
            if parsed is None:
                return self._empty(path, range_header, 416, "Content-Range", "bytes */{}".format(size))
            start, end = parsed
            status = 206
        length = end - start + 1
        self._file_headers(path, range_header, status, (start, end, size), last_modified,
                           close=kind == "truncate")
        if not body:
            return
        limit = min(length, value) if kind == "truncate" else length
        self._send_body(path, file_path, start, limit, rate=value if kind == "slow" else None)
        if kind == "truncate":
            self.wfile.flush()
            self.close_connection = True

    def _empty(self, path, range_header, code, header, header_value):
        """An answer without a body (304 Not Modified, 416 Range Not Satisfiable)."""
        self.zoo.log(self.command, path, range_header, code)
        self.send_response(code)
        self.send_header(header, header_value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _file_headers(self, path, range_header, status, span, last_modified, close):
        start, end, size = span
        self.zoo.log(self.command, path, range_header, status)
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", last_modified)
        self.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            self.send_header("Content-Range", "bytes {}-{}/{}".format(start, end, size))
        if close:  # a truncated body: the client sees the connection end early
            self.send_header("Connection", "close")
        self.end_headers()

    def _send_body(self, path, file_path, start, limit, rate=None):
        """``limit`` bytes of the file from ``start``, counted as sent; at about ``rate`` bytes/s if given."""
        with open(file_path, "rb") as handle:
            handle.seek(start)
            remaining = limit
            while remaining > 0:
                chunk = handle.read(min(65536, remaining))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
                self.zoo.count(path, len(chunk))
                remaining -= len(chunk)
                if rate is not None:
                    time.sleep(len(chunk) / float(rate))

    def _status(self, path, range_header, code):
        self.zoo.log(self.command, path, range_header, code)
        message = "injected or missing: {} {}".format(code, path).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(message)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(message)

    def _file(self, path):
        parts = [part for part in posixpath.normpath(path).split("/") if part and part != ".."]
        candidate = os.path.join(self.zoo.directory, *parts)
        if os.path.isfile(candidate):
            return candidate
        return None


def _parse_range(header, size):
    """(start, end) for 'bytes=N-' or 'bytes=N-M' within size; None when not satisfiable."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes="):].partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = int(last) if last else size - 1
    except ValueError:
        return None
    end = min(end, size - 1)
    if start > end or start >= size:
        return None
    return start, end


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mxlab.offline.zoo_server",
                                     description="Serve a model-zoo folder over HTTP on 127.0.0.1.")
    parser.add_argument("directory", help="zoo folder to serve (e.g. one built by scripts/build-local-zoo)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 = any)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.directory):
        parser.error("directory {!r} does not exist".format(args.directory))
    server = ZooServer(args.directory, args.port)
    print("serving {} at {}".format(server.directory, server.url), flush=True)  # scripts read the URL here
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
