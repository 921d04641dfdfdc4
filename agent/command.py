"""A command's run, shared by the one-off process (agent.cli) and the warm agent (agent.warm_server): the
classify run of parsed arguments, the counts of its results and errors that the "done" event reports, the zoo,
cache and network policy of the arguments, and a bug reported as events. Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import

import traceback

from agent import reporter
from agent.contract import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED

counts = {"results": 0, "errors": 0}  # of the classify run, for the "done" event


def finish(code):
    """The last events of the process: what the reporter kept back, then "done" with the counts."""
    reporter.finish()
    reporter.emit("done", results=counts["results"], errors=counts["errors"], exit=code)


def unexpected(err):
    """A bug: its traceback as log events, one "error" event; the exit code of a fatal error."""
    for line in traceback.format_exc().rstrip().splitlines():
        reporter.emit("log", message=line)
    reporter.emit("error", message="unexpected {0}: {1}".format(type(err).__name__, err))
    return EXIT_FATAL


def zoo_and_cache(args):
    """(zoo, cache folder, download policy) of parsed ``args``, defaults where a command has no option."""
    from agent import cache, download, zoo
    policy = download.Policy(timeout=getattr(args, "timeout", 30.0), retries=getattr(args, "retries", 4))
    cache_dir = args.cache or cache.default_location()
    return zoo.Zoo(args.zoo), cache_dir, policy


def classify(args, models, stdout=None):
    """The classify run of parsed ``args``; ``models`` (agent.loading) gives the catalogue and bound
    models; result lines go to --out, else to ``stdout`` (default sys.stdout). Returns the exit code."""
    from agent import classify as classify_run, inputs, predict, startup
    from agent.results import ResultWriter
    the_zoo, cache_dir, policy = zoo_and_cache(args)
    catalogue = models.catalogue(the_zoo, cache_dir, policy)
    names = []
    for name in args.model:
        if name not in names:
            names.append(name)
    entries = [(name, catalogue.entry(name)) for name in names]  # all names checked first
    sources = inputs.expand(args.inputs, policy)
    with ResultWriter(args.out, tally=counts, stdout=stdout) as writer:
        # MXNet is imported only when an engine needs it (not for a cached ONNX Runtime session).
        context = predict.pick_context(light=args.engine != "mxnet" and not args.int8)
        startup.mark("imports")
        reporter.emit("classify", models=names, inputs=len(sources), device=str(context))
        classifiers = models.classifiers(args, entries, sources, the_zoo, cache_dir, policy, context)
        startup.mark("models")
        classify_run.run(sources, classifiers, writer, args.batch_size, args.top_k)
    return EXIT_SOME_FAILED if writer.errors else EXIT_OK
