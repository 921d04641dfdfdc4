"""The workshop notebook (mxlab/workshop/mxnet-lab.ipynb) executed end to end with nbclient in a real kernel
(this venv's MXNet), in a workspace laid out as `mxlab prepare --workspace` lays it out: checkpoint links into
the local zoo, synset.txt, the photos and models.json. Its outputs are read back, not its code."""
import json
import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from mxlab.workshop import workspace
from tests.notebook_outputs import MODELS, check_executed
from tests.other_pythons import vermin

pytestmark = pytest.mark.timeout(900)
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
