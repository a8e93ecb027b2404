"""Architecture numbers of real Mamba and Mamba-2 models (state-spaces/*-hf config.json files).

Mamba-1 defaults per the paper: d_state 16, d_conv 4, expand 2 (d_inner = 2 * d_model).
Mamba-2 defaults: d_state 128, headdim 64, ngroups 1, d_conv 4 (nheads = d_inner / headdim).
Random weights; `-tiny` presets are ours, for 2 CPU cores.
"""

from __future__ import annotations

from typing import Any

_M1 = {"model_type": "mamba", "state_size": 16, "conv_kernel": 4, "expand": 2, "vocab_size": 50280, "tie_word_embeddings": True}
_M2 = {
    "model_type": "mamba2",
    "state_size": 128,
    "conv_kernel": 4,
    "expand": 2,
    "head_dim": 64,
    "n_groups": 1,
    "vocab_size": 50280,
    "tie_word_embeddings": True,
    "chunk_size": 256,
}

MAMBA_PRESETS: dict[str, dict[str, Any]] = {
    "mamba-130m": {**_M1, "hidden_size": 768, "num_hidden_layers": 24},
    "mamba-370m": {**_M1, "hidden_size": 1024, "num_hidden_layers": 48},
    "mamba-1.4b": {**_M1, "hidden_size": 2048, "num_hidden_layers": 48},
    "mamba-2.8b": {**_M1, "hidden_size": 2560, "num_hidden_layers": 64},
    "mamba2-130m": {**_M2, "hidden_size": 768, "num_hidden_layers": 24, "num_heads": 24},
    "mamba2-2.7b": {**_M2, "hidden_size": 2560, "num_hidden_layers": 64, "num_heads": 80},
    # ours: the same blocks at llama-tiny's scale (vocabulary 32000, width 512), for CPU
    "mamba-tiny": {**_M1, "hidden_size": 512, "num_hidden_layers": 8, "vocab_size": 32000},
    "mamba2-tiny": {
        **_M2,
        "hidden_size": 512,
        "num_hidden_layers": 8,
        "vocab_size": 32000,
        "state_size": 64,
        "head_dim": 64,
        "num_heads": 16,
        "chunk_size": 64,
    },
}

# Published parameter counts (model cards / the Mamba and Mamba-2 papers), for comparison in facts.
PUBLISHED_PARAMS = {"mamba-130m": 130e6, "mamba-370m": 370e6, "mamba-1.4b": 1.4e9, "mamba-2.8b": 2.8e9, "mamba2-130m": 130e6, "mamba2-2.7b": 2.7e9}


def build_mamba_config(preset: str) -> Any:
    from transformers import AutoConfig

    fields = dict(MAMBA_PRESETS[preset])
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def state_elements_per_sequence(config: Any) -> int:
    """Elements of conv + SSM state per sequence, summed over layers (the mamba_ssm cache shapes).

    Mamba:   per layer d_inner * d_conv + d_inner * d_state.
    Mamba-2: per layer (d_inner + 2 * ngroups * d_state) * d_conv + nheads * headdim * d_state.
    """
    d_inner = config.expand * config.hidden_size
    if config.model_type == "mamba2":
        conv = (d_inner + 2 * config.n_groups * config.state_size) * config.conv_kernel
        ssm = config.num_heads * config.head_dim * config.state_size
    else:
        conv = d_inner * config.conv_kernel
        ssm = d_inner * config.state_size
    return config.num_hidden_layers * (conv + ssm)


def scan_flops(config: Any, batch: int, tokens: int, prefill: bool) -> float:
    """FLOPs of the selective scan that FlopCounterMode cannot see (elementwise or custom kernels).

    Mamba: 9 * B * L * D * N per layer (Mamba paper, section 3.3: the scan's 9BLDN FLOPs), prefill
    and decode alike. Mamba-2: the recurrent form costs 5 * B * L * H * P * N per layer
    (h = a*h + x*B: 3 ops; y = C.h: 2 ops per state element); only decode steps use it here, the
    reference prefill computes SSD with einsums that the counter does see.
    """
    d_inner = config.expand * config.hidden_size
    if config.model_type == "mamba2":
        if prefill:
            return 0.0
        return 5.0 * batch * tokens * config.num_heads * config.head_dim * config.state_size * config.num_hidden_layers
    return 9.0 * batch * tokens * d_inner * config.state_size * config.num_hidden_layers
