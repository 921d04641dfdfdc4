"""scripts/bench runs end to end (--quick, a tiny subset) and writes the JSON the issue asks for.

Speed is never asserted here: the benchmark measures, tests check behaviour.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_the_issue_json_shape(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--models", "inception-bn", "--methods", "seed,agent,int8",
         "--images", "6", "--fanout", "skip", "--no-measure-peak", "--build", str(tmp_path / "build"),
         "--photos", str(tmp_path / "photos"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
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
