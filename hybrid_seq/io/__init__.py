"""Checkpoint formats and conversion: `load` (format detected), `save`, `describe`, and the Flax tree converters."""

from hybrid_seq.io.flax import from_flax_params, to_flax_params
from hybrid_seq.io.formats import FORMATS, detect
from hybrid_seq.io.inspect import describe, format_description
from hybrid_seq.io.loading import load
from hybrid_seq.io.saving import save

__all__ = ["FORMATS", "describe", "detect", "format_description", "from_flax_params", "load", "save", "to_flax_params"]
