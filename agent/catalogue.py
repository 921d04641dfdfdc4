"""The model catalogue: agent/catalogue.json, extended by a zoo's own catalogue.json.

agent/catalogue.json is the one data file that describes the models (the operator
side reads it too). A zoo may add or pin models with a catalogue.json at its root
holding ``{"models": {NAME: ENTRY}}``; its entries update the built-in ones field by
field, so a zoo can pin only ``sha256`` or add whole new models. ``sizes`` (bytes of each
file: exact for the local zoo's models, rounded for the MXNet zoo's) is what a fetch checks
the free disk space against before it starts.
"""
from __future__ import print_function, division, absolute_import

import copy
import io
import json
import os
import re

from agent.errors import AgentError, UsageError

BUILTIN_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalogue.json")
FILE_KINDS = ("symbol", "params", "synset")
INTERPOLATIONS = ("area", "linear", "cubic")
COLORS = ("RGB", "BGR")
# Model names become cache folder names: keep them to safe characters.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def load_builtin():
    """The built-in catalogue as a dict (schema, zoo, models)."""
    return parse(read_json(BUILTIN_PATH), BUILTIN_PATH)


def read_json(path):
    try:
        with io.open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except (IOError, OSError) as err:
        raise AgentError("cannot read catalogue {0}: {1}".format(path, err))
    except ValueError as err:
        raise AgentError("catalogue {0} is not valid JSON: {1}".format(path, err))


def parse(document, source):
    """Check a catalogue document; return it with every model entry validated."""
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise AgentError('catalogue {0}: expected a JSON object with a "models" object'.format(source))
    for name, entry in document["models"].items():
        check_name(name, source)
        if not isinstance(entry, dict):
            raise AgentError("catalogue {0}: model {1!r} must be a JSON object".format(source, name))
    return document


def check_name(name, source):
    if not _NAME.match(name):
        raise AgentError("catalogue {0}: model name {1!r} must be letters, digits, '.', '_' or '-'"
                         .format(source, name))


def validate_entry(name, entry, source):
    """Raise AgentError naming the model and field unless ``entry`` is usable."""
    where = "catalogue {0}, model {1!r}".format(source, name)
    for kind in FILE_KINDS:
        rel = entry.get(kind)
        if not isinstance(rel, type(u"")) and not isinstance(rel, str):
            raise AgentError("{0}: {1!r} must be a path relative to the zoo".format(where, kind))
        parts = rel.replace("\\", "/").split("/")
        if rel.startswith("/") or ".." in parts or not parts[-1]:
            raise AgentError("{0}: {1!r} = {2!r} must be a relative file path without '..'"
                             .format(where, kind, rel))
    spec = entry.get("input")
    if not isinstance(spec, dict):
        raise AgentError('{0}: missing "input" block'.format(where))
    size = spec.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 4096:
        raise AgentError("{0}: input.size must be an integer from 8 to 4096, got {1!r}".format(where, size))
    fraction = spec.get("crop_fraction", 1.0)
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise AgentError("{0}: input.crop_fraction must be in (0, 1], got {1!r}".format(where, fraction))
    if spec.get("interpolation", "area") not in INTERPOLATIONS:
        raise AgentError("{0}: input.interpolation must be one of {1}, got {2!r}"
                         .format(where, ", ".join(INTERPOLATIONS), spec.get("interpolation")))
    if spec.get("color", "RGB") not in COLORS:
        raise AgentError("{0}: input.color must be RGB or BGR, got {1!r}".format(where, spec.get("color")))
    for key, default in (("mean", [0.0] * 3), ("std", [1.0] * 3)):
        values = spec.get(key, default)
        if (not isinstance(values, list) or len(values) != 3
                or not all(isinstance(v, (int, float)) for v in values)
                or (key == "std" and any(v == 0 for v in values))):
            raise AgentError("{0}: input.{1} must be a list of 3 numbers{2}, got {3!r}"
                             .format(where, key, " (non-zero)" if key == "std" else "", values))
    sizes = entry.get("sizes") or {}
    if not isinstance(sizes, dict) or not all(
            isinstance(sizes.get(kind, 0), int) and not isinstance(sizes.get(kind, 0), bool)
            and sizes.get(kind, 0) >= 0 for kind in FILE_KINDS):
        raise AgentError("{0}: sizes must map symbol/params/synset to byte counts, got {1!r}".format(where, sizes))
    pins = entry.get("sha256") or {}
    if not isinstance(pins, dict):
        raise AgentError("{0}: sha256 must be an object with symbol/params/synset".format(where))
    for kind in FILE_KINDS:
        pin = pins.get(kind)
        if pin is not None and not (isinstance(pin, (str, type(u""))) and _SHA256.match(pin.lower())):
            raise AgentError("{0}: sha256.{1} must be 64 hex digits or null, got {2!r}".format(where, kind, pin))


def merged(builtin, zoo_document, zoo_source):
    """Built-in models updated, field by field, with a zoo catalogue's models."""
    models = copy.deepcopy(builtin["models"])
    if zoo_document is not None:
        parse(zoo_document, zoo_source)
        for name, entry in zoo_document["models"].items():
            combined = models.get(name, {})
            combined.update(copy.deepcopy(entry))
            combined["from_zoo_catalogue"] = True
            models[name] = combined
    return models


class Catalogue(object):
    """The models usable with one zoo."""

    def __init__(self, models, zoo_is_default):
        self.models = models
        self.zoo_is_default = zoo_is_default

    def names(self):
        return sorted(self.models)

    def entry(self, name):
        """The validated entry of ``name``; UsageError listing known models otherwise."""
        if name not in self.models:
            raise UsageError("unknown model {0!r}; known models: {1}".format(name, ", ".join(self.names())))
        entry = self.models[name]
        validate_entry(name, entry, "zoo" if entry.get("from_zoo_catalogue") else BUILTIN_PATH)
        if entry.get("local_zoo_only") and self.zoo_is_default:
            raise UsageError("model {0!r} exists only in a local zoo: build one with "
                             "scripts/build-local-zoo DIR and pass --zoo DIR (or set MXLAB_ZOO)".format(name))
        return entry
