"""`agent serve`: the warm agent of a prepared host. Models stay loaded and bound between runs, so
`agent classify --warm` (agent.warm_client) of one photo costs a connection and a forward pass.

Reachable only by its user: the socket is 0600 in a 0700 folder, and a peer of another uid is refused.
One run at a time (the run is the process's: its cwd, environment and reporter); a request that comes
while one runs is declined and runs fresh. A request from other agent code or another Python finds this
server stale: it says so and exits. It also exits after idle_timeout seconds without a request, on
SIGTERM/SIGHUP, and when asked (`serve --stop`); with the instance it simply ends.
Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import

import errno
import json
import os
import socket
import struct
import threading
import time

from agent import command, reporter, warm_client
from agent.contract import EXIT_FATAL, EXIT_OK
from agent.errors import AgentError
from agent.loading import FreshModels

SO_PEERCRED = getattr(socket, "SO_PEERCRED", 17)  # Linux; Python 2.7 lacks the name
# A request is one JSON object on one line: its argv lists the inputs (100 000 paths fit in a few MB).
MAX_REQUEST_BYTES = 16 * 1024 * 1024
REQUEST_TIMEOUT_S = 10.0  # a client that connects and sends nothing (or too slowly) is dropped after this
ACCEPT_POLL_S = 0.5  # how soon a stop asked on a connection's thread ends the accept loop


class BadRequest(Exception):
    """The first line of a connection is not a request this server takes: the message says why."""


def read_request(sock, limit=MAX_REQUEST_BYTES):
    """The first line of ``sock`` as a JSON object; BadRequest when it is longer than ``limit`` bytes, not JSON or
    not an object; None when the client closed first."""
    pending = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            if not pending.strip():
                return None
            line = pending
            break
        end = chunk.find(b"\n")  # only the new bytes are searched: a long line costs its length, once
        if end >= 0:
            line = pending + chunk[:end]
            break
        pending += chunk
        if len(pending) > limit:
            raise BadRequest("a request line longer than {0} bytes".format(limit))
    if len(line) > limit:
        raise BadRequest("a request line longer than {0} bytes".format(limit))
    try:
        request = json.loads(line.decode("utf-8"))
    except ValueError:  # also UnicodeDecodeError
        raise BadRequest("not a JSON request")
    if not isinstance(request, dict):
        raise BadRequest("not a JSON object")
    return request


class WarmModels(FreshModels):
    """Catalogues and bound classifiers kept for the server's life; a model file that changed on disk
    (size or mtime) is loaded again. The catalogue is the zoo's as it was at the first request."""

    def __init__(self):
        self._catalogues = {}
        self._classifiers = {}  # key -> (classifier, files, their stat)
        self.announce = None  # called with each run's bound classifiers (the client times its first result)

    def catalogue(self, the_zoo, cache_dir, policy):
        key = (str(the_zoo), cache_dir)
        if key not in self._catalogues:
            self._catalogues[key] = FreshModels.catalogue(self, the_zoo, cache_dir, policy)
        return self._catalogues[key]

    def classifiers(self, args, entries, sources, the_zoo, cache_dir, policy, context):
        from agent import cache
        out = []
        for name, entry in entries:
            key = (name, json.dumps(entry, sort_keys=True), cache_dir, str(context), args.engine, args.batch_size,
                   bool(args.int8))
            kept = self._classifiers.get(key)
            if kept is not None and _stats(kept[1]) == kept[2]:
                out.append(kept[0])
                continue
            files = cache.ensure_model(name, entry, the_zoo, cache_dir, policy)
            classifier = self.classifier(args, name, entry, files, sources, context)
            self._classifiers[key] = (classifier, files, _stats(files))
            out.append(classifier)
        if self.announce is not None:
            self.announce(out)
        return out

    def names(self):
        return sorted(set(key[0] for key in self._classifiers))


def _stats(files):
    stats = []
    for kind in sorted(files):
        try:
            info = os.stat(files[kind])
            stats.append((kind, info.st_size, info.st_mtime))
        except OSError:
            stats.append((kind, None, None))
    return stats


class _Connection(object):
    """The client's socket as the run's event stream and stdout: each write is one message."""

    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, message):
        with self.lock:
            warm_client.send(self.sock, message)


class _Lines(object):
    """A text stream whose each complete line goes to the client as one message (``message(line)``):
    the run's events (reporter) and its result lines (stdout)."""

    def __init__(self, connection, message):
        self.connection = connection
        self.message = message
        self.pending = ""

    def write(self, text):
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            if line.strip():
                self.connection.send(self.message(line))

    def flush(self):
        pass


class WarmServer(object):
    def __init__(self, path, idle_timeout, models=None):
        self.path = path
        self.idle_timeout = idle_timeout
        self.models = models or WarmModels()
        self.identity = warm_client.identity()
        self.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.requests = 0
        self.last_activity = time.time()
        self.worker = None
        self.stopping = None  # why it is leaving
        self.listener = None
        self.inode = None  # of the socket this server bound
        self.lock = threading.Lock()  # one request decided at a time (busy or not), whichever thread read it

    # ---- life ---------------------------------------------------------------------------
    def bind(self):
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            os.makedirs(folder, 0o700)
        os.chmod(folder, 0o700)
        if os.path.exists(self.path):
            answer = warm_client.ask(self.path, {"stop": True})
            if answer is not None:  # a warm agent of this user still runs: it gives way
                reporter.emit("warning", message="stopping the warm agent that was running (pid {0})".format(
                    answer.get("stopping")))
                _wait_gone(self.path)
            try:
                os.remove(self.path)
            except OSError:
                pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)
        try:
            warm_client.at_socket_path(listener.bind, self.path)
        finally:
            os.umask(umask)
        os.chmod(self.path, 0o600)
        self.inode = os.stat(self.path).st_ino
        listener.listen(8)
        self.listener = listener

    def serve(self):
        """Accept until idle, stopped or stale; returns why it stopped."""
        self.listener.settimeout(min(self.idle_timeout, ACCEPT_POLL_S))
        try:
            while self.stopping is None:
                try:
                    conn, _ = self.listener.accept()
                except socket.timeout:
                    if self._idle_for() >= self.idle_timeout:
                        self.stopping = "idle for {0:.0f} s".format(self._idle_for())
                    continue
                if not self._peer_is_this_user(conn):
                    conn.close()
                    continue
                # Its request is read on its own thread: a client that sends nothing holds up no one.
                reader = threading.Thread(target=self._take, args=(conn,))
                reader.daemon = True
                reader.start()
        finally:
            self.close()
        return self.stopping

    def _idle_for(self):
        if self.worker is not None and self.worker.is_alive():
            return 0.0
        return time.time() - self.last_activity

    def close(self):
        """Unlink the socket, then stop listening: in that order, and only while the path is still this
        server's, so a server that replaced it (and bound the same path) keeps its socket."""
        if self.listener is None:
            return
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.remove(self.path)
        except OSError:
            pass
        self.listener.close()
        self.listener = None

    # ---- requests -----------------------------------------------------------------------
    def _peer_is_this_user(self, conn):
        try:
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, SO_PEERCRED, struct.calcsize("3i")))[1]
        except (OSError, socket.error, struct.error):
            uid = None
        return uid is None or uid == os.getuid()

    def _take(self, conn):
        conn.settimeout(REQUEST_TIMEOUT_S)
        try:
            request = read_request(conn)
        except BadRequest as err:
            self._answer(conn, {"declined": "{0}; it takes one JSON object a line".format(err)})
            return
        except (IOError, OSError):  # also socket.timeout: a client that sent nothing in time
            conn.close()
            return
        if request is None:
            conn.close()
            return
        conn.settimeout(None)
        try:
            with self.lock:
                self._dispatch(conn, request)
        except Exception as err:  # a request nobody foresaw: that client is told, the server goes on
            self._answer(conn, {"declined": "the warm agent could not take it: {0!r}".format(err)})

    def _dispatch(self, conn, request):
        if "status" in request:
            self._answer(conn, {"status": self.status()})
        elif "stop" in request:
            self.stopping = "asked to stop"
            self._answer(conn, {"stopping": os.getpid()})
        elif self.worker is not None and self.worker.is_alive():
            self._answer(conn, {"declined": "it is busy with another run"})
        else:
            malformed = _malformed(request)  # first: a stray object must not read as a client of other code
            if malformed:
                self._answer(conn, {"declined": "a malformed request: " + malformed})
                return
            stale = self._stale(request)
            if stale:
                self.stopping = "stale: " + stale
                self._answer(conn, {"stale": stale + "; it exits"})
                return
            declined = self._declined(request)
            if declined:
                self._answer(conn, {"declined": declined})
                return
            self.last_activity = time.time()
            self.worker = threading.Thread(target=self._run, args=(conn, request))
            self.worker.daemon = True
            self.worker.start()

    def _answer(self, conn, message):
        try:
            warm_client.send(conn, message)
        except (IOError, OSError):
            pass
        conn.close()

    def status(self):
        return {"pid": os.getpid(), "since": self.since, "models": self.models.names(), "requests": self.requests,
                "idle_timeout_s": self.idle_timeout, "fingerprint": self.identity["fingerprint"],
                "executable": self.identity["executable"], "busy": bool(self.worker and self.worker.is_alive())}

    def _stale(self, request):
        for what in ("fingerprint", "executable"):
            if request.get(what) != self.identity[what]:
                return "its {0} is not the client's (agent files or Python changed since it started)".format(what)
        return None

    def _declined(self, request):
        if request.get("fixed_environment") != self.identity["fixed_environment"]:
            return "it started with other {0}".format(", ".join(warm_client.FIXED_ENVIRONMENT))
        if not os.path.isdir(request["cwd"]):
            return "its folder {0!r} does not exist here".format(request["cwd"])
        return None

    def _run(self, conn, request):
        connection = _Connection(conn)
        saved_env = dict((k, os.environ.get(k)) for k in warm_client.REQUEST_ENVIRONMENT)
        here = os.getcwd()
        previous, redirected = None, False
        code = EXIT_FATAL
        try:
            args = _parse_classify(request["argv"])
            if args is None:
                connection.send({"declined": "not a classify request it can parse"})
                return
            for name in warm_client.REQUEST_ENVIRONMENT:
                os.environ.pop(name, None)
            os.environ.update(request.get("environment") or {})
            os.chdir(request["cwd"])
            connection.send({"accepted": {"pid": os.getpid(), "since": self.since}})
            events = _Lines(connection, lambda line: {"event": json.loads(line)})
            previous, redirected = reporter.events_to(events), True
            command.counts.update(results=0, errors=0)
            code = self._classify(args, connection)
        except (IOError, OSError):  # the client went away: nothing to tell it
            return
        finally:
            if redirected:
                reporter.events_to(previous)
            os.chdir(here)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self.requests += 1
            self.last_activity = time.time()
        try:
            connection.send({"exit": code, "results": command.counts["results"], "errors": command.counts["errors"]})
        except (IOError, OSError):
            pass
        conn.close()

    def _classify(self, args, connection):
        self.models.announce = lambda bound: connection.send(
            {"engines": dict((c.name, getattr(c.engine, "name", "mxnet")) for c in bound)})
        try:
            return command.classify(args, self.models, stdout=_Lines(connection, lambda line: {"stdout": line + "\n"}))
        except AgentError as err:
            reporter.emit("error", message=str(err))
            return err.exit_code
        except (IOError, OSError) as err:
            if getattr(err, "errno", None) in (errno.EPIPE, errno.ECONNRESET):
                raise  # the client went away
            return command.unexpected(err)
        except Exception as err:  # a bug: reported to the client, and the server goes on
            return command.unexpected(err)
        finally:
            self.models.announce = None


_TEXT = (type(u""), str)


def _malformed(request):
    """Why ``request`` is not a classify request of warm_client's shape, or None."""
    argv, environment = request.get("argv"), request.get("environment") or {}
    if not isinstance(argv, list) or not all(isinstance(a, _TEXT) for a in argv):
        return "argv must be a list of strings"
    if not isinstance(request.get("cwd"), _TEXT):
        return "cwd must be a string"
    if not isinstance(environment, dict) or not all(isinstance(k, _TEXT) and isinstance(v, _TEXT)
                                                    for k, v in environment.items()):
        return "environment must map strings to strings"
    return None


def _parse_classify(argv):
    from agent import arguments
    try:  # the client parsed these already: an error here is a client of another version
        args = arguments.build_parser().parse_args(["classify"] + list(argv))
    except SystemExit:
        return None
    return args if args.command == "classify" else None


def _wait_gone(path, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline and warm_client.ask(path, {"status": True}, timeout=2.0) is not None:
        time.sleep(0.1)


def main(args):
    """`agent serve`: --status, --stop, or preload and serve until idle/stopped/stale."""
    path = os.path.abspath(args.socket or warm_client.default_socket())
    if args.status or args.stop:
        answer = warm_client.ask(path, {"status": True} if args.status else {"stop": True})
        if answer is None:
            reporter.emit("error", message="no warm agent answers at {0}".format(path))
            return EXIT_FATAL
        print(json.dumps(answer.get("status", answer), sort_keys=True))
        if args.stop:
            _wait_gone(path)
        return EXIT_OK
    from agent.pipeline import tune_environment
    tune_environment()  # before mxnet is imported: OpenMP reads it once
    from agent import startup
    startup.report_never()  # its requests' first results are timed by their clients
    server = WarmServer(path, args.idle_timeout)
    if args.preload:
        _preload(server.models, args)
    server.bind()
    _stop_on_termination(server)
    reporter.emit("warm", used=True, reason="listening on {0} (pid {1}; models: {2}; exits after {3:.0f} s idle)"
                  .format(path, os.getpid(), ", ".join(server.models.names()) or "none yet", args.idle_timeout))
    why = server.serve()
    command.counts.update(results=0, errors=0)  # its own "done" event: the runs it served counted theirs
    reporter.emit("warm", used=False, reason="the warm agent stopped: {0}".format(why))
    return EXIT_OK


def _preload(models, args):
    from agent import predict
    the_zoo, cache_dir, policy = command.zoo_and_cache(args)
    catalogue = models.catalogue(the_zoo, cache_dir, policy)
    entries = [(name, catalogue.entry(name)) for name in args.preload]
    args.int8 = False
    context = predict.pick_context(light=args.engine != "mxnet")
    models.classifiers(args, entries, [], the_zoo, cache_dir, policy, context)


def _stop_on_termination(server):
    import signal

    def stop(signum, frame):
        server.stopping = "signal {0}".format(signum)
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        try:
            signal.signal(getattr(signal, name), stop)
        except (AttributeError, ValueError):
            pass
