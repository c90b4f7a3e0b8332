"""The published sizes of the HF hybrid families, as config.json dicts read by each family's own reader.

A preset here is the checkpoint's config.json (as far as it is known: see the comments), so
`presets.get(name)` and `io.load` of that checkpoint build the same `HybridConfig`. Values
marked unconfirmed were not read from the published file; those that change the parameter
count say so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hybrid_seq.architecture import HybridConfig

_NEMOTRON_H_8B_PATTERN = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"  # attention at 7, 18, 29, 40
_GRANITE_TINY_LAYERS = ["attention" if i % 10 == 5 else "mamba" for i in range(40)]  # attention at 5, 15, 25, 35

CONFIGS: dict[str, dict[str, Any]] = {
    # state-spaces/mamba2-2.7b, as transformers' conversion script writes it (the release is a
    # mamba_ssm checkpoint): the script's Mamba2Config defaults plus the release's d_model, n_layer,
    # vocabulary padded to a multiple of 16, tied embeddings. Unconfirmed: layer_norm_epsilon
    # (mamba_ssm's default); the token ids (the script's 0s).
    "mamba2-2.7b": {
        "model_type": "mamba2", "vocab_size": 50288, "hidden_size": 2560, "num_hidden_layers": 64,
        "num_heads": 80, "head_dim": 64, "expand": 2, "state_size": 128, "n_groups": 1, "conv_kernel": 4,
        "chunk_size": 256, "use_bias": False, "use_conv_bias": True, "hidden_act": "silu",
        "layer_norm_epsilon": 1e-5, "residual_in_fp32": True, "time_step_limit": [0.0, math.inf],
        "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0,
    },
    # nvidia/Nemotron-H-8B-Base-8K (remote-code config): 24 Mamba-2, 24 MLP and 4 attention layers.
    # Unconfirmed: time_step_min (HF's default), residual_in_fp32 and rescale_prenorm_residual (no
    # effect on the forward pass).
    "nemotron-h-8b": {
        "model_type": "nemotron_h", "vocab_size": 131072, "hidden_size": 4096,
        "hybrid_override_pattern": _NEMOTRON_H_8B_PATTERN, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 128, "attention_head_dim": 128, "attention_bias": False, "intermediate_size": 21504,
        "mlp_hidden_act": "relu2", "mlp_bias": False, "mamba_num_heads": 128, "mamba_head_dim": 64,
        "ssm_state_size": 128, "n_groups": 8, "conv_kernel": 4, "chunk_size": 128, "expand": 2,
        "mamba_hidden_act": "silu", "use_conv_bias": True, "use_bias": False, "time_step_min": 0.001,
        "layer_norm_epsilon": 1e-5, "residual_in_fp32": False, "rescale_prenorm_residual": True,
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
    },
    # ibm-granite/granite-4.0-h-tiny: 36 Mamba-2 and 4 attention layers, each with 64 experts (top 6)
    # and a shared MLP. Multipliers and eps from the GGUF metadata. Unconfirmed: mamba_conv_bias and
    # mamba_proj_bias (sibling configs; the conv bias changes the count), position_embedding_type
    # (model cards: no positional encoding), pad_token_id (a sibling's), time_step_limit (absent).
    "granite-4.0-h-tiny": {
        "model_type": "granitemoehybrid", "vocab_size": 100352, "hidden_size": 1536, "num_hidden_layers": 40,
        "layer_types": _GRANITE_TINY_LAYERS, "num_attention_heads": 12, "num_key_value_heads": 4,
        "attention_bias": False, "attention_multiplier": 0.0078125, "position_embedding_type": "nope",
        "rope_theta": 10000.0, "max_position_embeddings": 131072, "mamba_n_heads": 48, "mamba_d_head": 64,
        "mamba_n_groups": 1, "mamba_d_state": 128, "mamba_expand": 2, "mamba_d_conv": 4, "mamba_chunk_size": 256,
        "mamba_conv_bias": True, "mamba_proj_bias": False, "num_local_experts": 64, "num_experts_per_tok": 6,
        "intermediate_size": 512, "shared_intermediate_size": 1024, "hidden_act": "silu", "rms_norm_eps": 1e-5,
        "embedding_multiplier": 12.0, "residual_multiplier": 0.22, "logits_scaling": 6.0,
        "tie_word_embeddings": True, "bos_token_id": 100257, "eos_token_id": 100257, "pad_token_id": 100256,
    },
    # tiiuae/Falcon-H1-1.5B-Base: 24 layers of attention beside Mamba-2. From HF's docs table and
    # quoted configs. Unconfirmed: vocab_size, mamba_chunk_size, rope_theta, tie_word_embeddings,
    # the biases, mamba_rms_norm / mamba_norm_before_gate (the 0.5B's; a Mamba norm would add
    # 3072 weights per layer), and every multiplier (not found: HF's defaults of 1 here; they
    # change the forward pass, not the count). Token ids from the siblings.
    "falcon-h1-1.5b": {
        "model_type": "falcon_h1", "vocab_size": 65537, "hidden_size": 2048, "num_hidden_layers": 24,
        "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 128, "attention_bias": False,
        "rope_theta": 1e11, "max_position_embeddings": 131072, "mamba_d_ssm": 3072, "mamba_n_heads": 48,
        "mamba_d_head": 64, "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_conv": 4, "mamba_chunk_size": 128,
        "mamba_conv_bias": True, "mamba_proj_bias": False, "projectors_bias": False, "mamba_rms_norm": False,
        "mamba_norm_before_gate": False, "intermediate_size": 4608, "mlp_bias": False, "hidden_act": "silu",
        "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 11, "pad_token_id": 0,
    },
}


def hybrid_config(name: str) -> HybridConfig:
    """The `HybridConfig` of the published config `CONFIGS[name]`, through its family's strict reader."""
    from hybrid_seq.io.hf import family_of
    from hybrid_seq.io.hf.common import ConfigReader

    data = CONFIGS[name]
    reader = ConfigReader(data, Path(f"preset {name}"))
    family = family_of(data["model_type"], source=f"preset {name}")
    config = family.read_config(reader)
    reader.finish(family.ignored_keys)
    return config
