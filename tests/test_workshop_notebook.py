"""The workshop notebook (mxlab/workshop/mxnet-lab.ipynb) executed end to end with nbclient in a real kernel
(this venv's MXNet), in a workspace laid out as `mxlab prepare --workspace` lays it out: checkpoint links into
the local zoo, synset.txt, the photos and models.json. Its outputs are read back, not its code."""
import json
import os
import re
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from mxlab.workshop import workspace
from tests.test_agent_syntax import vermin

pytestmark = pytest.mark.timeout(900)
MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
COFFEE = ("espresso", "cup", "coffee mug")  # what the photo shows (ImageNet has no 'latte art')


def lay_out(local_zoo, folder):
    """The workspace as workspace.lay_out makes it on a host, here from the local zoo."""
    entries = json.loads((local_zoo / "catalogue.json").read_text())["models"]
    models = [workspace.model_facts(m, entries[m]) for m in MODELS]
    for facts in models:
        entry = entries[facts["model"]]
        os.symlink(str(local_zoo / entry["symbol"]), str(folder / ("%s-symbol.json" % facts["name"])))
        os.symlink(str(local_zoo / entry["params"]), str(folder / ("%s-0000.params" % facts["name"])))
    os.symlink(str(local_zoo / "synset.txt"), str(folder / "synset.txt"))
    for name in workspace.PHOTOS:
        shutil.copy(str(workspace.photo_path(name)), str(folder / name))
    (folder / workspace.MODELS_FILE).write_text(workspace.models_json(models))
    shutil.copy(str(workspace.NOTEBOOK), str(folder / workspace.NOTEBOOK.name))
    return folder / workspace.NOTEBOOK.name


def text_of(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def images_of(cell):
    return [o for o in cell.outputs if o.output_type == "display_data" and "image/png" in o.data]


def cell_with(nb, needle):
    found = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert len(found) == 1, needle
    return found[0]


def check_executed(nb):
    """The assertions on an executed notebook's real outputs (also used by the sandbox test)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every cell ran"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    top5 = text_of(cell_with(nb, "top5 = np.argsort")).splitlines()
    assert len(top5) == 5, top5
    first = re.match(r"([0-9.]+)  (.+)", top5[0])
    assert first and first.group(2) in COFFEE, top5
    assert float(first.group(1)) > 0.3, top5
    assert len(images_of(cell_with(nb, "PHOTO = 'coffee.jpg'"))) == 1
    channels = cell_with(nb, "('red', 'green', 'blue')")
    assert len(images_of(channels)) == 3 and text_of(channels).split() == ["red", "green", "blue"]
    table = [o for o in cell_with(nb, "class=\"comparison\"").outputs if "text/html" in o.get("data", {})]
    assert len(table) == 1
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>", table[0].data["text/html"])
    assert sorted(set(r[0] for r in rows)) == sorted(MODELS) and len(rows) == 6, rows
    assert all(label in COFFEE for model, photo, label in rows if photo == "coffee.jpg"), rows
    assert all("cat" in label for model, photo, label in rows if photo == "chelsea.jpg"), rows


def test_the_notebook_runs_top_to_bottom_with_real_outputs(local_zoo, tmp_path):
    path = lay_out(local_zoo, tmp_path)
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    check_executed(nb)


def test_the_notebook_is_python_27_code(tmp_path):
    """A DLAMI's mxnet_p27 kernel runs it too: vermin reads its code cells as Python 2.7 and 3.6 would."""
    nb = nbformat.read(str(workspace.NOTEBOOK), as_version=4)
    cells = tmp_path / "cells.py"
    cells.write_text("\n".join(c.source for c in nb.cells if c.cell_type == "code"))
    assert vermin(str(cells)).returncode == 0
    cells.write_text(cells.read_text() + "\nprint(f'{PHOTO}')\n")  # and it would say so if not
    assert vermin(str(cells)).returncode != 0
