"""What an executed workshop notebook (mxlab/workshop/mxnet-lab.ipynb) must show: its outputs read back, not its
code; for the notebook run here (test_workshop_notebook) and on a prepared lab host (test_mxlab_notebook)."""
import re

MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
COFFEE = ("espresso", "cup", "coffee mug")  # what the photo shows (ImageNet has no 'latte art')


def text_of(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def images_of(cell):
    return [o for o in cell.outputs if o.output_type == "display_data" and "image/png" in o.data]


def cell_with(nb, needle):
    found = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert len(found) == 1, needle
    return found[0]


def check_executed(nb):
    """The assertions on an executed notebook's real outputs."""
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
