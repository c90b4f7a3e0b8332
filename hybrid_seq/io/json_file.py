"""The JSON files beside the weights (`config.json`, the shard index), read with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(file: Path) -> dict[str, Any]:
    """The JSON object in `file`; anything else (unreadable text, invalid JSON, another JSON type) is a ValueError."""
    try:
        data = json.loads(file.read_text())
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{file}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a JSON object, got a JSON {type(data).__name__}")
    return data
