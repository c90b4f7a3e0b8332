"""Safetensors files, one tensor at a time: a streaming writer and a (sharded) lazy reader.

The writer lays out the header from the tensors' shapes and dtypes, then writes each
tensor as it is produced, so saving never holds a second copy of the model. The reader
checks each header as the safetensors library would (`read_header`: every defect is a
ValueError naming the file and the tensor), then opens the files with
`safetensors.safe_open` and reads a tensor only when asked.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open

from hybrid_seq.io.json_file import read_json

_CODES = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(ml_dtypes.bfloat16): "BF16",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}
_DTYPES = {code: dtype for dtype, code in _CODES.items()}
INDEX = "model.safetensors.index.json"


def write_safetensors(
    file: Path,
    entries: Iterable[tuple[str, tuple[int, ...], Any]],
    produce: Callable[[str], np.ndarray],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write tensors `(name, shape, dtype)` to `file`, calling `produce(name)` for each in turn."""
    entries = list(entries)
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, shape, dtype in entries:
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[name] = {"dtype": _CODES[np.dtype(dtype)], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(file, "wb") as out:
        out.write(len(encoded).to_bytes(8, "little"))
        out.write(encoded)
        for name, shape, dtype in entries:
            value = np.ascontiguousarray(produce(name))
            if value.shape != tuple(shape) or value.dtype != np.dtype(dtype):
                raise ValueError(f"{file}: tensor {name} is {value.dtype}{list(value.shape)}, "
                                 f"announced as {np.dtype(dtype)}{list(shape)}")
            out.write(value.tobytes())


#: The largest header the safetensors library accepts; a longer "length" means the file is not safetensors at all.
_MAX_HEADER = 100_000_000


def starts_like_safetensors(start: bytes) -> bool:
    """Whether a file's first 9 bytes read as a safetensors header length followed by a JSON object."""
    return len(start) >= 9 and int.from_bytes(start[:8], "little") <= _MAX_HEADER and start[8:9] == b"{"


@dataclasses.dataclass(frozen=True)
class Header:
    """The validated header of one safetensors file: each tensor's dtype and shape, and the string metadata."""

    dtypes: dict[str, np.dtype]
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str]


def read_header(file: Path) -> Header:
    """The header of `file`, checked as the safetensors library checks it, so reading a tensor cannot fail later.

    Every problem is a ValueError naming the file and, where there is one, the tensor:
    a file too short or not safetensors at all, a truncated header or data, a header that
    is not a JSON object, an entry without dtype/shape/data_offsets or with an unknown
    dtype, offsets that do not match shape x itemsize, leave gaps, overlap, or stop short
    of the end of the file.
    """
    size = file.stat().st_size
    with open(file, "rb") as raw:
        prefix = raw.read(8)
        if len(prefix) < 8:
            raise _unreadable(file, f"it has {size} bytes, fewer than the 8-byte header length (truncated, or not "
                                    f"safetensors)")
        length = int.from_bytes(prefix, "little")
        if length > _MAX_HEADER:
            raise _unreadable(file, f"it is not a safetensors file (its first 8 bytes {prefix!r} are not a plausible "
                                    f"header length)")
        encoded = raw.read(length)
    if len(encoded) < length:
        raise _unreadable(file, f"it is truncated: the header says {length} bytes, the file has {size - 8} after "
                                f"the 8-byte length")
    try:
        entries = json.loads(encoded.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise _unreadable(file, f"its header is not valid UTF-8 JSON ({error})") from None
    if not isinstance(entries, dict):
        raise _unreadable(file, f"its header is a JSON {type(entries).__name__}, not an object")
    metadata = entries.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _unreadable(file, f"its __metadata__ is not an object of strings: {metadata!r}")
    header = Header({}, {}, metadata)
    spans = []
    data_size = size - 8 - length
    for name, entry in entries.items():
        dtype, shape, (begin, end) = _entry(file, name, entry)
        if end > data_size:
            raise ValueError(f"{file}: tensor {name}: the file is truncated (its data ends at byte {8 + length + end}, "
                             f"past the end of the file at {size})")
        header.dtypes[name], header.shapes[name] = dtype, shape
        spans.append((begin, end, name))
    covered = 0
    for begin, end, name in sorted(spans):
        if begin != covered:
            raise ValueError(f"{file}: tensor {name}: its data starts at offset {begin}, but the previous tensor's "
                             f"ends at {covered} (a gap or an overlap)")
        covered = end
    if covered != data_size:
        raise _unreadable(file, f"the header describes {covered} bytes of tensor data, the file has {data_size}")
    return header


def _entry(file: Path, name: str, entry: Any) -> tuple[np.dtype, tuple[int, ...], tuple[int, int]]:
    """A header entry's dtype, shape and data offsets, checked against each other."""
    where = f"{file}: tensor {name}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: its header entry is a JSON {type(entry).__name__}, not an object")
    missing = [key for key in ("dtype", "shape", "data_offsets") if key not in entry]
    if missing:
        raise ValueError(f"{where}: its header entry has no {', '.join(repr(k) for k in missing)}")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(code, str) or code not in _DTYPES:
        raise ValueError(f"{where} has unsupported dtype {code!r} (supported: {', '.join(_DTYPES)})")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise ValueError(f"{where}: its shape {shape!r} is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(n) for n in offsets) or (
        offsets[1] < offsets[0]
    ):
        raise ValueError(f"{where}: its data_offsets {offsets!r} are not [begin, end] with 0 <= begin <= end")
    dtype = _DTYPES[code]
    needed = math.prod(shape) * dtype.itemsize
    if offsets[1] - offsets[0] != needed:
        raise ValueError(f"{where}: its data_offsets {offsets} span {offsets[1] - offsets[0]} bytes, but {code} "
                         f"{shape} needs {needed}")
    return dtype, tuple(shape), (offsets[0], offsets[1])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unreadable(file: Path, reason: str) -> ValueError:
    return ValueError(f"{file}: not a readable safetensors file: {reason}")


class SafetensorsReader:
    """The tensors of one safetensors file, or of a sharded set listed by `model.safetensors.index.json`."""

    def __init__(self, files: list[Path], label: str):
        self.label = label
        self._file_of: dict[str, Path] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, np.dtype] = {}
        #: The files' `__metadata__`, merged.
        self.metadata: dict[str, str] = {}
        for file in files:
            header = read_header(file)
            for name in header.shapes:
                if name in self._file_of:
                    raise ValueError(f"{file}: tensor {name} is also in {self._file_of[name]}")
                self._file_of[name] = file
            self.shapes.update(header.shapes)
            self.dtypes.update(header.dtypes)
            self.metadata.update(header.metadata)

    @classmethod
    def from_directory(cls, directory: Path, single: str) -> SafetensorsReader:
        """`directory/single`, or the shards named in `directory/model.safetensors.index.json`."""
        index = directory / INDEX
        if index.exists():
            files = sorted({directory / shard for shard in _weight_map(index).values()})
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise ValueError(f"{index}: lists shards that do not exist: {', '.join(missing)}")
            return cls(files, str(directory))
        if not (directory / single).exists():
            raise ValueError(f"{directory}: has neither {single} nor {INDEX}")
        return cls([directory / single], str(directory / single))

    def __contains__(self, name: str) -> bool:
        return name in self._file_of

    def file_of(self, name: str) -> Path:
        return self._file_of[name]

    def __getitem__(self, name: str) -> np.ndarray:
        """Tensor `name`, read from its file now."""
        file = self._file_of[name]
        try:
            with safe_open(file, framework="numpy") as handle:
                return handle.get_tensor(name)
        except SafetensorError as error:
            raise ValueError(f"{file}: tensor {name} cannot be read: {error}") from None


def _weight_map(index: Path) -> dict[str, str]:
    """The `weight_map` of a sharded checkpoint's index (tensor name -> shard file name), checked."""
    data = read_json(index)
    if "weight_map" not in data:
        raise ValueError(f"{index}: has no 'weight_map' (the tensor -> shard file table)")
    weight_map = data["weight_map"]
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index}: 'weight_map' is not a non-empty object: {weight_map!r}")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or Path(shard).name != shard:
            raise ValueError(f"{index}: weight_map: tensor {name}: {shard!r} is not a shard file name")
    return weight_map
