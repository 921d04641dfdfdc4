"""Model names the operator may ask for: agent/catalogue.json plus the zoo's own catalogue.

The catalogue is one data file shared with the agent; mxlab only reads it to reject an
unknown model before anything is uploaded.
"""
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mxlab.errors import UsageError

log = logging.getLogger(__name__)

AGENT_DIR = Path(__file__).resolve().parent.parent / "agent"


def _names(data, source):
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise UsageError("%s: expected a JSON object with a \"models\" mapping" % source)
    return set(models)


def builtin_models(agent_dir=AGENT_DIR):
    path = Path(agent_dir) / "catalogue.json"
    with open(path) as fh:
        return _names(json.load(fh), path)


def zoo_models(zoo):
    """Names a zoo adds, or None when they cannot be known here (the agent then checks)."""
    if not zoo:
        return set()
    parsed = urllib.parse.urlparse(zoo)
    if parsed.scheme in ("http", "https"):
        url = zoo.rstrip("/") + "/catalogue.json"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return _names(json.loads(resp.read().decode("utf-8")), url)
        except (urllib.error.URLError, OSError, ValueError, UsageError) as exc:
            log.info("zoo catalogue %s not readable here (%s): the agent will check model names", url, exc)
            return None
    path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else zoo)
    if path.is_file() and path.name.endswith(".json"):
        cat = path
    else:
        cat = path / "catalogue.json"
    if not cat.exists():
        # A zoo path that only exists on the host cannot be checked from here.
        return set() if path.exists() else None
    with open(cat) as fh:
        return _names(json.load(fh), cat)


def check_models(models, zoo=None, agent_dir=AGENT_DIR):
    """Raise UsageError for a model name neither the catalogue nor the zoo knows."""
    if not models:
        raise UsageError("--model: expected one or more model names, got none")
    known = builtin_models(agent_dir)
    extra = zoo_models(zoo or os.environ.get("MXLAB_ZOO"))
    if extra is None:
        return list(models)
    known |= extra
    unknown = [m for m in models if m not in known]
    if unknown:
        raise UsageError("unknown model %s: expected one of %s"
                         % (", ".join(repr(m) for m in unknown), ", ".join(sorted(known))))
    return list(models)
