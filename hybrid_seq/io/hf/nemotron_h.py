"""HuggingFace `NemotronHForCausalLM` (model_type `nemotron_h`): every layer a norm and ONE mixer.

Layers come from `layers_block_type` (alias `layer_types`; older names `mamba`, `attention`)
or the legacy `hybrid_override_pattern`, and keep its letters: M Mamba-2, * attention, - MLP,
E MoE. Attention is GQA without RoPE or biases (HF ignores `attention_bias`); MLPs are plain
ReLU² (`mlp_bias`); a MoE layer routes with sigmoid scores (`e_score_correction_bias` for the
choice only), expert groups, `norm_topk_prob` and `routed_scaling_factor` to ReLU² experts,
plus one shared MLP. Mamba-2 has `I = mamba_num_heads * mamba_head_dim`, `use_bias` on
in_proj and out_proj, and dt clamped at `time_step_min` (HF skips that clamp when decoding one
token; we clamp everywhere, so they agree unless softplus(dt) falls below it). Files name the
tensors `backbone.` (HF's `model.` is read too) and save experts one by one; the head is
never tied.
"""

from __future__ import annotations

from typing import Any

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks import AttentionConfig, Mamba2Config, MLPConfig, MoE, MoEConfig, NormConfig
from hybrid_seq.blocks.hf_names import HFTensor, linear
from hybrid_seq.io.hf.common import (
    ConfigReader,
    Renames,
    TensorMap,
    dtype_name,
    layer_pattern,
    output_maps,
    prefixed,
)
from hybrid_seq.kinds import KindConfig
from hybrid_seq.model import Model

MODEL_TYPE = "nemotron_h"
#: HF's layer type names (new and old) -> our letters, and our letters -> the names HF writes.
_LETTERS = {"linear_attention": "M", "mamba": "M", "full_attention": "*", "attention": "*", "mlp": "-", "moe": "E"}
_TYPES = {"M": "linear_attention", "*": "full_attention", "-": "mlp", "E": "moe"}
_KIND_LETTERS = {Mamba2Config: "M", AttentionConfig: "*", MLPConfig: "-", MoEConfig: "E"}
#: HF's older config names -> the current ones (HF renames them on load).
_RENAMED = {
    "n_groups": ("mamba_n_groups",), "conv_kernel": ("mamba_d_conv",), "expand": ("mamba_expand",),
    "time_step_min": ("mamba_dt_min",), "time_step_max": ("mamba_dt_max",), "time_step_limit": ("mamba_dt_limit",),
    "time_step_floor": ("mamba_dt_init_floor",), "use_conv_bias": ("mamba_conv_bias",),
    "chunk_size": ("mamba_chunk_size",), "n_routed_experts": ("num_local_experts",),
}


class NemotronHFamily:
    """Reads and writes `nemotron_h` checkpoints."""

    model_type = MODEL_TYPE
    ignored_keys = frozenset({
        # Numerics or initialisation only: the chunk length, dt's init range, prenorm rescaling.
        "chunk_size", "time_step_max", "time_step_floor", "rescale_prenorm_residual",
        # HF's forward pass does not read these (facts: ignored, checked by running).
        "expand", "time_step_limit", "residual_in_fp32", "mamba_proj_bias", "attention_bias",
        "mamba_ssm_cache_dtype", "use_mamba_kernels", "max_position_embeddings", "sliding_window",
        # HF's head is never tied, whatever this says.
        "tie_word_embeddings",
        # Always exactly one shared expert in HF.
        "n_shared_experts", "moe_shared_expert_overlap",
        # Training only: dropout, the router loss.
        "attention_dropout", "hidden_dropout", "output_router_logits", "router_aux_loss_coef",
        # Multi-token-prediction layers, which HF does not build.
        "num_nextn_predict_layers", "mtp_layers_block_type",
    })
    aliases = Renames((r"^model\.", "backbone."))

    def read_config(self, config: ConfigReader) -> HybridConfig:
        for key, older in _RENAMED.items():
            config.renamed(key, *older)
        letters = _layer_letters(config)
        width = config.integer("hidden_size")
        eps = config.number("layer_norm_epsilon", 1e-5)
        kinds = {"M": _mamba(config, eps), "*": _attention(config), "-": _mlp(config)}
        kinds["E"] = _moe(config, config.flag("mlp_bias", False))
        return HybridConfig(
            vocab_size=config.integer("vocab_size", 131072),
            width=width,
            pattern=layer_pattern(letters),
            kinds={letter: build() for letter, build in kinds.items() if letter in letters},
            norm=NormConfig(eps=eps, offset=False, upcast=True),
            tie_embeddings=False,
        )

    def write_config(self, config: HybridConfig, dtype: Any) -> dict[str, Any]:
        letters, kinds, problems = _layer_kinds(config)
        problems += _model_problems(config)
        if problems:
            raise ValueError("the model cannot be saved as HuggingFace nemotron_h: " + "; ".join(problems))
        out: dict[str, Any] = {
            "architectures": ["NemotronHForCausalLM"],
            "model_type": MODEL_TYPE,
            "vocab_size": config.vocab_size,
            "hidden_size": config.width,
            "layers_block_type": [_TYPES[letter] for letter in letters],
            "layer_norm_epsilon": config.norm.eps,
            "tie_word_embeddings": False,
            "torch_dtype": dtype_name(dtype),
        }
        if "M" in kinds:
            mamba = kinds["M"]
            out.update(
                mamba_num_heads=mamba.num_heads, mamba_head_dim=mamba.head_dim, ssm_state_size=mamba.state_size,
                n_groups=mamba.n_groups, conv_kernel=mamba.conv_width, use_bias=mamba.in_bias, use_conv_bias=True,
                mamba_hidden_act="silu", time_step_min=mamba.time_step_limit[0],
            )
        if "*" in kinds:
            attention = kinds["*"]
            out.update(
                num_attention_heads=attention.num_heads,
                num_key_value_heads=attention.num_kv_heads or attention.num_heads,
                head_dim=attention.resolved_head_dim(config.width),
            )
        mlp = kinds.get("-") or (kinds["E"].shared if "E" in kinds else None)
        if mlp is not None:
            out.update(mlp_hidden_act="relu2", mlp_bias=mlp.bias)
        if "-" in kinds:
            out["intermediate_size"] = kinds["-"].hidden_width
        if "E" in kinds:
            moe = kinds["E"]
            out.update(
                n_routed_experts=moe.num_experts, num_experts_per_tok=moe.top_k, moe_intermediate_size=moe.hidden_width,
                moe_shared_expert_intermediate_size=moe.shared.hidden_width, n_group=moe.num_groups,
                topk_group=moe.topk_groups, norm_topk_prob=moe.normalize_top_k,
                routed_scaling_factor=moe.routed_scaling, moe_latent_size=None,
            )
        return out

    def tensor_maps(self, model: Model) -> list[TensorMap]:
        maps = [TensorMap(("embedder", "weight"), (HFTensor("backbone.embeddings.weight"),))]
        for i, block in enumerate(model.blocks):
            prefix = f"backbone.layers.{i}."
            norm = HFTensor(f"{prefix}norm.weight")
            if block.temporal is not None:
                maps.append(TensorMap(("blocks", i, "temporal_pre_norm", "scale"), (norm,)))
                maps += prefixed(f"{prefix}mixer.", ("blocks", i, "temporal"), block.temporal.hf_tensors())
            else:
                maps.append(TensorMap(("blocks", i, "channel_pre_norm", "scale"), (norm,)))
                maps += _channel_maps(f"{prefix}mixer.", ("blocks", i, "mlp"), block.mlp)
        return maps + output_maps(model, "backbone.norm_f.weight")

    def optional_tensors(self, config: HybridConfig) -> frozenset[str]:
        return frozenset()


def _layer_letters(config: ConfigReader) -> str:
    """One letter per layer, from the type list or the legacy pattern string (they must agree when both are given)."""
    config.renamed("layers_block_type", "layer_types")
    types = config.get("layers_block_type")
    pattern = config.get("hybrid_override_pattern")
    if types is None and pattern is None:
        types = ["linear_attention", "moe", "full_attention", "mlp"]  # HF's default
    from_types = None
    if types is not None:
        if not isinstance(types, list) or any(t not in _LETTERS for t in types):
            raise ValueError(f"{config.file}: layers_block_type={types!r}: each entry must be one of {sorted(_LETTERS)}")
        from_types = "".join(_LETTERS[t] for t in types)
    if pattern is not None and (not isinstance(pattern, str) or set(pattern) - set(_TYPES) or not pattern):
        raise ValueError(f"{config.file}: hybrid_override_pattern={pattern!r} must be letters of {''.join(_TYPES)}")
    if from_types is not None and pattern is not None and from_types != pattern:
        raise ValueError(f"{config.file}: hybrid_override_pattern={pattern!r} disagrees with layers_block_type")
    letters = from_types or pattern
    layers = config.optional_integer("num_hidden_layers")
    if layers is not None and layers != len(letters):
        raise ValueError(f"{config.file}: num_hidden_layers={layers} but the layer types list {len(letters)} layers")
    return letters


def _mamba(config: ConfigReader, eps: float) -> Any:
    """The Mamba-2 kind of the `M` layers (its keys are read whether or not there is one)."""
    config.choice("mamba_hidden_act", "silu", ["silu"])
    config.choice("use_conv_bias", True, [True])
    bias = config.flag("use_bias", False)
    fields = dict(
        num_heads=config.integer("mamba_num_heads", 128),
        head_dim=config.integer("mamba_head_dim", 64),
        state_size=config.integer("ssm_state_size", 128),
        n_groups=config.integer("n_groups", 8),
        conv_width=config.integer("conv_kernel", 4),
        in_bias=bias,
        out_bias=bias,
        norm="gated",
        norm_eps=eps,
        time_step_limit=(config.number("time_step_min", 0.001), None),
    )
    return lambda: Mamba2Config(**fields)


def _attention(config: ConfigReader) -> Any:
    heads = config.integer("num_attention_heads", 32)
    head_dim = config.integer("head_dim", 128)
    legacy = config.optional_integer("attention_head_dim")  # the remote-code name, which HF does not read
    if legacy is not None and legacy != head_dim:
        raise ValueError(f"{config.file}: attention_head_dim={legacy} but head_dim={head_dim} (HF uses head_dim)")
    kv_heads = config.optional_integer("num_key_value_heads") if config.has("num_key_value_heads") else 8
    fields = dict(num_heads=heads, num_kv_heads=kv_heads or heads, head_dim=head_dim, rope_fraction=0.0)
    return lambda: AttentionConfig(**fields)


def _mlp(config: ConfigReader) -> Any:
    config.choice("mlp_hidden_act", "relu2", ["relu2"])
    fields = dict(hidden_width=config.integer("intermediate_size", 21504), activation="relu2", gated=False,
                  bias=config.flag("mlp_bias", False))
    return lambda: MLPConfig(**fields)


def _moe(config: ConfigReader, bias: bool) -> Any:
    latent = config.get("moe_latent_size")
    if latent is not None:
        raise ValueError(f"{config.file}: moe_latent_size={latent!r} (latent expert projections) is not supported")
    shared = MLPConfig(hidden_width=config.integer("moe_shared_expert_intermediate_size", 7688), activation="relu2",
                       gated=False, bias=bias)
    fields = dict(
        num_experts=config.integer("n_routed_experts", 8),
        top_k=config.integer("num_experts_per_tok", 2),
        hidden_width=config.integer("moe_intermediate_size", 7688),
        activation="relu2",
        gated=False,
        router="sigmoid",
        normalize_top_k=config.flag("norm_topk_prob", True),
        routed_scaling=config.number("routed_scaling_factor", 1.0),
        selection_bias=True,
        num_groups=config.integer("n_group", 1),
        topk_groups=config.integer("topk_group", 1),
        shared=shared,
    )
    return lambda: MoEConfig(**fields)


def _channel_maps(prefix: str, path: tuple[str | int, ...], mixer: Any) -> list[TensorMap]:
    """A lone MLP's (`up_proj`, `down_proj`) or a MoE's (`gate`, experts one by one, `shared_experts`) tensors."""
    if not isinstance(mixer, MoE):
        return prefixed(prefix, path, _mlp_names(mixer))
    experts = range(mixer.num_experts)
    maps = [
        TensorMap((*path, "router", "weight"), (HFTensor(f"{prefix}gate.weight", None, "T"),)),
        TensorMap((*path, "selection_bias"), (HFTensor(f"{prefix}gate.e_score_correction_bias"),)),
        TensorMap((*path, "up"), tuple(HFTensor(f"{prefix}experts.{e}.up_proj.weight", None, "T") for e in experts), True),
        TensorMap((*path, "down"), tuple(HFTensor(f"{prefix}experts.{e}.down_proj.weight", None, "T") for e in experts), True),
    ]
    return maps + prefixed(f"{prefix}shared_experts.", (*path, "shared"), _mlp_names(mixer.shared))


def _mlp_names(mlp: Any) -> dict[tuple[str, ...], HFTensor]:
    bias = mlp.up.bias is not None
    return {**linear("up", "up_proj", bias=bias), **linear("down", "down_proj", bias=bias)}


def _layer_kinds(config: HybridConfig) -> tuple[list[str], dict[str, KindConfig], list[str]]:
    """Each layer's letter, the one kind config per letter, and why the layers cannot be HF's."""
    letters, kinds, problems = [], {}, []
    for i, layer in enumerate(config.layers):
        parts = [kind for kind in (layer.temporal, layer.channel) if kind is not None]
        letter = _KIND_LETTERS.get(type(parts[0])) if len(parts) == 1 else None
        if letter is None:
            problems.append(f"layer {i} ({layer.name}) is not a lone Mamba-2, attention, MLP or MoE mixer")
            continue
        if kinds.setdefault(letter, parts[0]) != parts[0]:
            problems.append(f"layer {i}: every {parts[0].kind} layer must have the same settings")
        letters.append(letter)
    problems += _kind_problems(kinds, config)
    return letters, kinds, problems


def _kind_problems(kinds: dict[str, Any], config: HybridConfig) -> list[str]:
    problems = []
    mamba, attention, mlp, moe = (kinds.get(letter) for letter in "M*-E")
    if mamba is not None and (
        mamba.in_bias != mamba.out_bias or mamba.norm != "gated" or mamba.projection_multipliers is not None
        or mamba.norm_eps != config.norm.eps or mamba.time_step_limit[1] is not None
    ):
        problems.append("Mamba-2 mixers share one bias flag and the norms' eps, gate before the norm, have no "
                        "multipliers and clamp dt from below only")
    if attention is not None and (
        attention.rope_fraction or attention.window_size is not None or attention.qkv_bias or attention.out_bias
        or attention.key_multiplier != 1 or attention.output_gate
        or attention.score_scale not in (None, attention.resolved_head_dim(config.width) ** -0.5)
    ):
        problems.append("attention has no RoPE, window, biases, gate or multipliers")
    plain = [m for m in (mlp, None if moe is None else moe.shared) if m is not None]
    if any(not isinstance(m, MLPConfig) or m.gated or m.activation != "relu2" or (m.gate_multiplier, m.down_multiplier) != (1, 1)
           for m in plain) or len({m.bias for m in plain}) > 1:
        problems.append("MLPs (and the shared expert) are plain ReLU² with one bias flag")
    if moe is not None and (moe.router != "sigmoid" or not moe.selection_bias or moe.gated or moe.activation != "relu2"):
        problems.append("MoE layers route by sigmoid with a selection bias to plain ReLU² experts")
    return problems


def _model_problems(config: HybridConfig) -> list[str]:
    """Why the model-level options are not Nemotron-H's."""
    problems = []
    if config.norm.offset or not config.norm.upcast or not config.final_norm:
        problems.append("norms are plain-weight RMSNorms computed in float32, with a final norm")
    if config.tie_embeddings:
        problems.append("the head is never tied")
    if (config.embedding_multiplier, config.residual_multiplier, config.logits_multiplier, config.logits_soft_cap) != (1, 1, 1, 0):
        problems.append("there are no embedding, residual or logit multipliers and no soft cap")
    if config.embeddings_scale_by_sqrt_dim:
        problems.append("embeddings are not scaled")
    return problems
