"""agent.engine_onnx: `classify --engine onnxruntime|auto` on real checkpoints, real mx.onnx exports
and a real ONNX Runtime (from requirements-dev.txt), and the agent without onnxruntime installed."""
import json
import os

import numpy as np
import pytest

from agent import contract
from tests.checkpoints import BLUE, GREEN, RED, classify_events, colour_image, json_lines

ort = pytest.importorskip("onnxruntime")  # requirements-dev.txt installs it; the agent itself does not need it

def engine_events(events):
    return [evt for evt in events if evt["event"] == "engine"]


def top1(records):
    return {os.path.basename(r["image"]): r["top"][0]["label"] for r in records}


def test_onnxruntime_engine_exports_once_verifies_and_answers_as_mxnet(tiny_zoo, colour_photos, tmp_path):
    cache = str(tmp_path / "cache")
    reference, _ = classify_events(tiny_zoo, cache, "--model", "tiny-prob", "--engine", "mxnet", colour_photos)
    assert reference.returncode == 0, reference.stderr
    first, events = classify_events(tiny_zoo, cache, "--model", "tiny-prob", "--engine", "onnxruntime", colour_photos)
    assert first.returncode == 0, first.stderr
    [chosen] = engine_events(events)
    assert chosen["engine"] == "onnxruntime" and "verified against MXNet" in chosen["reason"]
    assert top1(json_lines(first.stdout)) == top1(json_lines(reference.stdout)) == {
        "red.png": "red", "green.png": "green", "blue.png": "blue"}
    for a, b in zip(json_lines(first.stdout), json_lines(reference.stdout)):
        assert [t["index"] for t in a["top"]] == [t["index"] for t in b["top"]]
        assert np.allclose([t["prob"] for t in a["top"]], [t["prob"] for t in b["top"]], atol=1e-5)
    model_dir = os.path.join(cache, "tiny-prob")
    [export] = [n for n in os.listdir(model_dir) if n.endswith(".onnx") and ".ort-" not in n]
    with open(os.path.join(model_dir, export + ".json")) as handle:
        record = json.load(handle)
    assert record["verified"]["top1"] == 1.0 and record["verified"]["max_prob_diff"] < 1e-3
    stamp = os.stat(os.path.join(model_dir, export)).st_mtime_ns

    # The cached, verified export runs without MXNet: here it cannot even be imported.
    second, events = classify_events(tiny_zoo, cache, "--model", "tiny-prob", "--engine", "onnxruntime", colour_photos,
                              env=blocking(tmp_path, "mxnet"))
    assert second.returncode == 0, second.stderr
    [chosen] = engine_events(events)
    assert chosen["engine"] == "onnxruntime" and "cached export" in chosen["reason"]
    [timing] = [evt for evt in events if evt["event"] == "timing"]
    assert timing["engines"] == {"tiny-prob": "onnxruntime"}
    assert list(timing["stages"]) == ["python", "imports", "models", "first_batch_decoded", "first_result"]
    assert timing["first_result_s"] == timing["stages"]["first_result"] > 0
    assert os.stat(os.path.join(model_dir, export)).st_mtime_ns == stamp  # not exported again
    # ONNX Runtime's optimized graph is saved for this ORT version and CPU: later sessions skip optimizing.
    [optimized] = [n for n in os.listdir(model_dir) if ".ort-" in n]
    assert optimized.endswith(".onnx") and not [n for n in os.listdir(model_dir) if n.endswith(".unverified")]
    assert top1(json_lines(second.stdout)) == top1(json_lines(first.stdout))

    # A damaged optimized graph is made again, not an error.
    with open(os.path.join(model_dir, optimized), "wb") as handle:
        handle.write(b"not an onnx graph")
    third, events = classify_events(tiny_zoo, cache, "--model", "tiny-prob", "--engine", "onnxruntime", colour_photos)
    assert third.returncode == 0, third.stderr
    assert top1(json_lines(third.stdout)) == top1(json_lines(first.stdout))
    assert os.path.getsize(os.path.join(model_dir, optimized)) > 100


def test_auto_keeps_one_engine_and_says_why_then_remembers_it(tiny_zoo, colour_photos, tmp_path):
    cache = str(tmp_path / "cache")
    first, events = classify_events(tiny_zoo, cache, "--model", "tiny-softmax", "--engine", "auto", colour_photos)
    assert first.returncode == 0, first.stderr
    [chosen] = engine_events(events)
    assert chosen["engine"] in ("mxnet", "onnxruntime")
    assert chosen["reason"].startswith("auto: forward of 3 inputs") and "ms on onnxruntime" in chosen["reason"]
    assert top1(json_lines(first.stdout)) == {"red.png": "red", "green.png": "green", "blue.png": "blue"}
    # Remembered: ONNX Runtime either was the faster, or MXNet's faster forwards cannot win back its
    # start-up over 3 inputs of a tiny model; so the second run needs no MXNet at all.
    second, events = classify_events(tiny_zoo, cache, "--model", "tiny-softmax", "--engine", "auto", colour_photos,
                              env=blocking(tmp_path, "mxnet"))
    assert second.returncode == 0, second.stderr
    [again] = engine_events(events)
    assert again["engine"] == "onnxruntime"
    assert again["reason"].endswith("(remembered)") or "less than MXNet's start-up" in again["reason"]
    assert top1(json_lines(second.stdout)) == top1(json_lines(first.stdout))

    # Where the remembered measurements say MXNet's forwards win back its start-up, auto binds MXNet.
    [record_path] = [os.path.join(cache, "tiny-softmax", n) for n in os.listdir(os.path.join(cache, "tiny-softmax"))
                     if n.endswith(".onnx.json")]
    with open(record_path) as handle:
        record = json.load(handle)
    [setting] = list(record["auto"])
    record["auto"][setting] = dict(REMEMBERED_MXNET, inputs=3, ort_s=100.0, mxnet_s=0.001, mxnet_setup_s=0.5)
    with open(record_path, "w") as handle:
        json.dump(record, handle)
    third, events = classify_events(tiny_zoo, cache, "--model", "tiny-softmax", "--engine", "auto", colour_photos)
    assert third.returncode == 0, third.stderr
    [again] = engine_events(events)
    assert again["engine"] == "mxnet" and "win back MXNet's 0.50 s start-up" in again["reason"]
    assert top1(json_lines(third.stdout)) == top1(json_lines(first.stdout))


REMEMBERED_MXNET = {"engine": "mxnet", "reason": "auto: forward of 8 inputs", "inputs": 8, "ort_s": 0.060,
                    "mxnet_s": 0.050, "mxnet_setup_s": 2.0}


@pytest.mark.parametrize("remembered, inputs, engine, says", [
    (REMEMBERED_MXNET, 8, "onnxruntime", "less than MXNet's start-up (2.00 s"),  # 1 batch: 0.01 s lost < 2 s
    (REMEMBERED_MXNET, 8 * 199, "onnxruntime", "1.99 s longer"),
    (REMEMBERED_MXNET, 8 * 201, "mxnet", "win back MXNet's 2.00 s start-up"),  # 2.01 s lost > 2 s
    (dict(REMEMBERED_MXNET, engine="onnxruntime", reason="auto: faster"), 10000, "onnxruntime", "(remembered)"),
])
def test_auto_weighs_mxnet_start_up_against_its_faster_forwards(remembered, inputs, engine, says):
    from agent.engine_onnx import auto_for_run
    chosen, reason = auto_for_run(remembered, inputs)
    assert chosen == engine and says in reason


def test_an_export_that_disagrees_with_mxnet_is_refused_and_mxnet_answers(tiny_zoo, tmp_path, monkeypatch):
    """The ONNX candidate here is another model's export (blue and red swapped): verification on the
    first batch must catch it, keep MXNet's answers, warn, and not keep the file."""
    import mxnet as mx
    from agent import engine_onnx, reporter
    from agent.pipeline import Engine
    from agent.checkpoint import split_params
    from agent.predict import probability_head
    from tests.checkpoints import SIZE

    def load(name):
        prefix = os.path.join(tiny_zoo, "tiny", name)
        symbol, _ = probability_head(mx.sym.load(prefix + "-symbol.json"))
        args, aux = split_params(mx.nd.load(prefix + "-0000.params"), symbol)
        return symbol, args, aux, {"symbol": prefix + "-symbol.json", "params": prefix + "-0000.params"}

    symbol, args, aux, files = load("tiny-logits")
    swapped = dict(args)
    swapped["fc_weight"] = mx.nd.array(args["fc_weight"].asnumpy()[::-1])  # red <-> blue
    export = engine_onnx.Export(files, SIZE)
    pending = export.write(symbol, swapped, "data", SIZE)
    emitted = []
    monkeypatch.setattr(reporter, "emit", lambda kind, **fields: emitted.append(dict(fields, event=kind)))
    chooser = engine_onnx.ChoosingEngine(
        "tiny-logits", "onnxruntime", lambda: Engine(symbol, args, aux, 3, SIZE),
        lambda path: engine_onnx.OrtEngine(path, 3, 1), export, pending, 3, 1)
    batch = np.stack([np.transpose(colour_image(rgb, SIZE, SIZE)[:, :, ::-1], (2, 0, 1)) / 255.0
                      for rgb in (RED, GREEN, BLUE)]).astype(np.float32)
    probs = chooser.forward(batch)
    assert list(probs.argmax(axis=1)) == [0, 1, 2]  # MXNet's answer: red, green, blue
    assert chooser.name == "mxnet"
    assert not os.path.exists(pending) and not os.path.exists(export.path)
    kinds = [evt["event"] for evt in emitted]
    assert kinds == ["warning", "engine"]
    assert "disagrees with MXNet" in emitted[0]["message"] and "top-1 agreement 33%" in emitted[0]["message"]
    assert list(chooser.forward(batch).argmax(axis=1)) == [0, 1, 2]  # and stays on MXNet


def test_real_efficientnet_lite0_on_onnxruntime_agrees_with_mxnet(local_zoo, sample_photos, tmp_path):
    cache = str(tmp_path / "cache")
    reference, _ = classify_events(str(local_zoo), cache, "--model", "efficientnet-lite0", str(sample_photos))
    assert reference.returncode == 0, reference.stderr
    onnx_run, events = classify_events(str(local_zoo), cache, "--model", "efficientnet-lite0",
                                       "--engine", "onnxruntime", str(sample_photos))
    assert onnx_run.returncode == 0, onnx_run.stderr
    assert [e["engine"] for e in engine_events(events)] == ["onnxruntime"]
    assert top1(json_lines(onnx_run.stdout)) == top1(json_lines(reference.stdout))
    assert top1(reference.stdout and json_lines(reference.stdout))["coffee.jpg"] == "espresso"


def blocking(tmp_path, *modules):
    """PYTHONPATH for an agent process in which importing ``modules`` fails."""
    blocker = tmp_path / ("blocker-" + "-".join(modules))
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Missing(object):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in %r:\n"
        "            raise ImportError('No module named %%r' %% name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Missing())\n" % (modules,))
    return {"PYTHONPATH": str(blocker)}


@pytest.fixture
def without_onnxruntime(tmp_path):
    """As on a host where agent/requirements-onnx.txt was never installed."""
    return blocking(tmp_path, "onnxruntime", "onnx")


def test_without_onnxruntime_mxnet_runs_and_onnxruntime_is_a_clear_error(tiny_zoo, colour_photos, tmp_path,
                                                                          without_onnxruntime):
    cache = str(tmp_path / "cache")
    plain, events = classify_events(tiny_zoo, cache, "--model", "tiny-prob", colour_photos, env=without_onnxruntime)
    assert plain.returncode == 0, plain.stderr
    assert top1(json_lines(plain.stdout))["red.png"] == "red"
    asked, events = classify_events(tiny_zoo, cache, "--model", "tiny-prob", "--engine", "onnxruntime", colour_photos,
                             env=without_onnxruntime)
    assert asked.returncode == contract.EXIT_FATAL
    [error] = [evt for evt in events if evt["event"] == "error"]
    assert "requirements-onnx.txt" in error["message"] and "onnxruntime" in error["message"]
    assert asked.stdout == ""
    auto, events = classify_events(tiny_zoo, cache, "--model", "tiny-prob", "--engine", "auto", colour_photos,
                            env=without_onnxruntime)
    assert auto.returncode == 0, auto.stderr
    [chosen] = engine_events(events)
    assert chosen["engine"] == "mxnet" and "requirements-onnx.txt" in chosen["reason"]
    assert top1(json_lines(auto.stdout))["red.png"] == "red"


def test_mxlab_run_engine_onnxruntime_passes_the_engine_to_the_host_agent(sshd_factory, mxlab_cli, local_zoo,
                                                                         sample_photos, tmp_path):
    """mxlab run --engine onnxruntime on a real sshd host whose conda env has onnxruntime: nothing to
    install, the agent runs with --engine onnxruntime and its log says which engine answered."""
    from tests.fixtures_sshd import direct_args
    host = sshd_factory(conda_envs=("mxnet_p36",))
    code, out, err = mxlab_cli("run", "-v", *direct_args(host), "--zoo", local_zoo, "--model",
                               "efficientnet-lite0", "--results", tmp_path, "--engine", "onnxruntime",
                               sample_photos / "coffee.jpg")
    assert code == 0, err
    [log] = list((host.home / ".mxlab-agent" / "runs").glob("*/agent.log"))
    events = [contract.parse(line) for line in log.read_text().splitlines()]
    [chosen] = [evt for evt in events if evt and evt["event"] == "engine"]
    assert chosen["engine"] == "onnxruntime"
    [command] = list((host.home / ".mxlab-agent" / "runs").glob("*/command"))
    assert "--engine onnxruntime" in command.read_text()
    assert "installing the ONNX Runtime engine" not in out + err
    assert "efficientnet-lite0 on onnxruntime (" in err  # with -v the operator sees which engine answered


def test_mxlab_run_installs_the_onnx_engine_only_when_asked_and_auto_survives_a_failed_install(
        sshd_factory, mxlab_cli, local_zoo, sample_photos, tmp_path):
    """A host env without onnxruntime and a pip with no package source (no network either): --engine
    auto warns and the agent runs MXNet; --engine onnxruntime fails that host, naming the step."""
    from tests.fixtures_sshd import direct_args
    host = sshd_factory(conda_envs=("mxnet_p36",))
    [site] = list((host.home / "anaconda3" / "envs" / "mxnet_p36" / "lib").glob("python*/site-packages"))
    (site / "onnxruntime.py").write_text("raise ImportError('onnxruntime is not installed in this env')\n")
    pip_conf = host.home / ".config" / "pip" / "pip.conf"
    pip_conf.parent.mkdir(parents=True, exist_ok=True)
    pip_conf.write_text("[global]\nno-index = true\n")
    common = [*direct_args(host), "--zoo", local_zoo, "--model", "efficientnet-lite0", "--results", tmp_path,
              sample_photos / "coffee.jpg"]
    code, out, err = mxlab_cli("run", "-v", *common)  # mxnet: nothing to install
    assert code == 0, err
    assert "installing the ONNX Runtime engine" not in out + err
    code, out, err = mxlab_cli("run", "-v", "--engine", "auto", *common)
    assert code == 0, err
    said = out + err
    assert "installing the ONNX Runtime engine" in said and "did not install" in said
    assert "onnxruntime is not installed in this env" in said  # why, from the host
    assert "efficientnet-lite0 on mxnet (auto: --engine onnxruntime needs onnxruntime" in said
    code, out, err = mxlab_cli("run", "--engine", "onnxruntime", *common)
    assert code != 0
    assert "the ONNX Runtime engine: installed, but `import onnxruntime, onnx` fails" in out + err
