"""The agent's command line as argparse sees it: the commands, their options and how each value is checked.

Its own module because both the one-off process (agent.cli) and the warm agent (agent.warm_server, which parses
each forwarded `classify` again) build it. A usage error is an "error" event with --events (exit 2 either way).
Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import

import argparse
import sys

from agent import command, contract, reporter
from agent.contract import EXIT_USAGE

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
            command.finish(EXIT_USAGE)
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
