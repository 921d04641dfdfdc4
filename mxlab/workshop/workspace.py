"""The attendee's seed exercise in ~/mxnet-lab/ on a lab host (`mxlab prepare --workspace`), and its README.

The workshop loads a checkpoint by prefix and epoch (mx.model.load_checkpoint('Inception-BN', 0)), so each
model is there as `<Name>-symbol.json` and `<Name>-0000.params`: links into the agent's model cache (no
second copy), the epoch renamed to 0 as the workshop does. Beside them: synset.txt, two sample photos and
README.md, whose activation command is that host's own and whose Python steps run as written; and the
workshop as a notebook, mxnet-lab.ipynb (mxlab/workshop/), with models.json saying how each model of this lab
wants its input (the notebook reads it: the seed's models where the zoo has them, the offline zoo's otherwise).
"""
import json
import posixpath
import shlex
from pathlib import Path

WORKSPACE_DIR = "mxnet-lab"  # under the login user's home
PHOTOS_DIR = Path(__file__).resolve().parent / "sample_photos"  # package data (CC0, from scikit-image)
PHOTOS = ("chelsea.jpg", "coffee.jpg")
SMOKE_PHOTO = PHOTOS[0]  # a tabby cat: `mxlab prepare` classifies it with every model
NOTEBOOK = Path(__file__).resolve().parent / "mxnet-lab.ipynb"  # package data
MODELS_FILE = "models.json"  # the notebook's list of this workspace's models


def photo_path(name=SMOKE_PHOTO):
    return PHOTOS_DIR / name


def checkpoint_name(model, entry):
    """The checkpoint prefix the zoo gave the model ('Inception-BN' for inception-bn), else its name."""
    base = posixpath.basename(entry.get("symbol") or "")
    return base[:-len("-symbol.json")] if base.endswith("-symbol.json") else model


def model_facts(model, entry):
    """What the README's steps need of one model, from its catalogue entry."""
    spec = entry.get("input") or {}
    return {"model": model, "name": checkpoint_name(model, entry), "size": int(spec.get("size", 224)),
            "mean": [float(x) for x in spec.get("mean", (0.0, 0.0, 0.0))],
            "std": [float(x) for x in spec.get("std", (1.0, 1.0, 1.0))],
            "color": spec.get("color", "RGB"),
            # Module's label_names: VGG16 (from Caffe) has prob_label, not the default softmax_label.
            "label_names": [entry["label"]] if entry.get("label") else None}


def models_json(models):
    """models.json of the workspace: the notebook's models, in the order the organiser asked for them."""
    return json.dumps({"models": models}, indent=1, sort_keys=True) + "\n"


def _tuple(values):
    return "(%s)" % ", ".join(repr(round(v, 3)) for v in values)


def python_steps(facts, photo=SMOKE_PHOTO):
    """The workshop's steps for one model: load_checkpoint, Module bind, forward, top-5.

    Python 2.7 and 3 alike (a DLAMI's mxnet_p27 env runs them too); run in ~/mxnet-lab.
    """
    return """import mxnet as mx
import numpy as np
import cv2

MODEL, SIZE = {name!r}, {size}
MEAN, STD = np.array({mean}), np.array({std})

# The labels, one per class: 'n02123045 tabby, tabby cat'
labels = [line.strip().split(' ', 1)[1] for line in open('synset.txt')]

# The network and its weights: {name}-symbol.json and {name}-0000.params
sym, arg_params, aux_params = mx.model.load_checkpoint(MODEL, 0)
mod = mx.mod.Module(symbol=sym, context=mx.cpu(), label_names=None)
mod.bind(for_training=False, data_shapes=[('data', (1, 3, SIZE, SIZE))])
mod.set_params(arg_params, aux_params, allow_missing=True)

# One photo as a batch of one: {color}, SIZE x SIZE, channels first
img = cv2.imread({photo!r}){convert}
img = cv2.resize(img, (SIZE, SIZE)).astype('float32')
img = (img - MEAN) / STD
batch = mx.io.DataBatch([mx.nd.array(img.transpose(2, 0, 1)[np.newaxis])])

mod.forward(batch, is_train=False)
prob = mod.get_outputs()[0].asnumpy()[0]
if abs(prob.sum() - 1) > 1e-3:  # a head without softmax gives scores: make them probabilities
    prob = np.exp(prob - prob.max())
    prob /= prob.sum()
for i in np.argsort(prob)[::-1][:5]:
    print('%.3f %s' % (prob[i], labels[i]))
""".format(name=facts["name"], size=facts["size"], mean=_tuple(facts["mean"]), std=_tuple(facts["std"]),
           color=facts["color"], photo=photo,
           convert="[:, :, ::-1]  # OpenCV reads BGR" if facts["color"] == "RGB" else "  # OpenCV reads BGR")


def readme_text(label, environment, activate, models):
    """README.md of the workspace: `activate` is the exact shell command for this host's environment."""
    first = models[0]
    rows = "\n".join("| %s | `%s` | %d | %s | %s |" % (m["model"], m["name"], m["size"], _tuple(m["mean"]),
                                                     _tuple(m["std"])) for m in models)
    return """# MXNet lab: your workspace ({label})

Everything here is ready: the models, their labels and two photos.

## 1. Activate the environment ({environment})

```bash
{activate}
cd ~/{workspace}
```

## 2. The models

| model | MODEL (checkpoint prefix) | SIZE | MEAN | STD |
|---|---|---|---|---|
{rows}

Each is `<MODEL>-symbol.json` (the network) and `<MODEL>-0000.params` (its weights, epoch 0), with
`synset.txt` (the 1000 ImageNet labels). Photos: {photos}.

## 3. Classify a photo

Start `python` and type (or paste) these steps; to try another model or photo, change MODEL, SIZE,
MEAN and STD from the table above, or the photo's name.

```python
{steps}```
""".format(label=label, environment=environment, activate=activate, workspace=WORKSPACE_DIR, rows=rows,
           photos=", ".join(PHOTOS), steps=python_steps(first))


def lay_out(session, home, activate, environment, files, entries):
    """Make ~/mxnet-lab on the host: links into the cache, synset.txt, the photos, README.md.

    files: {model: {symbol, params, synset}: absolute cache paths on the host} (the agent's fetch output);
    entries: {model: catalogue entry}. Returns (workspace path, [model facts]).
    """
    workspace = posixpath.join(home, WORKSPACE_DIR)
    models = [model_facts(m, entries.get(m, {})) for m in files]
    links = []
    for facts in models:
        paths = files[facts["model"]]
        links.append((paths["symbol"], "%s-symbol.json" % facts["name"]))
        links.append((paths["params"], "%s-0000.params" % facts["name"]))
    links.append((files[models[0]["model"]]["synset"], "synset.txt"))
    # ln -sfn: a second prepare replaces the links (a model's cache file may have been fetched again).
    script = "mkdir -p %s && cd %s && %s" % (shlex.quote(workspace), shlex.quote(workspace), " && ".join(
        "ln -sfn %s %s" % (shlex.quote(src), shlex.quote(dest)) for src, dest in links))
    session.check(script, "laying out ~/%s" % WORKSPACE_DIR)
    sftp = session.sftp()
    for name in PHOTOS:
        sftp.put(str(photo_path(name)), posixpath.join(workspace, name))
    with sftp.open(posixpath.join(workspace, "README.md"), "w") as fh:
        fh.write(readme_text(session.target.label, environment, activate, models).encode("utf-8"))
    with sftp.open(posixpath.join(workspace, MODELS_FILE), "w") as fh:
        fh.write(models_json(models).encode("utf-8"))
    notebook = posixpath.join(workspace, NOTEBOOK.name)
    try:
        sftp.stat(notebook)  # the attendee's own copy, maybe edited and run: never replaced
    except IOError:
        sftp.put(str(NOTEBOOK), notebook)
    return workspace, models
