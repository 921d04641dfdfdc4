"""scripts/bench runs end to end (--quick, a tiny subset) and writes the JSON the issue asks for.

Speed is never asserted here: the benchmark measures, tests check behaviour.
"""
import importlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.paths import REPO


@pytest.mark.timeout(1800)  # the bench itself has 900 s
def test_quick_bench_writes_the_issue_json_shape(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [str(REPO / "scripts" / "bench"), "--quick", "--models", "inception-bn", "--methods",
         "seed,agent,agent_ort,int8,ort_int8,whole", "--images", "6", "--whole-photos", "3", "--fanout", "skip",
         "--one-photo", "skip", "--round-trips", "skip", "--room", "skip", "--no-measure-peak", "--build",
         str(tmp_path / "build"), "--photos", str(tmp_path / "photos"), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data) >= {"machine", "models", "peak_gflops", "fanout_s", "fanout_sequential_s"}
    assert data["machine"]["cores"] >= 1 and data["peak_gflops"] > 0
    model = data["models"]["inception-bn"]
    assert set(model) >= {"seed_ips", "agent_ips", "ort_ips", "int8_ips", "int8_top1_agreement",
                          "gflops_per_image", "agent_gflops"}
    assert model["seed_ips"] > 0 and model["agent_ips"] > 0 and model["int8_ips"] > 0
    assert model["ort_ips"] is None  # not asked for
    assert 0.0 <= model["int8_top1_agreement"] <= 1.0
    assert model["gflops_per_image"] == pytest.approx(3.97, abs=0.05)  # Inception-BN: ~2 GMAC
    assert "inception-bn" in proc.stdout and "targets:" in proc.stdout
    # The engines, whole-process and start-up figures (issue 14).
    assert model["engine"] in ("mxnet", "onnxruntime") and model["engine_ips"] == max(
        model["engine_ips_by_engine"].values()) and set(model["engine_ips_by_engine"]) == {"mxnet", "onnxruntime"}
    assert set(model["whole_process_s"]) == {"seed", "agent", "ort", "agent_warm"}
    assert min(model["whole_process_s"].values()) > 0
    assert model["whole_process_warm_used"] is True  # the warm agent (agent serve) ran the agent_warm runs
    # The INT8 peer (issue 20): ONNX Runtime static quantization, timed and compared with the agent's INT8.
    assert model["int8_ort_ips"] > 0 and 0.0 <= model["int8_ort_top1_agreement"] <= 1.0
    peer = model["int8_peer"]
    assert peer["ort"]["ips"] == round(model["int8_ort_ips"], 2) and peer["winner"] in ("agent", "ort", None)
    assert peer["agent"]["agreement"] == model["int8_top1_agreement"]
    assert "INT8: the agent's (MXNet oneDNN) vs the peer" in proc.stdout
    assert "inception-bn agent INT8 >= ORT INT8 at >= 95%" in proc.stdout
    assert "inception-bn agent keeps its lead" in proc.stdout
    assert model["whole_process_photos"] == 3
    assert model["first_result_s"] > 0 and model["first_result_engine"] in ("mxnet", "onnxruntime")
    assert set(model["first_result_stages"]["mxnet"]) == {"python", "imports", "checkpoint", "engine", "models",
                                                          "first_batch_decoded", "first_result"}  # JSON: keys sorted
    assert isinstance(model["int8_declined"], bool) and model["int8_reason"]
    assert data["fanout"] == {"sequential_8_s": None, "parallel_8_s": None, "host_cores": data["machine"]["cores"]}


def test_report_applies_the_agents_int8_verdict_and_fills_fanout():
    from bench import report
    machine = {"cores": 2, "peak_gflops": 100.0}
    base = {"flops": 1e9, "real_weights": False, "agent": {"ips": 10.0, "forward_ms": 50.0},
            "agent_ort": {"ips": 12.0}}
    results = {
        "fast": dict(base, int8={"ips": 25.0, "top1_agreement": 0.97, "batch": 8, "forward_ms": 20.0}),
        "slow": dict(base, int8={"ips": 9.0, "top1_agreement": 1.0, "batch": 8, "forward_ms": 55.0}),
        "wrong": dict(base, int8={"ips": 30.0, "top1_agreement": 0.84, "batch": 8, "forward_ms": 15.0}),
    }
    data = report.summary(results, machine, {"parallel": {"1": 1.5, "8": 6.3}, "sequential": {"8": 12.8}})
    models = data["models"]
    assert models["fast"]["int8_declined"] is False and models["fast"]["int8_reason"].startswith("INT8 kept")
    assert models["slow"]["int8_declined"] is True and "not 1x faster" in models["slow"]["int8_reason"]
    assert models["wrong"]["int8_declined"] is True and "agreement below 95%" in models["wrong"]["int8_reason"]
    assert models["fast"]["engine"] == "onnxruntime" and models["fast"]["engine_ips"] == 12.0
    assert data["fanout"] == {"sequential_8_s": 12.8, "parallel_8_s": 6.3, "host_cores": 2}
    rows = dict((what, met) for what, _, met in report.targets(data))
    assert rows["fleet parallel speed-up >= 0.9 x min(8, cores)"] is True  # 2.03x >= 1.8x
    assert "slow int8 >= 2x agent" not in rows and rows["fast int8 >= 2x agent"] is True


def test_int8_peer_picks_the_faster_int8_at_95_percent_agreement():
    from bench import int8_peer, report
    machine = {"cores": 2, "peak_gflops": 100.0}
    base = {"flops": 1e9, "real_weights": False, "agent": {"ips": 10.0, "forward_ms": 50.0}}
    results = {
        "agent-wins": dict(base, int8={"ips": 25.0, "top1_agreement": 1.0, "batch": 8, "forward_ms": 20.0},
                           ort_int8={"ips": 7.0, "top1_agreement": 1.0}),
        "ort-wins": dict(base, int8={"ips": 25.0, "top1_agreement": 0.97, "batch": 8, "forward_ms": 20.0},
                         ort_int8={"ips": 30.0, "top1_agreement": 0.96}),
        "agent-fit-only": dict(base, int8={"ips": 12.0, "top1_agreement": 0.96, "batch": 8, "forward_ms": 40.0},
                               ort_int8={"ips": 30.0, "top1_agreement": 0.80}),
        "neither": dict(base, int8={"ips": 12.0, "top1_agreement": 0.90, "batch": 8, "forward_ms": 40.0},
                        ort_int8={"ips": 30.0, "top1_agreement": 0.87}),
        "no-peer": dict(base, int8={"ips": 12.0, "top1_agreement": 1.0, "batch": 8, "forward_ms": 40.0}),
    }
    data = report.summary(results, machine, {})
    models = data["models"]
    assert [models[n]["int8_peer"]["winner"] for n in ("agent-wins", "ort-wins", "agent-fit-only", "neither")] == [
        "agent", "ort", "agent", None]
    assert models["ort-wins"]["int8_ort_ips"] == 30.0 and models["ort-wins"]["int8_ort_top1_agreement"] == 0.96
    assert models["no-peer"]["int8_peer"] is None and models["no-peer"]["int8_ort_ips"] is None
    rows = dict((what, met) for what, _, met in report.targets(data))
    assert rows["agent-wins agent INT8 >= ORT INT8 at >= 95%"] is True
    assert rows["ort-wins agent INT8 >= ORT INT8 at >= 95%"] is False
    assert rows["neither agent INT8 >= ORT INT8 at >= 95%"] is True
    assert "no-peer agent INT8 >= ORT INT8 at >= 95%" not in rows
    printed = "\n".join(int8_peer.lines(models))
    assert "ort-wins" in printed and "ONNX Runtime's: MISS" in printed and "no-peer" not in printed


def test_whole_process_lead_needs_the_warm_agent_used():
    from bench import report
    whole = {"whole_process_s": {"seed": 11.0, "agent": 4.0, "ort": 4.5, "agent_warm": 2.0}, "photos": 224}
    base = {"flops": 1e9, "real_weights": False, "agent": {"ips": 10.0, "forward_ms": 50.0}}
    key = "m agent keeps its lead (fresh, warm <= ORT script, seed)"
    for used, met in ((True, True), (False, False)):
        data = report.summary({"m": dict(base, whole=dict(whole, warm_used=used))}, {"cores": 2, "peak_gflops": 1.0},
                              {})
        assert dict((what, m) for what, _, m in report.targets(data))[key] is met
    slow = dict(whole, warm_used=True, whole_process_s=dict(whole["whole_process_s"], agent=5.0))
    data = report.summary({"m": dict(base, whole=slow)}, {"cores": 2, "peak_gflops": 1.0}, {})
    assert dict((what, m) for what, _, m in report.targets(data))[key] is False


def test_a_timed_out_bench_child_takes_its_own_children_with_it(tmp_path):
    """bench.process_group.run: subprocess.run's timeout kills only the child; a worker's children (the warm
    agent, agent classify) must go too."""
    import sys
    from bench import process_group
    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time\n"
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
              "open(sys.argv[1], 'w').write(str(p.pid))\n"
              "time.sleep(300)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        process_group.run([sys.executable, "-c", script, str(pid_file)], timeout=20)
    grandchild = int(pid_file.read_text())  # written long before the timeout
    state = Path("/proc/%d/stat" % grandchild)
    gone = not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # ended (a zombie at most)
    if not gone:
        os.kill(grandchild, 9)
    assert gone


class _Box:
    """A sandbox as bench.shard and bench.room see it: only its environment."""
    def env(self):
        return dict(os.environ)


class _Host:
    hostspec, user, identity, known_hosts = "127.0.0.1:2222", "lab", "/nonexistent/key", "/nonexistent/known_hosts"


@pytest.mark.parametrize("module, start", [
    ("shard", lambda bench, tmp: bench.sharded_run(_Box(), 2, "m", str(tmp), str(tmp))),
    ("one_photo", lambda bench, tmp: bench._mxlab(str(REPO), _Host(), ["run", "x.jpg"], {})),
    ("room", lambda bench, tmp: bench._timed(_Box(), ["status", "--all"], timeout=60)),
], ids=["shard", "one_photo", "room"])
def test_the_benches_start_mxlab_in_a_process_group_of_its_own(module, start, tmp_path, monkeypatch):
    """`mxlab run/prepare` start ssh and agent children: a timed-out bench command must take them along
    (bench.process_group.run, as the workers do), never a bare subprocess.run."""
    from bench import process_group
    started = []

    def recorded(argv, timeout=None, **kwargs):
        started.append((argv, timeout))
        return subprocess.CompletedProcess(argv, 3, "", "mxlab: refused")

    def bare(*args, **kwargs):
        raise AssertionError("a bare subprocess.run: its timeout leaves the child's children running")
    monkeypatch.setattr(process_group, "run", recorded)
    monkeypatch.setattr(subprocess, "run", bare)
    with pytest.raises(RuntimeError, match="refused"):
        start(importlib.import_module("bench." + module), tmp_path)
    ((argv, timeout),) = started
    assert argv[1:3] == ["-m", "mxlab"] and timeout


def test_pad_folded_into_convolution_gives_the_same_output():
    """agent.quantize.fold_pad_into_conv: the uneven 'SAME' pad becomes an even pad and a
    bigger kernel with zero taps; the numbers must not change."""
    import mxnet as mx
    from agent.quantize import fold_pad_into_conv
    data = mx.sym.Variable("data")
    padded = mx.sym.Pad(data, mode="constant", constant_value=0, pad_width=(0, 0, 0, 0, 1, 2, 1, 2))
    net = mx.sym.Convolution(padded, num_filter=4, num_group=4, kernel=(5, 5), stride=(2, 2), no_bias=True,
                             name="dw")
    rng = np.random.RandomState(0)
    args = {"dw_weight": mx.nd.array(rng.randn(4, 1, 5, 5).astype(np.float32))}
    x = rng.randn(2, 4, 14, 14).astype(np.float32)
    folded, folded_args = fold_pad_into_conv(net, args)

    def run(sym, params):
        exe = sym.simple_bind(mx.cpu(), grad_req="null", data=x.shape)
        exe.copy_params_from(params)
        exe.arg_dict["data"][:] = x
        return exe.forward(is_train=False)[0].asnumpy()

    reachable = [n for n in folded.get_internals().list_outputs() if "pad" in n.lower()]
    assert reachable == []
    assert folded_args["dw_weight"].shape == (4, 1, 6, 6)
    np.testing.assert_allclose(run(folded, folded_args), run(net, args), rtol=1e-5, atol=1e-5)


def test_one_photo_measures_a_fresh_and_a_warm_mxlab_run(tmp_path, sample_photos):
    from bench import one_photo
    figures = one_photo.measure(str(REPO), str(tmp_path), str(sample_photos / "coffee.jpg"), runs=1)
    assert "note" not in figures, figures
    assert figures["fresh"] > 0 and figures["warm"] > 0 and figures["runs"] == 1
    assert figures["warm_used"] is True  # the prepared host's warm agent ran every timed warm run
    from bench import report
    rows = dict((what, met) for what, _, met in report.targets({"peak_gflops": 1.0, "models": {},
                                                                "one_photo_run_s": figures}))
    assert "one-photo mxlab run on a prepared host <= 1 s" in rows


def test_round_trips_time_a_prepared_host_behind_the_latency_relay(tmp_path, sample_photos):
    """The far-network figure, small: RTT 0 and 50 ms, one timed run each (no time asserted)."""
    from bench import report, round_trips
    figures = round_trips.measure(str(REPO), str(tmp_path), str(sample_photos / "coffee.jpg"), rtts=(0, 50), runs=1)
    assert "goal" in figures, figures
    assert set(figures["rtt_ms"]) == {"0", "50"}
    for row in figures["rtt_ms"].values():
        assert row["wall_s"] > 0 and row["round_trips"] > 1 and row["connections"] == 1 and row["warm_used"]
    assert figures["rtt_ms"]["0"]["waits"] is None and figures["rtt_ms"]["50"]["waits"] is not None
    assert figures["goal"]["wall_s"] == figures["rtt_ms"]["50"]["wall_s"]
    kept = figures["kept"]  # --keep-connection at the goal's RTT: no connection of its own, fewer round trips
    assert kept["rtt_ms"] == 50 and kept["wall_s"] > 0 and kept["connections"] == 0
    assert 0 < kept["round_trips"] < figures["rtt_ms"]["50"]["round_trips"], figures
    assert figures["goal"]["kept_wall_s"] == kept["wall_s"]
    printed = "\n".join(round_trips.lines(figures))
    assert "50 kept" in printed and "goal with --keep-connection: " in printed
    assert "goal: one photo <= 1.0 s at 50 ms RTT: " + ("PASS" if figures["goal"]["met"] else "MISS") in printed
    rows = dict((what, met) for what, _, met in report.targets({"peak_gflops": 1.0, "models": {},
                                                                "one_photo_rtt": figures}))
    assert rows["one-photo mxlab run at 50 ms RTT <= 1 s"] is figures["goal"]["met"]
    assert rows["  the same with --keep-connection"] is figures["goal"]["met_kept"]


@pytest.mark.timeout(1800)
def test_room_times_prepare_and_run_all_over_a_sandbox_behind_the_relay(tmp_path, sample_photos):
    """A room at once, small: 2 attendees at 50 ms RTT, the CLI's default --parallel (no time asserted)."""
    from bench import report, room
    from mxlab.runs import DEFAULT_PARALLEL
    figures = room.measure(attendees=2, photo=str(sample_photos / "coffee.jpg"), work=str(tmp_path))
    assert "note" not in figures, figures
    assert figures["attendees"] == 2 and figures["rtt_ms"] == 50 and figures["first_prepare_s"] > 0
    assert set(figures["by_parallel"]) == {str(DEFAULT_PARALLEL)}
    row = figures["by_parallel"][str(DEFAULT_PARALLEL)]
    assert row["prepare"]["hosts"] == 2 and row["run"]["hosts"] == 2
    assert 0 < row["prepare"]["slowest_host_s"] and 0 < row["run"]["slowest_host_s"] <= row["run"]["last_host_done_s"]
    assert row["run"]["first_host_done_s"] <= row["run"]["last_host_done_s"] <= row["run"]["wall_s"]
    printed = "\n".join(room.lines(figures))
    assert "smaller room" in printed
    assert "room run --all of one photo <= 3 s (2 hosts at 50 ms, not the target's 30 at 50): " + (
        "PASS" if row["run"]["wall_s"] <= 3 else "MISS") in printed
    rows = dict((what, met) for what, _, met in report.targets({"peak_gflops": 1.0, "models": {}, "room": figures}))
    assert rows["room prepare --all again <= 20 s (2 hosts at 50 ms, not the target's 30 at 50)"] is (
        row["prepare"]["wall_s"] <= 20)


def test_room_keeps_why_each_host_of_a_failed_prepare_was_not_ready():
    """A 30-host prepare --all with 2 hosts NOT READY, printed by prepare's own table and report: what the room
    benchmark keeps of it names both hosts and their whole errors (a tail of 800 characters had lost them)."""
    import io

    from rich.console import Console

    from bench import room
    from mxlab.workshop import prepare
    failing = {4: "ensuring the environment failed: pip install exited 1: ", 17: "host not ready in 600 s: "}
    errors = dict((i, why + "; ".join(["ERROR: could not build wheel %d" % i] * 12)) for i, why in failing.items())
    hosts = [prepare.HostReadiness("attendee-%02d" % i, "127.0.0.%d" % i, ready=i not in errors, seconds=40.0,
                                   error=errors.get(i)) for i in range(1, 31)]
    out, err = io.StringIO(), io.StringIO()
    out_console, err_console = Console(file=out, width=120), Console(file=err, width=120)
    out_console.print(prepare.readiness_table(hosts, ["efficientnet-lite0"]))
    assert prepare.report(hosts, "prepare.json", out_console, err_console) != 0
    why = room.why_failed(out.getvalue(), err.getvalue())
    assert "mxlab: 2 of 30 host(s) NOT READY: attendee-04, attendee-17" in why
    for i, host in ((4, hosts[3]), (17, hosts[16])):
        assert "mxlab: attendee-%02d not ready: %s" % (i, host.error) in why
    assert why.splitlines()[-1].startswith("mxlab: fix what is named")
    printed = "\n".join(room.lines({"attendees": 30, "rtt_ms": 50, "note": "not measured: mxlab prepare exited 1:\n"
                                    + why}))
    assert "  mxlab: attendee-17 not ready: " + hosts[16].error in printed
