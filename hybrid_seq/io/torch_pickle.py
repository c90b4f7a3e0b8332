"""Read a `torch.save`d state dict without torch: the zip archive and a restricted unpickler.

`torch.save` writes a zip holding `<name>/data.pkl` (the pickled dict, tensors as
`torch._utils._rebuild_tensor_v2` calls on persistent storage ids) and one uncompressed
member `<name>/data/<key>` per storage. The unpickler here accepts only those few globals
(anything else is refused, so no code runs), and each tensor becomes a read-only numpy
memory map of its bytes: nothing is read until a tensor is used. bfloat16 maps to
`ml_dtypes.bfloat16`.
"""

from __future__ import annotations

import collections
import dataclasses
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


@dataclasses.dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class _Storage:
    member: str
    dtype: np.dtype
    numel: int


@dataclasses.dataclass(frozen=True)
class TensorRef:
    """A tensor stored in the archive, not yet read: `storage[offset:]` viewed with `shape` and `stride`."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return self.storage.dtype


def _rebuild_tensor(storage: _Storage, offset: int, shape: tuple, stride: tuple, *_: Any) -> TensorRef:
    return TensorRef(storage, int(offset), tuple(shape), tuple(stride))


def _rebuild_parameter(data: TensorRef, *_: Any) -> TensorRef:
    return data


class _Unpickler(pickle.Unpickler):
    """Unpickles a state dict's structure; refuses every global but tensors, storages and OrderedDict."""

    def __init__(self, file: Any, prefix: str, source: str):
        super().__init__(file)
        self._prefix = prefix
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
        raise pickle.UnpicklingError(
            f"{self._source}: refusing to unpickle {module}.{name} (only plain tensor state dicts are read)"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self._source}: unsupported persistent id {pid!r}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType):
            raise pickle.UnpicklingError(f"{self._source}: unsupported storage type {kind!r}")
        return _Storage(f"{self._prefix}/data/{key}", kind.dtype, int(numel))


class TorchStateDict:
    """The tensors of a `torch.save`d flat dict, each read on demand as a numpy memory map."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with zipfile.ZipFile(self.path) as archive:
                pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
                if len(pickles) != 1:
                    raise ValueError(f"{self.path}: expected one */data.pkl in the archive, found {pickles}")
                prefix = pickles[0][: -len("/data.pkl")]
                with archive.open(pickles[0]) as file:
                    tree = _Unpickler(file, prefix, str(self.path)).load()
                self._members = {info.filename: info for info in archive.infolist()}
        except zipfile.BadZipFile as error:
            raise ValueError(
                f"{self.path}: not a readable torch.save archive (truncated or corrupt, or the legacy "
                f"non-zip format): {error}"
            ) from None
        if not isinstance(tree, dict) or not all(isinstance(v, TensorRef) for v in tree.values()):
            raise ValueError(f"{self.path}: expected a flat dict of tensors")
        self.tensors: dict[str, TensorRef] = dict(tree)

    def __contains__(self, key: str) -> bool:
        return key in self.tensors

    def __getitem__(self, key: str) -> np.ndarray:
        """Tensor `key` as a read-only numpy view on the file (no bytes read yet)."""
        ref = self.tensors[key]
        info = self._members.get(ref.storage.member)
        if info is None:
            raise ValueError(f"{self.path}: tensor {key}: storage {ref.storage.member} is missing from the archive")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{self.path}: tensor {key}: storage {ref.storage.member} is compressed")
        itemsize = ref.dtype.itemsize
        if info.file_size != ref.storage.numel * itemsize:
            raise ValueError(f"{self.path}: tensor {key}: storage size {info.file_size} bytes does not match its "
                             f"{ref.storage.numel} elements")
        with open(self.path, "rb") as file:
            file.seek(info.header_offset)
            header = file.read(_LOCAL_HEADER.size)
            file_size = file.seek(0, 2)
        if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise ValueError(f"{self.path}: tensor {key}: corrupt zip entry {ref.storage.member}")
        fields = _LOCAL_HEADER.unpack(header)
        start = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
        if start + info.file_size > file_size:
            raise ValueError(f"{self.path}: tensor {key}: the file is truncated (its data ends past the end of file)")
        if ref.storage.numel == 0:
            return np.zeros(ref.shape, ref.dtype)
        storage = np.memmap(self.path, dtype=ref.dtype, mode="r", offset=start, shape=(ref.storage.numel,))
        needed = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride)) + 1
        if needed > ref.storage.numel and all(ref.shape):
            raise ValueError(f"{self.path}: tensor {key}: view reaches past its storage")
        return np.lib.stride_tricks.as_strided(
            storage[ref.offset :],
            shape=ref.shape,
            strides=tuple(s * itemsize for s in ref.stride),
            writeable=False,
        )
