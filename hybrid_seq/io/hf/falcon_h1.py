"""HuggingFace `FalconH1ForCausalLM` (model_type `falcon_h1`): attention and Mamba-2 in parallel in every layer.

Every layer (letter P) runs attention and Mamba-2 on the same normed input, each with an input
and an output multiplier (`attention_in/out_multiplier`, `ssm_in/out_multiplier`), sums them,
then a gated-SiLU MLP with `mlp_multipliers` (gate, down). Attention: GQA, `head_dim` (may
differ from hidden / heads), full RoPE with `rope_theta` (also under `rope_parameters`), keys
times `key_multiplier`, `attention_bias` on all four projections. Mamba-2: `I = mamba_d_ssm`
(default 1024!) or `mamba_expand * hidden_size` when that is null; the in_proj segments
(z, x, B, C, dt) times `ssm_multipliers` (HF's "mup vector"); `mamba_proj_bias` is the in_proj
bias and `projectors_bias` the out_proj one; the gated norm only with `mamba_rms_norm`, before
the gate when `mamba_norm_before_gate`. `embedding_multiplier`, and logits times
`lm_head_multiplier`.
"""

from __future__ import annotations

from typing import Any

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks import AttentionConfig, Mamba2Config, MLPConfig, NormConfig, ParallelConfig
from hybrid_seq.blocks.hf_names import HFTensor, linear
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

MODEL_TYPE = "falcon_h1"
#: Our Mamba-2 norm position <-> HF's (`mamba_rms_norm`, `mamba_norm_before_gate`).
_NORMS = {"none": (False, True), "before_gate": (True, True), "gated": (True, False)}


class FalconH1Family:
    """Reads and writes `falcon_h1` checkpoints."""

    model_type = MODEL_TYPE
    ignored_keys = frozenset({
        # Numerics only: the chunk length of HF's scan.
        "mamba_chunk_size",
        # HF's default RoPE does not read it; HF takes the MLP width from intermediate_size.
        "max_position_embeddings", "mlp_expansion_factor",
        # Training only.
        "attention_dropout",
    })
    aliases: dict[str, str] = {}

    def read_config(self, config: ConfigReader) -> HybridConfig:
        width = config.integer("hidden_size", 4096)
        eps = config.number("rms_norm_eps", 1e-5)
        config.choice("hidden_act", "silu", ["silu"])
        # Flags of the original code that HF always treats as on / absent.
        config.choice("mamba_use_mlp", True, [True])
        config.choice("attn_layer_indices", None, [None])
        attention_bias = config.flag("attention_bias", False)
        heads = config.integer("num_attention_heads", 32)
        kv_heads = config.optional_integer("num_key_value_heads") if config.has("num_key_value_heads") else 8
        attention = AttentionConfig(
            num_heads=heads,
            num_kv_heads=kv_heads or heads,
            head_dim=config.optional_integer("head_dim"),
            rope_fraction=1.0,
            rope_theta=config.rope_theta(),
            qkv_bias=attention_bias,
            out_bias=attention_bias,
            key_multiplier=config.number("key_multiplier", 1.0),
        )
        parallel = ParallelConfig(
            branches=(attention, _mamba(config, width, eps)),
            in_multipliers=(config.number("attention_in_multiplier", 1.0), config.number("ssm_in_multiplier", 1.0)),
            out_multipliers=(config.number("attention_out_multiplier", 1.0), config.number("ssm_out_multiplier", 1.0)),
        )
        gate_multiplier, down_multiplier = config.numbers("mlp_multipliers", (1.0, 1.0), 2)
        mlp = MLPConfig(
            hidden_width=config.integer("intermediate_size", 14336), activation="silu", gated=True,
            bias=config.flag("mlp_bias", False), gate_multiplier=gate_multiplier, down_multiplier=down_multiplier,
        )
        return HybridConfig(
            vocab_size=config.integer("vocab_size", 128000),
            width=width,
            pattern={"unit": "P", "num_layers": config.integer("num_hidden_layers", 32)},
            kinds={"P": parallel},
            channel=mlp,
            norm=NormConfig(eps=eps, offset=False, upcast=True),
            tie_embeddings=config.flag("tie_word_embeddings", False),
            embedding_multiplier=config.number("embedding_multiplier", 1.0),
            logits_multiplier=config.number("lm_head_multiplier", 1.0),
        )

    def write_config(self, config: HybridConfig, dtype: Any) -> dict[str, Any]:
        parallel, problems = _layer(config)
        if problems:
            raise ValueError("the model cannot be saved as HuggingFace falcon_h1: " + "; ".join(problems))
        attention, mamba = parallel.branches
        mlp = config.channel
        ones = (1.0, 1.0)
        (attention_in, ssm_in), (attention_out, ssm_out) = parallel.in_multipliers or ones, parallel.out_multipliers or ones
        rms_norm, before_gate = _NORMS[mamba.norm]
        head_dim = {} if attention.head_dim is None else {"head_dim": attention.head_dim}
        return {
            **head_dim,
            "architectures": ["FalconH1ForCausalLM"],
            "model_type": MODEL_TYPE,
            "vocab_size": config.vocab_size,
            "hidden_size": config.width,
            "num_hidden_layers": config.num_layers,
            "hidden_act": "silu",
            "rms_norm_eps": config.norm.eps,
            "tie_word_embeddings": config.tie_embeddings,
            "embedding_multiplier": config.embedding_multiplier,
            "lm_head_multiplier": config.logits_multiplier,
            "num_attention_heads": attention.num_heads,
            "num_key_value_heads": attention.num_kv_heads or attention.num_heads,
            "attention_bias": attention.qkv_bias,
            "key_multiplier": attention.key_multiplier,
            "rope_parameters": {"rope_type": "default", "rope_theta": attention.rope_theta},
            "attention_in_multiplier": attention_in,
            "attention_out_multiplier": attention_out,
            "ssm_in_multiplier": ssm_in,
            "ssm_out_multiplier": ssm_out,
            "mamba_d_ssm": mamba.inner_width,
            "mamba_n_heads": mamba.num_heads,
            "mamba_d_head": mamba.head_dim,
            "mamba_n_groups": mamba.n_groups,
            "mamba_d_state": mamba.state_size,
            "mamba_d_conv": mamba.conv_width,
            "mamba_conv_bias": True,
            "mamba_proj_bias": mamba.in_bias,
            "projectors_bias": mamba.out_bias,
            "mamba_rms_norm": rms_norm,
            "mamba_norm_before_gate": before_gate,
            "ssm_multipliers": list(mamba.projection_multipliers or (1.0,) * 5),
            "time_step_limit": [mamba.time_step_limit[0], json_float(mamba.time_step_limit[1])],
            "intermediate_size": mlp.hidden_width,
            "mlp_bias": mlp.bias,
            "mlp_multipliers": [mlp.gate_multiplier, mlp.down_multiplier],
            "torch_dtype": dtype_name(dtype),
        }

    def tensor_maps(self, model: Model) -> list[TensorMap]:
        maps = [TensorMap(("embedder", "weight"), (HFTensor("model.embed_tokens.weight"),))]
        for i, block in enumerate(model.blocks):
            prefix, path = f"model.layers.{i}.", ("blocks", i)
            attention, mamba = block.temporal.branches
            bias = block.mlp.up.bias is not None
            maps += [
                TensorMap((*path, "temporal_pre_norm", "scale"), (HFTensor(f"{prefix}input_layernorm.weight"),)),
                *prefixed(f"{prefix}self_attn.", (*path, "temporal", "branches", 0), attention.hf_tensors()),
                *prefixed(f"{prefix}mamba.", (*path, "temporal", "branches", 1), mamba.hf_tensors()),
                TensorMap((*path, "channel_pre_norm", "scale"), (HFTensor(f"{prefix}pre_ff_layernorm.weight"),)),
                *prefixed(f"{prefix}feed_forward.", (*path, "mlp"), {
                    **linear("gate", "gate_proj", bias=bias), **linear("up", "up_proj", bias=bias),
                    **linear("down", "down_proj", bias=bias),
                }),
            ]
        return maps + output_maps(model, "model.final_layernorm.weight")

    def optional_tensors(self, config: HybridConfig) -> frozenset[str]:
        return tied_head_optional(config)


def _mamba(config: ConfigReader, width: int, eps: float) -> Mamba2Config:
    inner = config.get("mamba_d_ssm", 1024)  # HF's default; null means mamba_expand * hidden_size
    expand = config.integer("mamba_expand", 2)
    inner = expand * width if inner is None else config.integer("mamba_d_ssm")
    heads = config.integer("mamba_n_heads", 128)
    head_dim = config.get("mamba_d_head", "auto")
    head_dim = inner // heads if head_dim == "auto" else config.integer("mamba_d_head")
    if heads * head_dim != inner:
        raise ValueError(f"{config.file}: mamba_n_heads * mamba_d_head = {heads * head_dim} but the Mamba width is {inner}")
    config.choice("mamba_conv_bias", True, [True])
    rms_norm, before_gate = config.flag("mamba_rms_norm", False), config.flag("mamba_norm_before_gate", True)
    multipliers = config.numbers("ssm_multipliers", (1.0,) * 5, 5)
    return Mamba2Config(
        num_heads=heads,
        head_dim=head_dim,
        state_size=config.integer("mamba_d_state", 256),
        n_groups=config.integer("mamba_n_groups", 1),
        conv_width=config.integer("mamba_d_conv", 4),
        in_bias=config.flag("mamba_proj_bias", False),
        out_bias=config.flag("projectors_bias", False),
        norm="none" if not rms_norm else "before_gate" if before_gate else "gated",
        norm_eps=eps,
        time_step_limit=config.limit("time_step_limit"),
        projection_multipliers=None if multipliers == (1.0,) * 5 else multipliers,
    )


def _layer(config: HybridConfig) -> tuple[Any, list[str]]:
    """The one parallel mixer of every layer, and why the model cannot be HF's."""
    problems = []
    mixers = {layer.temporal for layer in config.layers}
    parallel = next(iter(mixers))
    if len(mixers) != 1 or not isinstance(parallel, ParallelConfig) or [type(b) for b in parallel.branches] != [
        AttentionConfig, Mamba2Config
    ]:
        return None, ["every layer is one attention and Mamba-2 pair in parallel (attention first), all alike"]
    if any(layer.channel != config.channel for layer in config.layers):
        problems.append("every layer has the model's MLP")
    attention, mamba = parallel.branches
    if (attention.rope_fraction != 1 or attention.window_size is not None or attention.qkv_bias != attention.out_bias
            or attention.output_gate or attention.score_scale not in (None, attention.resolved_head_dim(config.width) ** -0.5)):
        problems.append("attention has full RoPE, no window or gate, the usual score scale and one bias flag")
    if mamba.norm_eps != config.norm.eps:
        problems.append("the Mamba-2 norm has the model's eps")
    mlp = config.channel
    if not isinstance(mlp, MLPConfig) or not mlp.gated or mlp.activation != "silu":
        problems.append("the MLP is gated SiLU")
    if config.norm.offset or not config.norm.upcast or not config.final_norm:
        problems.append("norms are plain-weight RMSNorms computed in float32, with a final norm")
    if config.residual_multiplier != 1 or config.logits_soft_cap or config.embeddings_scale_by_sqrt_dim:
        problems.append("there is no residual multiplier, soft cap or embedding scale")
    return parallel, problems
