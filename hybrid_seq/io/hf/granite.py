"""HuggingFace `GraniteMoeHybridForCausalLM` (model_type `granitemoehybrid`): IBM Granite-4.0-H.

Every layer is a mixer, Mamba-2 (M) or attention (*), from `layer_types` (legacy
`layers_block_type`; names `mamba` / `attention` too), then the FFN: a MoE of gated-SiLU
experts routed by a softmax over the top-k router logits, plus the shared gated-SiLU MLP (the
shared MLP alone when `num_local_experts == 0`). `attention_multiplier` is the attention score
scale; RoPE only when `position_embedding_type == "rope"`; `embedding_multiplier`,
`residual_multiplier` (both sub-blocks) and logits divided by `logits_scaling` (our
`logits_multiplier = 1 / logits_scaling`). Mamba-2: `I = mamba_expand * hidden_size`,
`mamba_proj_bias` on in_proj and out_proj, one `rms_norm_eps` for every norm. Files hold the
names HF saves (`block_sparse_moe.input_linear.weight` [E, 2F, D], each expert's gate rows
then up rows, `output_linear.weight`, `router.layer.weight`); HF's in-memory names are read too.
"""

from __future__ import annotations

from typing import Any

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks import AttentionConfig, Mamba2, Mamba2Config, MLPConfig, MoE, MoEConfig, NormConfig
from hybrid_seq.blocks.hf_names import HFTensor
from hybrid_seq.io.hf.common import (
    ConfigReader,
    Renames,
    TensorMap,
    dtype_name,
    json_float,
    layer_pattern,
    output_maps,
    prefixed,
    tied_head_optional,
)
from hybrid_seq.model import Model

MODEL_TYPE = "granitemoehybrid"
_LETTERS = {"linear_attention": "M", "mamba": "M", "full_attention": "*", "attention": "*"}
_TYPES = {"M": "linear_attention", "*": "full_attention"}


class GraniteFamily:
    """Reads and writes `granitemoehybrid` checkpoints."""

    model_type = MODEL_TYPE
    ignored_keys = frozenset({
        # Numerics or initialisation only.
        "mamba_chunk_size", "init_method",
        # HF's default RoPE does not read it.
        "max_position_embeddings",
        # Training only: dropout, the router loss.
        "attention_dropout", "output_router_logits", "router_aux_loss_coef",
    })
    aliases = Renames(
        (r"\.block_sparse_moe\.router\.weight$", ".block_sparse_moe.router.layer.weight"),
        (r"\.block_sparse_moe\.experts\.gate_up_proj$", ".block_sparse_moe.input_linear.weight"),
        (r"\.block_sparse_moe\.experts\.down_proj$", ".block_sparse_moe.output_linear.weight"),
    )

    def read_config(self, config: ConfigReader) -> HybridConfig:
        width = config.integer("hidden_size", 4096)
        eps = config.number("rms_norm_eps", 1e-6)
        config.choice("hidden_act", "silu", ["silu"])
        config.choice("normalization_function", "rmsnorm", ["rmsnorm"])
        letters = _layer_letters(config)
        kinds = {"M": _mamba(config, width, eps), "*": _attention(config, width)}
        return HybridConfig(
            vocab_size=config.integer("vocab_size", 32000),
            width=width,
            pattern=layer_pattern(letters),
            kinds={letter: kind for letter, kind in kinds.items() if letter in letters},
            channel=_ffn(config),
            norm=NormConfig(eps=eps, offset=False, upcast=True),
            tie_embeddings=config.flag("tie_word_embeddings", False),
            embedding_multiplier=config.number("embedding_multiplier", 1.0),
            residual_multiplier=config.number("residual_multiplier", 1.0),
            logits_multiplier=1.0 / config.number("logits_scaling", 1.0),
        )

    def write_config(self, config: HybridConfig, dtype: Any) -> dict[str, Any]:
        letters, mixers, problems = _layers(config)
        if problems:
            raise ValueError("the model cannot be saved as HuggingFace granitemoehybrid: " + "; ".join(problems))
        ffn = config.channel
        shared = ffn.shared if isinstance(ffn, MoEConfig) else ffn
        out: dict[str, Any] = {
            "architectures": ["GraniteMoeHybridForCausalLM"],
            "model_type": MODEL_TYPE,
            "vocab_size": config.vocab_size,
            "hidden_size": config.width,
            "num_hidden_layers": config.num_layers,
            "layer_types": [_TYPES[letter] for letter in letters],
            "hidden_act": "silu",
            "rms_norm_eps": config.norm.eps,
            "tie_word_embeddings": config.tie_embeddings,
            "embedding_multiplier": config.embedding_multiplier,
            "residual_multiplier": config.residual_multiplier,
            "logits_scaling": 1.0 / config.logits_multiplier,
            "shared_intermediate_size": shared.hidden_width,
            "num_local_experts": ffn.num_experts if isinstance(ffn, MoEConfig) else 0,
            "torch_dtype": dtype_name(dtype),
        }
        if isinstance(ffn, MoEConfig):
            out.update(intermediate_size=ffn.hidden_width, num_experts_per_tok=ffn.top_k)
        if "M" in mixers:
            mamba = mixers["M"]
            out.update(
                mamba_n_heads=mamba.num_heads, mamba_d_head=mamba.head_dim, mamba_n_groups=mamba.n_groups,
                mamba_d_state=mamba.state_size, mamba_d_conv=mamba.conv_width,
                mamba_expand=mamba.inner_width // config.width, mamba_conv_bias=True, mamba_proj_bias=mamba.in_bias,
                time_step_limit=[mamba.time_step_limit[0], json_float(mamba.time_step_limit[1])],
            )
        if "*" in mixers:
            attention = mixers["*"]
            head_dim = attention.resolved_head_dim(config.width)
            if attention.head_dim is not None:
                out["head_dim"] = head_dim
            out.update(
                num_attention_heads=attention.num_heads,
                num_key_value_heads=attention.num_kv_heads or attention.num_heads,
                attention_bias=attention.qkv_bias,
                attention_multiplier=head_dim**-0.5 if attention.score_scale is None else attention.score_scale,
                position_embedding_type="rope" if attention.rope_fraction else "nope",
                rope_parameters={"rope_type": "default", "rope_theta": attention.rope_theta},
            )
        return out

    def tensor_maps(self, model: Model) -> list[TensorMap]:
        maps = [TensorMap(("embedder", "weight"), (HFTensor("model.embed_tokens.weight"),))]
        for i, block in enumerate(model.blocks):
            prefix = f"model.layers.{i}."
            maps.append(TensorMap(("blocks", i, "temporal_pre_norm", "scale"), (HFTensor(f"{prefix}input_layernorm.weight"),)))
            mixer = "mamba." if isinstance(block.temporal, Mamba2) else "self_attn."
            maps += prefixed(prefix + mixer, ("blocks", i, "temporal"), block.temporal.hf_tensors())
            maps.append(TensorMap(("blocks", i, "channel_pre_norm", "scale"), (HFTensor(f"{prefix}post_attention_layernorm.weight"),)))
            maps += _ffn_maps(prefix, ("blocks", i, "mlp"), block.mlp)
        return maps + output_maps(model, "model.norm.weight")

    def optional_tensors(self, config: HybridConfig) -> frozenset[str]:
        return tied_head_optional(config)


def _layer_letters(config: ConfigReader) -> str:
    config.renamed("layer_types", "layers_block_type")
    layers = config.integer("num_hidden_layers", 32)
    types = config.get("layer_types")
    types = ["linear_attention"] * layers if types is None else types  # HF's default
    if not isinstance(types, list) or any(t not in _LETTERS for t in types):
        raise ValueError(f"{config.file}: layer_types={types!r}: each entry must be one of {sorted(_LETTERS)}")
    if len(types) != layers:
        raise ValueError(f"{config.file}: num_hidden_layers={layers} but layer_types lists {len(types)} layers")
    return "".join(_LETTERS[t] for t in types)


def _mamba(config: ConfigReader, width: int, eps: float) -> Mamba2Config:
    heads, expand = config.integer("mamba_n_heads", 128), config.integer("mamba_expand", 2)
    head_dim = config.get("mamba_d_head", "auto")
    head_dim = expand * width // heads if head_dim == "auto" else config.integer("mamba_d_head")
    if heads * head_dim != expand * width:
        raise ValueError(f"{config.file}: mamba_n_heads * mamba_d_head = {heads * head_dim} but mamba_expand * hidden_size = {expand * width}")
    config.choice("mamba_conv_bias", True, [True])
    bias = config.flag("mamba_proj_bias", False)
    return Mamba2Config(
        num_heads=heads,
        head_dim=head_dim,
        state_size=config.integer("mamba_d_state", 256),
        n_groups=config.integer("mamba_n_groups", 1),
        conv_width=config.integer("mamba_d_conv", 4),
        in_bias=bias,
        out_bias=bias,
        norm="gated",
        norm_eps=eps,
        time_step_limit=config.limit("time_step_limit"),
    )


def _attention(config: ConfigReader, width: int) -> AttentionConfig:
    heads = config.integer("num_attention_heads", 32)
    bias = config.flag("attention_bias", False)
    rope = config.choice("position_embedding_type", None, [None, "nope", "rope"]) == "rope"
    theta = config.rope_theta()
    return AttentionConfig(
        num_heads=heads,
        num_kv_heads=config.optional_integer("num_key_value_heads") or heads,
        head_dim=config.optional_integer("head_dim"),
        rope_fraction=1.0 if rope else 0.0,
        rope_theta=theta,
        qkv_bias=bias,
        out_bias=bias,
        score_scale=config.number("attention_multiplier", 1.0),
    )


def _ffn(config: ConfigReader) -> MLPConfig | MoEConfig:
    """The shared gated-SiLU MLP, with the routed experts beside it unless there are none."""
    shared = MLPConfig(hidden_width=config.integer("shared_intermediate_size", 1024), activation="silu", gated=True)
    experts, top_k, hidden = (config.integer(key, default) for key, default in (
        ("num_local_experts", 8), ("num_experts_per_tok", 2), ("intermediate_size", 11008)))
    if experts == 0:
        return shared
    return MoEConfig(num_experts=experts, top_k=top_k, hidden_width=hidden, activation="silu", gated=True,
                     router="softmax_topk", shared=shared)


def _ffn_maps(prefix: str, path: tuple[str | int, ...], ffn: Any) -> list[TensorMap]:
    """The shared MLP (`shared_mlp.input_linear` rows gate then up, `output_linear`) and the experts beside it."""
    shared, shared_path = (ffn.shared, (*path, "shared")) if isinstance(ffn, MoE) else (ffn, path)
    width = shared.up.weight.shape[1]
    maps = [
        TensorMap((*shared_path, "gate", "weight"), (HFTensor(f"{prefix}shared_mlp.input_linear.weight", (0, width), "T"),)),
        TensorMap((*shared_path, "up", "weight"), (HFTensor(f"{prefix}shared_mlp.input_linear.weight", (width, 2 * width), "T"),)),
        TensorMap((*shared_path, "down", "weight"), (HFTensor(f"{prefix}shared_mlp.output_linear.weight", None, "T"),)),
    ]
    if isinstance(ffn, MoE):
        hidden, moe = ffn.up.shape[2], f"{prefix}block_sparse_moe."
        maps += [
            TensorMap((*path, "router", "weight"), (HFTensor(f"{moe}router.layer.weight", None, "T"),)),
            TensorMap((*path, "gate"), (HFTensor(f"{moe}input_linear.weight", (0, hidden), "experts"),)),
            TensorMap((*path, "up"), (HFTensor(f"{moe}input_linear.weight", (hidden, 2 * hidden), "experts"),)),
            TensorMap((*path, "down"), (HFTensor(f"{moe}output_linear.weight", None, "experts"),)),
        ]
    return maps


def _layers(config: HybridConfig) -> tuple[list[str], dict[str, Any], list[str]]:
    """Each layer's letter, the one mixer config per letter, and why the model cannot be HF's."""
    letters, mixers, problems = [], {}, []
    for i, layer in enumerate(config.layers):
        letter = {Mamba2Config: "M", AttentionConfig: "*"}.get(type(layer.temporal))
        if letter is None or layer.channel != config.channel:
            problems.append(f"layer {i} ({layer.name}) is not a Mamba-2 or attention mixer followed by the model's FFN")
            continue
        if mixers.setdefault(letter, layer.temporal) != layer.temporal:
            problems.append(f"layer {i}: every {layer.temporal.kind} layer must have the same settings")
        letters.append(letter)
    mamba, attention, ffn = mixers.get("M"), mixers.get("*"), config.channel
    if mamba is not None and (
        mamba.in_bias != mamba.out_bias or mamba.norm != "gated" or mamba.projection_multipliers is not None
        or mamba.norm_eps != config.norm.eps or mamba.inner_width % config.width
    ):
        problems.append("Mamba-2 mixers share one bias flag and the norms' eps, gate before the norm, have no "
                        "multipliers and are a whole multiple of the width")
    if attention is not None and (
        attention.rope_fraction not in (0, 1) or attention.window_size is not None or attention.qkv_bias != attention.out_bias
        or attention.key_multiplier != 1 or attention.output_gate
    ):
        problems.append("attention has full RoPE or none, no window, gate or key multiplier, and one bias flag")
    shared = ffn.shared if isinstance(ffn, MoEConfig) else ffn
    if not _silu_mlp(shared) or (isinstance(ffn, MoEConfig) and (
        ffn.router != "softmax_topk" or not ffn.gated or ffn.activation != "silu"
    )):
        problems.append("the FFN is the shared gated-SiLU MLP without biases or multipliers, with or without "
                        "gated-SiLU experts routed by a softmax over the top-k logits")
    if config.norm.offset or not config.norm.upcast or not config.final_norm:
        problems.append("norms are plain-weight RMSNorms computed in float32, with a final norm")
    if config.logits_soft_cap or config.embeddings_scale_by_sqrt_dim:
        problems.append("there is no soft cap and no embedding scale")
    return letters, mixers, problems


def _silu_mlp(mlp: Any) -> bool:
    return (isinstance(mlp, MLPConfig) and mlp.gated and mlp.activation == "silu" and not mlp.bias
            and (mlp.gate_multiplier, mlp.down_multiplier) == (1, 1))
