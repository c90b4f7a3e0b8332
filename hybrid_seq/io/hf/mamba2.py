"""HuggingFace `Mamba2ForCausalLM` (model_type `mamba2`): every layer a norm and a Mamba-2 mixer.

Config: `I = expand * hidden_size = num_heads * head_dim`; one `layer_norm_epsilon` for every
norm (the gated one too); `use_bias` on in_proj and out_proj; `time_step_limit` clamps dt
(HF skips the clamp when decoding one token; we clamp everywhere, so they agree whenever the
limit is the default `(0, inf)` or never reached). Tensors live under `backbone.`; the
original mamba_ssm name `backbone.embedding.weight` is read too. With
`tie_word_embeddings` the file has no `lm_head.weight`.
"""

from __future__ import annotations

from typing import Any

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks import Mamba2Config, NormConfig
from hybrid_seq.blocks.hf_names import HFTensor
from hybrid_seq.io.hf.common import (
    ConfigReader,
    TensorMap,
    dtype_name,
    json_float,
    output_maps,
    prefixed,
    tied_head_optional,
)
from hybrid_seq.model import Model

MODEL_TYPE = "mamba2"


class Mamba2Family:
    """Reads and writes `mamba2` checkpoints."""

    model_type = MODEL_TYPE
    ignored_keys = frozenset({
        "chunk_size", "time_step_min", "time_step_max", "time_step_floor", "time_step_rank",
        "rescale_prenorm_residual", "residual_in_fp32", "norm_before_gate", "layer_types",
    })
    aliases = {"backbone.embedding.weight": "backbone.embeddings.weight"}

    def read_config(self, config: ConfigReader) -> HybridConfig:
        width = config.integer("hidden_size")
        heads, head_dim = config.integer("num_heads"), config.integer("head_dim")
        expand = config.number("expand", 2)
        if int(expand * width) != heads * head_dim:
            raise ValueError(
                f"{config.file}: expand * hidden_size = {int(expand * width)} but num_heads * head_dim = {heads * head_dim}"
            )
        config.choice("hidden_act", "silu", ["silu"])
        config.choice("use_conv_bias", True, [True])
        eps = config.number("layer_norm_epsilon", 1e-5)
        bias = config.flag("use_bias", False)
        mixer = Mamba2Config(
            num_heads=heads,
            head_dim=head_dim,
            state_size=config.integer("state_size", 128),
            n_groups=config.integer("n_groups", 1),
            conv_width=config.integer("conv_kernel", 4),
            in_bias=bias,
            out_bias=bias,
            norm="gated",
            norm_eps=eps,
            time_step_limit=config.limit("time_step_limit"),
        )
        return HybridConfig(
            vocab_size=config.integer("vocab_size"),
            width=width,
            pattern={"unit": "M", "num_layers": config.integer("num_hidden_layers")},
            kinds={"M": mixer},
            norm=NormConfig(eps=eps, offset=False, upcast=True),
            tie_embeddings=config.flag("tie_word_embeddings", False),
        )

    def write_config(self, config: HybridConfig, dtype: Any) -> dict[str, Any]:
        mixer = _only_mamba(config)
        return {
            "architectures": ["Mamba2ForCausalLM"],
            "model_type": MODEL_TYPE,
            "vocab_size": config.vocab_size,
            "hidden_size": config.width,
            "num_hidden_layers": config.num_layers,
            "num_heads": mixer.num_heads,
            "head_dim": mixer.head_dim,
            "expand": _expand(mixer.inner_width, config.width),
            "state_size": mixer.state_size,
            "n_groups": mixer.n_groups,
            "conv_kernel": mixer.conv_width,
            "use_bias": mixer.in_bias,
            "use_conv_bias": True,
            "hidden_act": "silu",
            "layer_norm_epsilon": mixer.norm_eps,
            "time_step_limit": [mixer.time_step_limit[0], json_float(mixer.time_step_limit[1])],
            "tie_word_embeddings": config.tie_embeddings,
            "residual_in_fp32": True,
            "torch_dtype": dtype_name(dtype),
        }

    def tensor_maps(self, model: Model) -> list[TensorMap]:
        maps = [TensorMap(("embedder", "weight"), (HFTensor("backbone.embeddings.weight"),))]
        for i, block in enumerate(model.blocks):
            maps.append(TensorMap(("blocks", i, "temporal_pre_norm", "scale"), (HFTensor(f"backbone.layers.{i}.norm.weight"),)))
            maps += prefixed(f"backbone.layers.{i}.mixer.", ("blocks", i, "temporal"), block.temporal.hf_tensors())
        return maps + output_maps(model, "backbone.norm_f.weight")

    def optional_tensors(self, config: HybridConfig) -> frozenset[str]:
        return tied_head_optional(config)


def _expand(inner: int, width: int) -> int | float:
    """`inner / width`, as an int when whole (HF's config is a strict dataclass with `expand: int`)."""
    return inner // width if inner % width == 0 else inner / width


def _only_mamba(config: HybridConfig) -> Mamba2Config:
    """The one Mamba-2 kind of a model `mamba2` can hold, or a ValueError saying why not."""
    problems = []
    kinds = {letter: bound for letter, bound in config.kinds if letter in config.pattern.unit}
    mixers = set(kinds.values())
    if len(mixers) != 1 or not isinstance(next(iter(mixers)), Mamba2Config):
        problems.append(f"every layer must be one Mamba-2 kind, got {sorted(k.kind for k in mixers if hasattr(k, 'kind'))}")
    if config.channel is not None:
        problems.append("mamba2 layers have no channel mixer")
    if config.norm.offset or config.final_norm is False:
        problems.append("mamba2 uses plain-weight norms and a final norm")
    if (config.embedding_multiplier, config.residual_multiplier, config.logits_multiplier, config.logits_soft_cap) != (1, 1, 1, 0):
        problems.append("mamba2 has no embedding, residual or logit multipliers and no soft cap")
    if config.embeddings_scale_by_sqrt_dim:
        problems.append("mamba2 does not scale embeddings")
    mixer = next(iter(mixers))
    if isinstance(mixer, Mamba2Config):
        if mixer.in_bias != mixer.out_bias or mixer.norm != "gated" or mixer.projection_multipliers is not None:
            problems.append("mamba2 mixers share one bias flag, gate before the norm and have no multipliers")
        if mixer.norm_eps != config.norm.eps:
            problems.append("mamba2 has one layer_norm_epsilon for every norm")
    if problems:
        raise ValueError("the model cannot be saved as HuggingFace mamba2: " + "; ".join(problems))
    return mixer
