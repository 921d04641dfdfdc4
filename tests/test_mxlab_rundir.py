"""mxlab/results/rundir.py: the run folder's names, the run id, JSONL and summary.json (pure, on tmp_path)."""
import calendar
import json

import pytest

from agent import contract
from mxlab.remote.run import HostResult
from mxlab.results import rundir
from mxlab.results.rundir import ResultStore


def test_the_run_folder_keeps_its_names_on_disk(tmp_path):
    # The layout is a public interface: `mxlab report` and --resume of older runs read these names.
    assert (rundir.SUMMARY_FILE, rundir.MERGED_FILE, rundir.SHARD_FILE, rundir.RUN_FACTS_FILE, rundir.REPORT_FILE) \
        == ("summary.json", "results.jsonl", "shard.json", "run.json", "report.html")
    assert rundir.MERGED_FILE == contract.RESULTS_FILE, "the same value as the agent's file, by choice"
    assert rundir.host_file(tmp_path, "attendee-1") == tmp_path / "attendee-1.jsonl"


def test_a_run_id_says_when_it_started_and_two_in_a_second_differ():
    now = calendar.timegm((2026, 12, 7, 5, 30, 1, 0, 0, 0))
    a, b = rundir.new_run_id(now), rundir.new_run_id(now)
    assert a != b and a.startswith("20261207T053001Z-")
    assert tuple(rundir.run_id_time(a))[:6] == (2026, 12, 7, 5, 30, 1)
    assert rundir.run_id_time("my-own-name") is None


def test_jsonl_round_trip_skips_a_line_cut_short(tmp_path):
    path = rundir.write_jsonl(tmp_path / "h.jsonl", [{"image": "a"}, {"image": "b"}])
    assert rundir.read_jsonl(path) == [{"image": "a"}, {"image": "b"}]
    path.write_text(path.read_text() + '{"image": "c", "to')
    assert rundir.read_jsonl(path) == [{"image": "a"}, {"image": "b"}]


def test_host_files_are_the_hosts_not_the_merged_file(tmp_path):
    store = ResultStore(tmp_path, "lab", "run1")
    store.save_host(HostResult(label="h1", address="a", status="ok", records=[{"image": "a"}]))
    store.save_merged([{"image": "a"}])
    assert rundir.host_files(store.dir) == {"h1": store.dir / "h1.jsonl"}


def test_summary_written_once_with_extra_fields_and_read_back_as_the_host_results(tmp_path, monkeypatch):
    writes = []
    real = rundir.write_atomic
    monkeypatch.setattr(rundir, "write_atomic", lambda path, text: (writes.append(path.name), real(path, text)))
    store = ResultStore(tmp_path, "lab", "run1")
    hosts = [HostResult(label="h1", address="10.0.0.1:22", status="partial", records=[{"image": "a"}],
                        error="some inputs failed", exit_code=3, reconnects=2, warm_agent=True),
             HostResult(label="h2", address="10.0.0.2:22", status="failed", error="gone")]
    store.save_summary(hosts, {"h1": {"chunks": [1, 3]}})
    assert writes == ["summary.json"] and store.hosts == hosts
    saved = json.loads((store.dir / "summary.json").read_text())
    assert saved[0]["chunks"] == [1, 3] and "chunks" not in saved[1]
    entries = rundir.load_summary(store.dir)
    back = rundir.host_result(entries[0], [{"image": "a"}])
    assert back == hosts[0]
    assert rundir.host_result(entries[1]) == hosts[1]


def test_load_summary_says_what_is_wrong(tmp_path):
    assert rundir.load_summary(tmp_path) is None
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(ValueError, match="summary.json is not valid JSON"):
        rundir.load_summary(tmp_path)
    (tmp_path / "summary.json").write_text('{"host": "h1"}')
    with pytest.raises(ValueError, match="not a list of hosts"):
        rundir.load_summary(tmp_path)
    (tmp_path / "summary.json").write_text('[{"host": "h1"}, {"no": "host"}, 3]')
    assert rundir.load_summary(tmp_path) == [{"host": "h1"}]
