"""Model names the operator may ask for, read through the agent's own catalogue code.

agent/ is installed beside mxlab, so agent.zoo and agent.catalogue decide here exactly as
on the host: the built-in catalogue merged with the zoo's catalogue.json. mxlab only reads
it to reject an unknown model before anything is uploaded.
"""
import logging
import os
import tempfile

from agent.download import Policy
from agent.errors import AgentError, UsageError as AgentUsageError
from agent.zoo import Zoo
from mxlab.errors import UsageError

log = logging.getLogger(__name__)

ZOO_TIMEOUT_S = 5  # the operator's view of a zoo is a courtesy: the agent checks again on the host


def known_models(zoo=None):
    """Model names the agent will accept with ``zoo``, or None when that zoo cannot be read from here."""
    zoo = zoo or os.environ.get("MXLAB_ZOO")
    try:
        the_zoo = Zoo(zoo)
    except AgentUsageError as exc:  # e.g. a folder that exists only on the host
        log.info("zoo %s not readable here (%s): the agent will check model names", zoo, exc)
        return None
    # A throwaway cache: the agent keeps a zoo's catalogue in its own cache on the host, not here.
    with tempfile.TemporaryDirectory(prefix="mxlab-catalogue-") as cache_dir:
        try:
            return set(the_zoo.catalogue(cache_dir, Policy(timeout=ZOO_TIMEOUT_S, retries=0)).names())
        except AgentError as exc:
            if the_zoo.url is None:  # a local catalogue that is broken is the operator's to fix
                raise UsageError("zoo %s: %s" % (zoo, exc))
            log.info("zoo catalogue of %s not readable here (%s): the agent will check model names", zoo, exc)
            return None


def check_models(models, zoo=None):
    """Raise UsageError for a model name neither the catalogue nor the zoo knows."""
    if not models:
        raise UsageError("--model: expected one or more model names, got none")
    known = known_models(zoo)
    if known is None:
        return list(models)
    unknown = [m for m in models if m not in known]
    if unknown:
        raise UsageError("unknown model %s: expected one of %s"
                         % (", ".join(repr(m) for m in unknown), ", ".join(sorted(known))))
    return list(models)
