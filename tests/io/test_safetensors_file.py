"""Malformed safetensors files are ValueErrors naming the file and the tensor or field, never another exception."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_seq import io as hio
from hybrid_seq.io.safetensors_file import SafetensorsReader, read_header, write_safetensors
from tests.io.helpers import random_model, small_config

TENSORS = {
    "a": np.arange(3, dtype=np.float32),
    "b": np.arange(4, dtype=np.int32).reshape(2, 2),
    "c": np.ones((1, 2), ml_dtypes.bfloat16),
}


def _valid(file: Path) -> bytes:
    write_safetensors(file, [(k, v.shape, v.dtype) for k, v in TENSORS.items()], TENSORS.__getitem__,
                      metadata={"format": "pt"})
    return file.read_bytes()


def _header(file: Path) -> dict:
    data = _valid(file)
    return json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])


def _write(file: Path, header: dict | bytes, data: bytes = b"\0" * 32) -> Path:
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    file.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)
    return file


def _edit(tmp_path: Path, name: str, **changes) -> Path:
    """The valid file with tensor `name`'s header entry changed (a value of None deletes the key)."""
    header = _header(tmp_path / "valid.safetensors")
    for key, value in changes.items():
        if value is None:
            del header[name][key]
        else:
            header[name][key] = value
    return _write(tmp_path / "bad.safetensors", header)


def _raises(file: Path, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{file}: ") + message):
        SafetensorsReader([file], str(file))


def test_a_valid_file_reads_back(tmp_path: Path) -> None:
    file = tmp_path / "valid.safetensors"
    _valid(file)
    reader = SafetensorsReader([file], str(file))
    assert reader.shapes == {"a": (3,), "b": (2, 2), "c": (1, 2)} and reader.metadata == {"format": "pt"}
    for name, value in TENSORS.items():
        np.testing.assert_array_equal(reader[name], value)


@pytest.mark.parametrize("key", ["dtype", "shape", "data_offsets"])
def test_entry_without_a_field(tmp_path: Path, key: str) -> None:
    _raises(_edit(tmp_path, "b", **{key: None}), rf"tensor b: its header entry has no '{key}'")


@pytest.mark.parametrize("changes,message", [
    ({"dtype": "F8_E4M3"}, r"tensor b has unsupported dtype 'F8_E4M3'"),
    ({"dtype": 7}, r"tensor b has unsupported dtype 7"),
    ({"shape": [2, -2]}, r"tensor b: its shape \[2, -2\] is not a list of non-negative integers"),
    ({"shape": "2x2"}, r"tensor b: its shape '2x2' is not a list"),
    ({"data_offsets": [12]}, r"tensor b: its data_offsets \[12\] are not \[begin, end\]"),
    ({"data_offsets": [20, 12]}, r"tensor b: its data_offsets \[20, 12\] are not \[begin, end\] with 0 <= begin"),
    ({"data_offsets": [12, 20]}, r"tensor b: its data_offsets \[12, 20\] span 8 bytes, but I32 \[2, 2\] needs 16"),
    ({"shape": [2, 250], "data_offsets": [12, 2012]}, r"tensor b: the file is truncated \(its data ends at byte"),
    ({"shape": [1, 2], "data_offsets": [4, 12]}, r"tensor b: its data starts at offset 4, but the previous tensor"),
], ids=["unknown-dtype", "dtype-not-a-string", "negative-dim", "shape-not-a-list", "one-offset", "offsets-reversed",
        "offsets-not-shape-x-itemsize", "offsets-past-the-end", "overlap"])
def test_inconsistent_entry(tmp_path: Path, changes: dict, message: str) -> None:
    _raises(_edit(tmp_path, "b", **changes), message)


def test_whole_file_defects(tmp_path: Path) -> None:
    valid = _valid(tmp_path / "valid.safetensors")
    length = int.from_bytes(valid[:8], "little")
    bad = tmp_path / "bad.safetensors"
    cases = {
        valid[:5]: r"not a readable safetensors file: it has 5 bytes, fewer than the 8-byte header length",
        valid[:8 + length // 2]: rf"not a readable safetensors file: it is truncated: the header says {length} bytes, "
                                 rf"the file has {length // 2} after the 8-byte length",
        b"hello, this is text and not tensors": r"not a readable safetensors file: it is not a safetensors file",
        valid + b"\0" * 8: r"not a readable safetensors file: the header describes 32 bytes of tensor data, the file has 40",
    }
    for data, message in cases.items():
        bad.write_bytes(data)
        _raises(bad, message)
    for header, message in {
        b"{not json}": r"not a readable safetensors file: its header is not valid UTF-8 JSON",
        b"\xff\xfe{}": r"not a readable safetensors file: its header is not valid UTF-8 JSON",
        b"[1, 2]": r"not a readable safetensors file: its header is a JSON list, not an object",
        b'{"a": 3}': r"tensor a: its header entry is a JSON int, not an object",
        b'{"__metadata__": {"n": 1}}': r"not a readable safetensors file: its __metadata__ is not an object of strings",
    }.items():
        _raises(_write(bad, header, b""), message)


def test_load_reports_a_bad_header_as_a_value_error(tmp_path: Path) -> None:
    path = hio.save(random_model(small_config()), tmp_path / "ckpt")
    file = path / "model.safetensors"
    data = file.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    del header["embedder.weight"]["dtype"]
    encoded = json.dumps(header, separators=(",", ":")).encode().ljust(length)
    file.write_bytes(data[:8] + encoded + data[8 + length :])
    with pytest.raises(ValueError, match=re.escape(f"{file}: tensor embedder.weight: its header entry has no 'dtype'")):
        hio.load(path)


_FUZZ_FILE = "fuzz.safetensors"


@settings(max_examples=300)
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
def test_random_corruption_is_a_value_error_or_reads(tmp_path_factory: pytest.TempPathFactory, edits, cut) -> None:
    """Bytes overwritten (mostly in the header, which is most of this small file) and an optional truncation."""
    directory = tmp_path_factory.getbasetemp()
    data = bytearray(_valid(directory / "valid.safetensors"))
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    file = directory / _FUZZ_FILE
    file.write_bytes(bytes(data))
    try:
        reader = SafetensorsReader([file], str(file))
        tensors = {name: reader[name] for name in reader.shapes}
    except ValueError as error:
        assert str(error).startswith(f"{file}: ")
        return
    for name, value in tensors.items():
        assert value.shape == reader.shapes[name] and value.dtype == reader.dtypes[name]
    assert read_header(file).shapes == reader.shapes
