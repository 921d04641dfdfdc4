"""agent.int8_cache: `classify --int8` calibrates once, caches the graph and its measurements beside the
model, and runs INT8 only where it agrees with FP32 and is faster -- on the real EfficientNet-Lite0 of the
local zoo, with the photos served over real HTTP so that every read of an input is counted."""
import collections
import os

import pytest

from agent import int8_cache
from tests.checkpoints import classify_events, json_lines

INT8 = ("--model", "efficientnet-lite0", "--int8")


def gets(server):
    return collections.Counter(path for method, path, _, status in server.requests if method == "GET")


@pytest.mark.timeout(1800)  # two classify runs of up to 900 s each
def test_int8_is_declined_or_kept_by_its_measurements_and_calibrated_only_once(
        local_zoo, sample_photos, serve_zoo, tmp_path):
    server = serve_zoo(sample_photos)
    names = sorted(os.listdir(str(sample_photos)))
    urls = [server.url + name for name in names]
    cache = str(tmp_path / "cache")

    # First run, a bar no INT8 graph can pass: calibrated on the inputs, then declined, FP32 answers.
    first, events = classify_events(str(local_zoo), cache, *INT8, *urls, timeout=900,
                                    env={"MXLAB_INT8_MIN_AGREEMENT": "1.01", "MXLAB_INT8_MIN_SPEEDUP": "0"})
    assert first.returncode == 0, first.stderr
    [warning] = [e for e in events if e["event"] == "warning"]
    assert "--int8 declined (agreement below 101%: top-1 agreement with FP32" in warning["message"]
    [engine] = [e for e in events if e["event"] == "engine"]
    assert engine["engine"] == "mxnet" and "(cached)" not in engine["reason"]
    assert any("calibration" in e["message"] for e in events if e["event"] == "log")  # MXNet's calibration log
    assert set(gets(server).values()) == {2}  # each input: once to calibrate, once to classify
    assert len(json_lines(first.stdout)) == len(names)
    model_dir = os.path.join(cache, "efficientnet-lite0")
    assert {"efficientnet-lite0-0000.int8.json", "efficientnet-lite0-0000.int8.params",
            "efficientnet-lite0-0000.int8.measured.json"} <= set(os.listdir(model_dir))

    # Second run, a bar it passes: the cached INT8 graph, no calibration, every input read once.
    server.requests[:] = []
    second, events = classify_events(str(local_zoo), cache, *INT8, *urls, timeout=900,
                                     env={"MXLAB_INT8_MIN_AGREEMENT": "0", "MXLAB_INT8_MIN_SPEEDUP": "0"})
    assert second.returncode == 0, second.stderr
    [engine] = [e for e in events if e["event"] == "engine"]
    assert engine["engine"] == "mxnet-int8" and engine["reason"].startswith("INT8 kept: ")
    assert engine["reason"].endswith("(cached)")
    assert not [e for e in events if e["event"] == "warning"]
    assert not any("calibration" in e["message"] for e in events if e["event"] == "log")
    assert set(gets(server).values()) == {1} and len(gets(server)) == len(names)
    records = json_lines(second.stdout)
    assert [os.path.basename(r["image"]) for r in records] == names and all("top" in r for r in records)


@pytest.mark.parametrize("measured, environ, kept, says", [
    ({"agreement": 1.0, "speedup": 2.5}, {}, True, "INT8 kept"),
    ({"agreement": 0.75, "speedup": 2.5}, {}, False, "agreement below 95%"),
    ({"agreement": 1.0, "speedup": 0.9}, {}, False, "not 1x faster"),
    ({"agreement": 0.9, "speedup": 0.9}, {"MXLAB_INT8_MIN_AGREEMENT": "0.8", "MXLAB_INT8_MIN_SPEEDUP": "0.5"},
     True, "INT8 kept"),
])
def test_verdict_applies_the_thresholds(measured, environ, kept, says):
    measured = dict(measured, calibration_inputs=16, probe_inputs=8, int8_ms=10.0, fp32_ms=25.0)
    use, reason = int8_cache.verdict(measured, environ)
    assert use is kept and says in reason
