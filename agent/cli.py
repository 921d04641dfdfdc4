"""The command line: models, fetch, classify, serve, env.

stdout carries only results (JSON lines; the models/env listings when asked);
progress and messages go to stderr, as text or, with --events, as JSON events
(agent.contract). Exit codes (agent.contract): 0 all inputs classified,
3 some inputs failed (the rest have results), 2 usage, 1 fatal.
"""
from __future__ import print_function, division, absolute_import

import argparse
import errno
import json
import os
import signal
import sys
import traceback

from agent import contract, reporter
from agent.contract import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from agent import __version__
from agent.errors import AgentError

CACHE_HELP = ("model cache folder (default $MXLAB_CACHE or ~/.mxlab/models); files live in "
              "CACHE/MODEL/<zoo file name>, only ever put there after verification")
ZOO_HELP = ("model zoo: http(s):// URL, file:// URL or a directory (default $MXLAB_ZOO or "
            "http://data.mxnet.io/models/imagenet/); a catalogue.json at its root adds or pins models")


def _int_at_least(text, least):
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError("expected a whole number of {0} or more, got {1!r}".format(least, text))
    return value


def positive_int(text):
    return _int_at_least(text, 1)


def non_negative_int(text):
    return _int_at_least(text, 0)


def batch_size(text):
    value = positive_int(text)
    if value > 1024:
        raise argparse.ArgumentTypeError("expected at most 1024 images per batch, got {0!r}".format(text))
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError("expected a number of seconds above 0, got {0!r}".format(text))
    return value


def model_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected one or more model names separated by commas, got {0!r}"
                                         .format(text))
    return names


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are an "error" event with --events (exit 2 either way)."""

    def error(self, message):
        if reporter.events_on():
            reporter.emit("error", message="{0}: {1}".format(self.prog, message))
            _finish(EXIT_USAGE)
            sys.exit(EXIT_USAGE)
        argparse.ArgumentParser.error(self, message)


def build_parser():
    parser = _Parser(
        prog="python -m agent",
        description="Classify images with MXNet model-zoo models (the mxlab lab agent).",
        epilog="Exit codes: " + ", ".join("{0} {1}".format(code, meaning)
                                          for code, meaning in contract.EXIT_MEANINGS.items()) + ".")
    events = _Parser(add_help=False)
    events.add_argument(contract.EVENTS_FLAG, action="store_true",
                        help="write stderr as JSON lines, one event each (the events are listed in agent/contract.py)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    models = commands.add_parser("models", parents=[events], help="list the model catalogue")
    models.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    models.add_argument("--zoo", help=ZOO_HELP + "; with a zoo (--zoo or $MXLAB_ZOO), its catalogue is merged in")
    models.add_argument("--cache", help=CACHE_HELP)

    def network_options(sub):
        sub.add_argument("--zoo", help=ZOO_HELP)
        sub.add_argument("--cache", help=CACHE_HELP)
        sub.add_argument("--timeout", type=positive_float, default=30.0,
                         help="network timeout per attempt in seconds (default 30)")
        sub.add_argument("--retries", type=non_negative_int, default=4,
                         help="retries of a transient network error, with backoff 0.5 s doubling "
                              "up to 8 s (default 4)")

    fetch = commands.add_parser("fetch", parents=[events], help="download and verify models into the cache")
    fetch.add_argument("models", nargs="+", metavar="MODEL")
    network_options(fetch)

    classify = commands.add_parser(
        "classify", parents=[events], help="classify images; one JSON line per image and model",
        description="Classify images; one JSON line per image and model on stdout (or --out). An input "
                    "that cannot be classified gets an error record and the rest go on. Images whose "
                    "header claims more than $MXLAB_MAX_PIXELS (default 64 million) pixels are refused "
                    "before decoding.")
    classify.add_argument("--model", required=True, type=model_list, metavar="M[,M...]",
                          help="model name(s) from `python -m agent models`")
    network_options(classify)
    classify.add_argument("--top-k", type=positive_int, default=5, help="classes per result (default 5)")
    classify.add_argument("--batch-size", type=batch_size, default=8,
                          help="images per forward pass, 1 to 1024 (default 8)")
    classify.add_argument("--int8", action="store_true",
                          help="run an INT8 graph (oneDNN, CPU only) calibrated on up to 16 of the inputs: "
                               "3-4x faster on VGG/ResNet/Inception, ~1.2-1.6x on EfficientNet-Lite0; "
                               "top-1 agreed with FP32 on 97%% of the bench photos")
    classify.add_argument("--engine", choices=("mxnet", "onnxruntime", "auto"), default="mxnet",
                          help="mxnet (default, the reference); onnxruntime: the model exported to ONNX once "
                               "(cached, verified against MXNet on the first batch; needs agent/"
                               "requirements-onnx.txt); auto: whichever is faster on the first batch (an "
                               "\"engine\" event says which and why)")
    classify.add_argument("--out", help="write results to this file (atomically) instead of stdout")
    classify.add_argument("--warm", action="store_true",
                          help="first hand the run to this host's warm agent (`serve`, which `mxlab prepare` "
                               "starts): models already bound, a one-photo run in well under a second; when it is "
                               "absent, stale or busy a \"warm\" event says so and this process classifies")
    classify.add_argument("--warm-socket", metavar="PATH",
                          help="the warm agent's socket (default ~/{0}/{1}/{2})".format(
                              contract.REMOTE_ROOT, contract.WARM_DIR, contract.WARM_SOCKET))
    classify.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, directory or http(s) URL")

    serve = commands.add_parser(
        "serve", parents=[events], help="the warm agent: keep models bound for `classify --warm`",
        description="Keep models loaded and bound and run `classify --warm` requests of this user over a unix "
                    "socket (0600, in a 0700 folder). One run at a time (another is declined: it runs fresh); "
                    "exits after --idle-timeout seconds without a request, on SIGTERM, when asked (--stop), "
                    "or when the agent's files change (a request from other code finds it stale).")
    serve.add_argument("--socket", metavar="PATH", help="default ~/{0}/{1}/{2}".format(
        contract.REMOTE_ROOT, contract.WARM_DIR, contract.WARM_SOCKET))
    serve.add_argument("--preload", type=model_list, default=[], metavar="M[,M...]",
                       help="bind these models before listening, as a classify with the same --zoo, --cache, "
                            "--engine and --batch-size would")
    network_options(serve)
    serve.add_argument("--batch-size", type=batch_size, default=8, help="of the preloaded models (default 8)")
    serve.add_argument("--engine", choices=("mxnet", "onnxruntime", "auto"), default="mxnet",
                       help="of the preloaded models (default mxnet)")
    serve.add_argument("--idle-timeout", type=positive_float, default=float(contract.WARM_IDLE_S),
                       help="exit after this many seconds without a request (default {0})".format(
                           contract.WARM_IDLE_S))
    serve.add_argument("--status", action="store_true",
                       help="print the running warm agent's state as JSON; exit 1 when none answers")
    serve.add_argument("--stop", action="store_true", help="ask the running warm agent to exit")

    env = commands.add_parser("env", parents=[events], help="Python, MXNet version and features, GPUs")
    env.add_argument("--json", action="store_true", help="print as JSON")
    return parser


_counts = {"results": 0, "errors": 0}  # of the classify run, for the "done" event


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if contract.EVENTS_FLAG in argv:  # before parsing: a usage error is an event too
        reporter.use_events()
    parser = build_parser()
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
            code = _unexpected(err)
        else:
            # The reader of stdout went away (e.g. `| head`): stop quietly, as other tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except Exception as err:  # a bug: its traceback is reported (as log events with --events)
        code = _unexpected(err)
    _finish(code)
    return code


def _finish(code):
    reporter.finish()
    reporter.emit("done", results=_counts["results"], errors=_counts["errors"], exit=code)


def _unexpected(err):
    for line in traceback.format_exc().rstrip().splitlines():
        reporter.emit("log", message=line)
    reporter.emit("error", message="unexpected {0}: {1}".format(type(err).__name__, err))
    return EXIT_FATAL


def _zoo_and_cache(args):
    from agent import cache, download, zoo
    policy = download.Policy(timeout=getattr(args, "timeout", 30.0), retries=getattr(args, "retries", 4))
    cache_dir = args.cache or cache.default_location()
    return zoo.Zoo(args.zoo), cache_dir, policy


def run_models(args):
    from agent.catalogue import load_builtin
    if args.zoo or os.environ.get("MXLAB_ZOO"):
        the_zoo, cache_dir, policy = _zoo_and_cache(args)
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
    the_zoo, cache_dir, policy = _zoo_and_cache(args)
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
            code, _counts["results"], _counts["errors"] = outcome
            return code
    from agent.pipeline import tune_environment
    tune_environment()  # before mxnet is imported: OpenMP reads it once
    from agent import startup
    startup.mark("python")
    from agent.loading import FreshModels
    _exit_on_termination()
    return classify(args, FreshModels())


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


def classify(args, models, stdout=None):
    """The classify run of parsed ``args``; ``models`` (agent.loading) gives the catalogue and bound
    models; result lines go to --out, else to ``stdout`` (default sys.stdout). Returns the exit code."""
    from agent import classify as classify_run, inputs, predict, startup
    from agent.results import ResultWriter
    the_zoo, cache_dir, policy = _zoo_and_cache(args)
    catalogue = models.catalogue(the_zoo, cache_dir, policy)
    names = []
    for name in args.model:
        if name not in names:
            names.append(name)
    entries = [(name, catalogue.entry(name)) for name in names]  # all names checked first
    sources = inputs.expand(args.inputs, policy)
    with ResultWriter(args.out, tally=_counts, stdout=stdout) as writer:
        # MXNet is imported only when an engine needs it (not for a cached ONNX Runtime session).
        context = predict.pick_context(light=args.engine != "mxnet" and not args.int8)
        startup.mark("imports")
        reporter.emit("classify", models=names, inputs=len(sources), device=str(context))
        classifiers = models.classifiers(args, entries, sources, the_zoo, cache_dir, policy, context)
        startup.mark("models")
        classify_run.run(sources, classifiers, writer, args.batch_size, args.top_k)
    return EXIT_SOME_FAILED if writer.errors else EXIT_OK
