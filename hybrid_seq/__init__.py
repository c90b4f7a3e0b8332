"""hybrid_seq: hybrid recurrent/attention sequence models (Griffin, RecurrentGemma, Mamba-2 and its hybrids) in JAX + Equinox."""

from hybrid_seq import blocks, kinds, presets, scan  # noqa: F401  (blocks registers the built-in kinds)
from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks import LayerConfig, NormConfig
from hybrid_seq.config import ModelConfig
from hybrid_seq.kinds import KindConfig, register_kind
from hybrid_seq.model import Cache, Model, with_scan_backend
from hybrid_seq.params import ParamCount, param_count
from hybrid_seq.pattern import BlockPattern, parse_pattern, register_temporal_block, temporal_kinds
from hybrid_seq.sampling import Sampler, Tokenizer

__version__ = "0.1.0"

__all__ = [
    "BlockPattern",
    "Cache",
    "HybridConfig",
    "KindConfig",
    "LayerConfig",
    "Model",
    "ModelConfig",
    "NormConfig",
    "ParamCount",
    "Sampler",
    "Tokenizer",
    "blocks",
    "kinds",
    "param_count",
    "parse_pattern",
    "presets",
    "register_kind",
    "register_temporal_block",
    "scan",
    "temporal_kinds",
    "with_scan_backend",
]


# Submodules that `import hybrid_seq` does not load: each is imported on first attribute
# access (PEP 562), so `hybrid_seq.io.load(...)` works after a plain `import hybrid_seq`
# while the import itself stays as fast as before (io, training & co. are not imported eagerly).
_LAZY_SUBMODULES = ("bench", "cli", "distributed", "io", "matrix_scan", "quantize", "sampling", "testing", "training",
                     "xla_cpu")


def __getattr__(name: str) -> object:
    if name in _LAZY_SUBMODULES:
        import importlib

        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    import importlib.util

    present = [name for name in _LAZY_SUBMODULES if importlib.util.find_spec(f"{__name__}.{name}") is not None]
    return sorted({*globals(), *present})
