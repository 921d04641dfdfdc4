"""Read a legacy (pre-1.6, non-zip) ``torch.save`` state dict with numpy and pickle only.

The legacy format is five pickles in a row -- magic number, protocol version, system
info, the object (tensors are persistent-id references to storages), the list of
storage keys -- followed by each storage's raw data, in that key order, prefixed by
its element count as a little-endian int64.  Torch itself is never imported: the
unpickler resolves only the handful of names such a file needs, so a crafted file
cannot run code.
"""
import collections
import os
import pickle
import struct

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class name -> numpy little-endian dtype
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class LegacyCheckpointError(ValueError):
    """The file is not a legacy torch checkpoint this reader understands."""


class _StorageType(object):
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _TensorRef(object):
    """A tensor whose storage bytes are read after the pickles."""

    def __init__(self, storage_key, dtype, offset, shape, stride):
        self.storage_key = storage_key
        self.dtype = dtype
        self.offset = offset
        self.shape = tuple(shape)
        self.stride = tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
    key, dtype = storage
    return _TensorRef(key, dtype, storage_offset, size, stride)


def _rebuild_parameter(tensor, *unused):
    return tensor


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise LegacyCheckpointError(
            "unsupported object %s.%s in checkpoint (expected a plain state dict of tensors)"
            % (module, name))

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] == "storage"):
            raise LegacyCheckpointError("unexpected persistent id %r" % (saved_id,))
        _, storage_type, key, _location, _size, view_metadata = saved_id
        if view_metadata is not None:
            raise LegacyCheckpointError("storage views are not supported (key %s)" % key)
        return key, storage_type.dtype


def _read_storages(f, keys, dtypes, path):
    if not isinstance(keys, list) or set(dtypes) - set(keys):
        raise LegacyCheckpointError("%s: the storage list does not name every tensor's storage" % path)
    end = os.fstat(f.fileno()).st_size
    storages = {}
    for key in keys:
        head = f.read(8)
        if len(head) != 8:
            raise LegacyCheckpointError("%s: truncated before storage %s" % (path, key))
        (count,) = struct.unpack("<q", head)
        dtype = dtypes.get(key)
        if dtype is None:
            raise LegacyCheckpointError("%s: storage %s is not used by any tensor" % (path, key))
        size = count * dtype.itemsize
        # Check against the file size first: a bogus count must not allocate gigabytes.
        if count < 0 or size > end - f.tell():
            raise LegacyCheckpointError("%s: truncated inside storage %s" % (path, key))
        storages[key] = np.frombuffer(f.read(size), dtype=dtype)
    return storages


def _materialise(name, ref, storage, path):
    # Check the view stays inside its storage: as_strided itself would read past the end.
    if ref.offset < 0 or any(n < 0 for n in ref.shape) or any(st < 0 for st in ref.stride) \
            or len(ref.shape) != len(ref.stride):
        raise LegacyCheckpointError("%s: tensor %r has an invalid shape/stride/offset" % (path, name))
    if all(ref.shape):
        last = ref.offset + sum((n - 1) * st for n, st in zip(ref.shape, ref.stride))
        if last >= storage.size:
            raise LegacyCheckpointError("%s: tensor %r reaches past the end of its storage"
                                        % (path, name))
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:],
        shape=ref.shape,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False)
    return np.array(view, copy=True)


def load_state_dict(path):
    """Return an OrderedDict name -> numpy array from a legacy torch checkpoint at ``path``."""
    path = str(path)
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise LegacyCheckpointError(
                "%s: not a legacy torch checkpoint: it is a zip-format torch.save (torch >= 1.6),"
                " which this reader does not support" % path)
        f.seek(0)
        try:
            magic = _Unpickler(f).load()
        except Exception:  # any garbage: not even the first pickle reads
            magic = None
        if magic != LEGACY_MAGIC:
            raise LegacyCheckpointError("%s: not a legacy torch checkpoint (no torch magic number)" % path)
        try:
            protocol = _Unpickler(f).load()
            if protocol != LEGACY_PROTOCOL:
                raise LegacyCheckpointError(
                    "%s: legacy protocol %r, expected %d" % (path, protocol, LEGACY_PROTOCOL))
            sys_info = _Unpickler(f).load()
            if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
                raise LegacyCheckpointError("%s: big-endian checkpoints are not supported" % path)
            obj = _Unpickler(f).load()
            keys = _Unpickler(f).load()
        except LegacyCheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise LegacyCheckpointError("%s: cannot read checkpoint header: %s" % (path, exc))
        if not isinstance(obj, dict):
            raise LegacyCheckpointError("%s: expected a state dict, found %s"
                                        % (path, type(obj).__name__))
        refs = collections.OrderedDict()
        dtypes = {}
        for name, ref in obj.items():
            if not isinstance(ref, _TensorRef):
                raise LegacyCheckpointError("%s: entry %r is not a tensor" % (path, name))
            refs[name] = ref
            dtypes[ref.storage_key] = ref.dtype
        storages = _read_storages(f, keys, dtypes, path)
        if f.read(1):
            raise LegacyCheckpointError("%s: trailing data after the last storage" % path)
    return collections.OrderedDict(
        (name, _materialise(name, ref, storages[ref.storage_key], path)) for name, ref in refs.items())
