"""The zoo's catalogue.json: per-model entries in the schema of agent/catalogue.json, with
the sha256 of every file, and a check that a zoo folder still matches its catalogue."""
import hashlib
import json
import os

SCHEMA = 1
CATALOGUE = "catalogue.json"
SYNSET = "synset.txt"
# Eval preprocessing of the TF EfficientNet-Lite models: centre crop of 224/256 of the
# short side, bicubic resize; the (x - 127) / 128 normalisation is inside the symbol.
CROP_FRACTION = 0.875


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(model, epoch=0):
    """(symbol, params) paths of ``model`` relative to the zoo root, laid out like the MXNet zoo."""
    return ("%s/%s-symbol.json" % (model, model), "%s/%s-%04d.params" % (model, model, epoch))


def model_entry(model, size, sha256, sizes=None):
    """The catalogue entry; `sizes`: each file's bytes (what `agent fetch` checks the free disk space against)."""
    symbol, params = model_files(model)
    return {
        "description": "%s, ImageNet-1k weights converted to MXNet (local zoo: scripts/build-local-zoo)"
                       % model.replace("efficientnet-lite", "EfficientNet-Lite"),
        "symbol": symbol,
        "params": params,
        "epoch": 0,
        "synset": SYNSET,
        "label": None,
        "local_zoo_only": True,
        "input": {"size": size, "crop_fraction": CROP_FRACTION, "interpolation": "cubic",
                  "color": "RGB", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
        "sha256": dict(sha256),
        **({"sizes": dict(sizes)} if sizes else {}),
    }


def write_catalogue(zoo_dir, entries):
    with open(os.path.join(zoo_dir, CATALOGUE), "w", encoding="utf-8") as f:
        json.dump({"schema": SCHEMA, "models": entries}, f, indent=2, sort_keys=False)
        f.write("\n")


def load_catalogue(zoo_dir):
    path = os.path.join(str(zoo_dir), CATALOGUE)
    with open(path, "r", encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("models"), dict):
        raise ValueError("%s: expected {\"schema\": %d, \"models\": {...}}" % (path, SCHEMA))
    return data


def catalogue_problems(zoo_dir, models):
    """What is wrong with the zoo in ``zoo_dir`` for ``models``: [] when every file is
    there with the sha256 its catalogue records."""
    zoo_dir = str(zoo_dir)
    try:
        entries = load_catalogue(zoo_dir)["models"]
    except (OSError, ValueError) as exc:
        return ["catalogue: %s" % exc]
    problems = []
    for model in models:
        entry = entries.get(model)
        if not isinstance(entry, dict):
            problems.append("%s: not in the catalogue" % model)
            continue
        for kind in ("symbol", "params", "synset"):
            path = os.path.join(zoo_dir, entry.get(kind) or "")
            want = (entry.get("sha256") or {}).get(kind)
            if not os.path.isfile(path):
                problems.append("%s: %s file %s is missing" % (model, kind, path))
            elif sha256_file(path) != want:
                problems.append("%s: %s file %s does not match its sha256" % (model, kind, path))
    return problems
