"""The EfficientNet-Lite symbol builder against the real weights' structure."""
import re

import pytest

from localzoo.efficientnet_lite import (VARIANTS, block_plan, build_symbol, convert_params,
                                        get_variant, round_filters, same_padding)
from localzoo.torch_legacy import load_state_dict
from localzoo.weights import weights_path


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant_and_state(request):
    variant = get_variant(request.param)
    return variant, load_state_dict(weights_path(request.param))


def test_block_plan_matches_the_weights(variant_and_state):
    """Channels, kernels and block count of the plan are those of the state dict."""
    variant, state = variant_and_state
    blocks = block_plan(variant)
    indices = {int(m.group(1)) for m in (re.match(r"_blocks\.(\d+)\.", k) for k in state) if m}
    assert indices == set(range(len(blocks)))
    for b in blocks:
        t = "_blocks.%d." % b.index
        mid = b.in_channels * b.expand
        assert state[t + "_depthwise_conv.weight"].shape == (mid, 1, b.kernel, b.kernel)
        assert state[t + "_project_conv.weight"].shape == (b.out_channels, mid, 1, 1)
        assert (t + "_expand_conv.weight" in state) == (b.expand != 1)
    assert state["_conv_head.weight"].shape == (1280, blocks[-1].out_channels, 1, 1)


def test_lite_scaling_keeps_stem_head_and_outer_stages():
    lite2 = block_plan(get_variant("efficientnet-lite2"))
    assert lite2[0].in_channels == 32 and lite2[0].out_channels == 16  # width 1.1 leaves 16
    assert [b.out_channels for b in lite2].count(16) == 1  # first stage not repeated more
    assert [b.out_channels for b in lite2].count(352) == 1  # nor the last
    assert round_filters(320, 1.1) == 352 and round_filters(112, 1.1) == 120


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (224, 3, 2, (0, 1, 112)),   # the stem: uneven, extra row at the bottom/right
    (112, 3, 1, (1, 1, 112)),
    (15, 5, 2, (2, 2, 8)),      # lite1 at 240: odd input, even padding
    (65, 5, 2, (2, 2, 33)),     # lite2 at 260
    (130, 3, 2, (0, 1, 65)),
])
def test_same_padding_like_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_symbol_binds_without_label_and_ends_in_prob(variant_and_state):
    variant, _ = variant_and_state
    sym = build_symbol(variant)
    assert sym.list_outputs() == ["prob_output"]
    assert not [a for a in sym.list_arguments() if "label" in a]
    _, out_shapes, _ = sym.infer_shape(data=(2, 3, variant.size, variant.size))
    assert out_shapes == [(2, 1000)]


def test_convert_uses_every_tensor_with_matching_shapes(variant_and_state):
    variant, state = variant_and_state
    arg, aux = convert_params(variant, state)
    floats = [k for k in state if not k.endswith("num_batches_tracked")]
    assert len(arg) + len(aux) == len(floats)
    assert all(a.dtype.name == "float32" for a in list(arg.values()) + list(aux.values()))


def test_convert_refuses_weights_of_another_architecture():
    lite0 = load_state_dict(weights_path("efficientnet-lite0"))
    with pytest.raises(ValueError, match="efficientnet-lite1: state dict has no tensor '_blocks.16"):
        convert_params(get_variant("efficientnet-lite1"), lite0)
    with pytest.raises(ValueError, match="state dict tensors not used by the network: _blocks.16"):
        convert_params(get_variant("efficientnet-lite0"),
                       load_state_dict(weights_path("efficientnet-lite1")))
    bad = dict(lite0)
    bad["_fc.weight"] = bad["_fc.weight"][:10]
    with pytest.raises(ValueError, match="fc_weight has shape \\(10, 1280\\), the network needs \\(1000, 1280\\)"):
        convert_params(get_variant("efficientnet-lite0"), bad)


def test_unknown_model_name_is_named():
    with pytest.raises(ValueError, match="unknown model 'efficientnet-lite9'.*efficientnet-lite0"):
        get_variant("efficientnet-lite9")
