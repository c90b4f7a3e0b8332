"""hybrid_seq: hybrid recurrent/attention sequence models (Griffin, Hawk, RecurrentGemma) in JAX + Equinox."""

from hybrid_seq import blocks, presets, scan  # noqa: F401  (blocks registers the built-in pattern kinds)
from hybrid_seq.config import ModelConfig
from hybrid_seq.model import Cache, Model, with_scan_backend
from hybrid_seq.params import ParamCount, param_count
from hybrid_seq.pattern import BlockPattern, parse_pattern, register_temporal_block, temporal_kinds
from hybrid_seq.sampling import Sampler, Tokenizer

__version__ = "0.1.0"

__all__ = [
    "BlockPattern",
    "Cache",
    "Model",
    "ModelConfig",
    "ParamCount",
    "Sampler",
    "Tokenizer",
    "blocks",
    "param_count",
    "parse_pattern",
    "presets",
    "register_temporal_block",
    "scan",
    "temporal_kinds",
    "with_scan_backend",
]
