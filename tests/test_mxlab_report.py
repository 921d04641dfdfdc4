"""mxlab.results.tables and mxlab.results.rundir: the terminal tables and summary.json built from host results
(pure)."""
import json

from rich.console import Console

from mxlab.results import tables
from mxlab.results.rundir import ResultStore, summary_entry
from mxlab.remote.run import HostResult

OK_RECORD = {"image": "coffee.jpg", "model": "m1", "ms": 3.0,
             "top": [{"label": "espresso", "prob": 0.9}, {"label": "cup", "prob": 0.05}]}
ERROR_RECORD = {"image": "zero.jpg", "model": "m1", "error": "not a regular file (FIFO)"}


def rendered(table):
    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    console.print(table)
    return console.export_text()


def results():
    ok = HostResult(label="h1", address="10.0.0.1:22", status="ok", records=[OK_RECORD], environment="conda:mxnet_p36")
    cut = HostResult(label="h2", address="10.0.0.2:22", status="failed", records=[OK_RECORD, ERROR_RECORD],
                     error="agent gone", partial_results=True, reconnects=2)
    return [ok, cut]


def test_summary_marks_recovered_results_partial_in_the_table_and_in_summary_json(tmp_path):
    text = rendered(tables.summary_table(results(), tmp_path))
    row1 = next(l for l in text.splitlines() if "h1" in l)
    row2 = next(l for l in text.splitlines() if "h2" in l)
    assert " 1 " in row1 and "partial" not in row1 and "env conda:mxnet_p36" in row1
    assert "2 (partial)" in row2 and "agent gone (reconnected 2×)" in row2
    store = ResultStore(tmp_path, "lab", "run1")
    saved = json.loads(store.save_summary(results()).read_text())
    assert [(h["host"], h["results"], h["partial_results"]) for h in saved] == [("h1", 1, False), ("h2", 2, True)]
    assert summary_entry(results()[1])["reconnects"] == 2


def test_topk_and_compare_tables_show_labels_and_errors():
    text = rendered(tables.topk_table("h1", [OK_RECORD, ERROR_RECORD]))
    assert "espresso" in text and "90.0%" in text and "cup" in text
    assert "error: not a regular file (FIFO)" in text
    text = rendered(tables.compare_table("h1", [OK_RECORD, dict(OK_RECORD, model="m2"), ERROR_RECORD], ["m1", "m2"]))
    coffee = next(l for l in text.splitlines() if "coffee.jpg" in l)
    assert coffee.count("espresso (90.0%)") == 2
    zero = next(l for l in text.splitlines() if "zero.jpg" in l)
    assert "error: not a regular file (FIFO)" in zero and zero.rstrip(" │").endswith("-")
