"""The command line: models, fetch, classify, serve, env: parsed (agent.arguments) and dispatched to each
command's run; classify's is agent.command's, which the warm agent (agent.warm_server) runs too.

stdout carries only results (JSON lines; the models/env listings when asked);
progress and messages go to stderr, as text or, with --events, as JSON events
(agent.contract). Exit codes (agent.contract): 0 all inputs classified,
3 some inputs failed (the rest have results), 2 usage, 1 fatal.
"""
from __future__ import print_function, division, absolute_import

import errno
import json
import os
import signal
import sys

from agent import arguments, command, contract, reporter
from agent.contract import EXIT_FATAL, EXIT_OK
from agent import __version__
from agent.errors import AgentError


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if contract.EVENTS_FLAG in argv:  # before parsing: a usage error is an event too
        reporter.use_events()
    parser = arguments.build_parser()
    args = parser.parse_args(argv)
    args.argv = argv[1:]  # the command's own arguments (classify --warm forwards them)
    if not args.command:
        parser.error("choose a command: models, fetch, classify, serve or env")
    reporter.emit("start", command=args.command, version=__version__)
    code = EXIT_FATAL
    try:
        code = {"models": run_models, "fetch": run_fetch, "classify": run_classify, "env": run_env,
                "serve": run_serve}[
            args.command](args)
    except AgentError as err:
        reporter.emit("error", message=str(err))
        code = err.exit_code
    except KeyboardInterrupt:
        reporter.emit("error", message="interrupted")
        code = contract.EXIT_SIGNAL_BASE + signal.SIGINT
    except SystemExit as stop:  # SIGTERM/SIGHUP (see _exit_on_termination)
        code = stop.code if isinstance(stop.code, int) else EXIT_FATAL
    except (IOError, OSError) as err:
        if getattr(err, "errno", None) != errno.EPIPE:
            code = command.unexpected(err)
        else:
            # The reader of stdout went away (e.g. `| head`): stop quietly, as other tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except Exception as err:  # a bug: its traceback is reported (as log events with --events)
        code = command.unexpected(err)
    command.finish(code)
    return code


def run_models(args):
    from agent.catalogue import load_builtin
    if args.zoo or os.environ.get("MXLAB_ZOO"):
        the_zoo, cache_dir, policy = command.zoo_and_cache(args)
        models, zoo_name = the_zoo.catalogue(cache_dir, policy).models, str(the_zoo)
    else:
        builtin = load_builtin()
        models, zoo_name = builtin["models"], builtin.get("zoo")
    if args.json:
        print(json.dumps({"schema": 1, "zoo": zoo_name, "models": models}, indent=2, sort_keys=True))
        return EXIT_OK
    print("{0:20} {1:>5}  {2:14} {3}".format("MODEL", "SIZE", "LABEL", "DESCRIPTION"))
    for name in sorted(models):
        entry = models[name]
        note = " [local zoo only]" if entry.get("local_zoo_only") else ""
        print("{0:20} {1:>5}  {2:14} {3}{4}".format(
            name, entry.get("input", {}).get("size", "?"), entry.get("label") or "-",
            entry.get("description", ""), note))
    return EXIT_OK


def run_env(args):
    from agent import environment
    info = environment.describe()
    print(json.dumps(info, indent=2) if args.json else environment.as_text(info))
    return EXIT_OK


def run_serve(args):
    from agent import warm_server
    return warm_server.main(args)


def run_fetch(args):
    from agent import cache
    the_zoo, cache_dir, policy = command.zoo_and_cache(args)
    catalogue = the_zoo.catalogue(cache_dir, policy)
    entries = [(name, catalogue.entry(name)) for name in args.models]  # all names checked first
    # Room for all of them before the first byte moves (catalogue sizes): a full disk fails now, whole.
    from agent import disk
    disk.need(cache_dir, sum(cache.missing_bytes(name, entry, cache_dir) for name, entry in entries),
              ", ".join(name for name, _ in entries))
    for name, entry in entries:
        paths = cache.ensure_model(name, entry, the_zoo, cache_dir, policy)
        print(json.dumps({"model": name, "files": paths}, sort_keys=True))
        sys.stdout.flush()
    return EXIT_OK


def _exit_on_termination():
    """SIGTERM/SIGHUP (a closed SSH session) unwind like an error, so --out still gets its results."""
    def terminate(signum, frame):
        reporter.emit("warning", message="terminated by signal {0}; keeping the results so far".format(signum))
        raise SystemExit(contract.EXIT_SIGNAL_BASE + signum)
    for name in ("SIGTERM", "SIGHUP"):
        try:
            signal.signal(getattr(signal, name), terminate)
        except (AttributeError, ValueError):  # not on this OS, or not the main thread
            pass


def run_classify(args):
    if args.warm:
        from agent import startup, warm_client
        outcome = warm_client.forward(args.warm_socket or warm_client.default_socket(), _forwarded(args.argv),
                                      reporter.emit, _write_stdout, startup.STARTED)
        if outcome is not None:
            code, command.counts["results"], command.counts["errors"] = outcome
            return code
    from agent.pipeline import tune_environment
    tune_environment()  # before mxnet is imported: OpenMP reads it once
    from agent import startup
    startup.mark("python")
    from agent.loading import FreshModels
    _exit_on_termination()
    return command.classify(args, FreshModels())


def _forwarded(argv):
    """classify's arguments for the warm agent: without --warm/--warm-socket, whose events are ours."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == "--":  # inputs follow, whatever their names
            return out + argv[i:]
        elif arg in ("--warm", contract.EVENTS_FLAG):
            continue
        elif arg == "--warm-socket":
            skip = True
        elif not arg.startswith("--warm-socket="):
            out.append(arg)
    return out


def _write_stdout(line):
    sys.stdout.write(line)
    sys.stdout.flush()
