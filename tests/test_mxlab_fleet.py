"""Several real sshd hosts at once: parallel runs, a per-host summary, failures isolated."""
import json

from rich.console import Console

from mxlab.runs.fleet import run_fleet
from mxlab.results.rundir import ResultStore, new_run_id
from mxlab.remote.run import RunSpec
from mxlab.lab.targets import direct_target
from mxlab.offline.lab_host import free_port


def test_fleet_runs_hosts_in_parallel_and_one_failure_loses_nothing(sshd_factory, local_zoo, sample_photos,
                                                                     tmp_path):
    hosts = [sshd_factory(), sshd_factory()]
    targets = [direct_target(h.hostspec, h.user, h.identity, h.known_hosts) for h in hosts]
    # A third host that is down, with the first host's key file (valid input, unreachable host).
    targets.append(direct_target("127.0.0.1:%d" % free_port(), hosts[0].user, hosts[0].identity,
                                 hosts[0].known_hosts))
    spec = RunSpec(models=["efficientnet-lite0"], inputs=[str(sample_photos / "coffee.jpg"),
                                                          str(sample_photos / "chelsea.jpg")], zoo=str(local_zoo))
    run_id = new_run_id()
    store = ResultStore(tmp_path, "fleet", run_id)
    console = Console(file=open(tmp_path / "progress.txt", "w"), width=200)
    results = run_fleet(targets, spec, run_id, store, console, parallel=2, timeout=3)
    assert [r.status for r in results] == ["ok", "ok", "failed"]
    assert "waiting for the SSH server" in results[2].error
    for r in results[:2]:
        saved = [json.loads(l) for l in (store.dir / ("%s.jsonl" % r.label)).read_text().splitlines()]
        assert {s["top"][0]["label"] for s in saved if s["image"].endswith("coffee.jpg")} == {"espresso"}
        assert len(saved) == 2
    summary = json.loads((store.dir / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["ok", "ok", "failed"]
    assert summary[2]["error"] and summary[2]["results"] == 0
    # Each host ran the same run id in its own home.
    for h in hosts:
        assert (h.home / ".mxlab-agent" / "runs" / run_id / "results.jsonl").is_file()
