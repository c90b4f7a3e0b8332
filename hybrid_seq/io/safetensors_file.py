"""Safetensors files, one tensor at a time: a streaming writer and a (sharded) lazy reader.

The writer lays out the header from the tensors' shapes and dtypes, then writes each
tensor as it is produced, so saving never holds a second copy of the model. The reader
opens the files with `safetensors.safe_open` and reads a tensor only when asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open

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


class SafetensorsReader:
    """The tensors of one safetensors file, or of a sharded set listed by `model.safetensors.index.json`."""

    def __init__(self, files: list[Path], label: str):
        self.label = label
        self._file_of: dict[str, Path] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, np.dtype] = {}
        for file in files:
            with open(file, "rb") as raw:
                head = raw.read(8)
                length = int.from_bytes(head, "little") if len(head) == 8 else -1
                header = raw.read(length) if 0 < length < 100_000_000 else b""
            try:
                entries = json.loads(header)
            except ValueError:
                raise ValueError(f"{file}: not a readable safetensors file (truncated or corrupt header)") from None
            size = file.stat().st_size
            for name, entry in entries.items():
                if name == "__metadata__":
                    continue
                if 8 + length + entry["data_offsets"][1] > size:
                    raise ValueError(f"{file}: tensor {name}: the file is truncated (its data ends past end of file)")
                if entry["dtype"] not in _DTYPES:
                    raise ValueError(f"{file}: tensor {name} has unsupported dtype {entry['dtype']}")
                self._file_of[name] = file
                self.shapes[name] = tuple(entry["shape"])
                self.dtypes[name] = _DTYPES[entry["dtype"]]

    @classmethod
    def from_directory(cls, directory: Path, single: str) -> SafetensorsReader:
        """`directory/single`, or the shards named in `directory/model.safetensors.index.json`."""
        if (directory / INDEX).exists():
            weight_map = json.loads((directory / INDEX).read_text())["weight_map"]
            files = sorted({directory / shard for shard in weight_map.values()})
            missing = [str(f) for f in files if not f.exists()]
            if missing:
                raise ValueError(f"{directory / INDEX}: lists shards that do not exist: {', '.join(missing)}")
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
