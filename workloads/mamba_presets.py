"""Architecture numbers of real Mamba and Mamba-2 models, and the SSM and hybrid families the
`mamba` workload decodes: which recurrent mixer each family uses, the shapes of its cached state,
the kernel packages that replace its PyTorch reference path, and the scan FLOPs the counter misses.

Presets (state-spaces/*-hf config.json files): Mamba-1 defaults per the paper, d_state 16, d_conv
4, expand 2 (d_inner = 2 * d_model); Mamba-2 defaults d_state 128, headdim 64, ngroups 1, d_conv 4
(nheads = d_inner / headdim). Random weights; `-tiny` presets are ours, for 2 CPU cores.

Families (`pretrained:` directories): the model_types below, each with the mixer of its recurrent
layers. The state formulas are the shapes of the cache tensors the mixer keeps per sequence
(mamba_ssm `allocate_inference_cache` for Mamba and Mamba-2, the conv1d channels and recurrent
state of transformers' Qwen3NextGatedDeltaNet and Lfm2ShortConv); tests/integration/
test_ssm_families.py checks each against the bytes measured behind transformers' cache.
"""

from __future__ import annotations

from dataclasses import dataclass
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

MAMBA_KERNELS = ("mamba_ssm", "causal_conv1d")

# The scan functions transformers replaces with a kernel package when one imports; its fallback
# warning names them (integrations/hub_kernels.py, use_kernel_func_from_hub_with_fallback).
SCAN_FUNCTIONS = (
    "selective_state_update",
    "selective_scan_fn",
    "mamba_chunk_scan_combined",
    "mamba_split_conv1d_scan_combined",
    "chunk_gated_delta_rule",
    "fused_recurrent_gated_delta_rule",
)


@dataclass(frozen=True)
class Family:
    """An SSM or hybrid model_type: its recurrent mixer and where its kernels come from."""

    checkpoint: str  # a published checkpoint of the family (the tests shrink its config.json)
    mixer: str  # mamba (Mamba-1 selective scan), mamba2 (SSD), gated_delta_net, short_conv
    kernel_packages: tuple[str, ...]  # import names of the packages whose kernels replace the PyTorch path
    scan_package: str | None  # the one of them that runs the scan (None: no scan, a convolution only)
    hybrid: bool  # attention layers beside the recurrent ones, by design


SSM_FAMILIES: dict[str, Family] = {
    "mamba": Family("state-spaces/mamba-130m-hf", "mamba", MAMBA_KERNELS, "mamba_ssm", False),
    "falcon_mamba": Family("tiiuae/falcon-mamba-7b", "mamba", MAMBA_KERNELS, "mamba_ssm", False),
    "mamba2": Family("mistralai/Mamba-Codestral-7B-v0.1", "mamba2", MAMBA_KERNELS, "mamba_ssm", False),
    "jamba": Family("ai21labs/Jamba-v0.1", "mamba", MAMBA_KERNELS, "mamba_ssm", True),
    "bamba": Family("ibm-ai-platform/Bamba-9B", "mamba2", MAMBA_KERNELS, "mamba_ssm", True),
    "zamba2": Family("Zyphra/Zamba2-1.2B", "mamba2", MAMBA_KERNELS, "mamba_ssm", True),
    "falcon_h1": Family("tiiuae/Falcon-H1-0.5B-Base", "mamba2", MAMBA_KERNELS, "mamba_ssm", True),
    "nemotron_h": Family("nvidia/Nemotron-H-8B-Base-8K", "mamba2", MAMBA_KERNELS, "mamba_ssm", True),
    "granitemoehybrid": Family("ibm-granite/granite-4.0-tiny-preview", "mamba2", MAMBA_KERNELS, "mamba_ssm", True),
    "lfm2": Family("LiquidAI/LFM2-350M", "short_conv", ("causal_conv1d",), None, True),
    "qwen3_next": Family("Qwen/Qwen3-Next-80B-A3B-Instruct", "gated_delta_net", ("fla", "causal_conv1d"), "fla", True),
}

# The families with an analytic formula for the scan FLOPs the counter cannot see (scan_flops).
ANALYTIC_SCAN = ("mamba", "falcon_mamba", "mamba2")


def build_mamba_config(preset: str) -> Any:
    from transformers import AutoConfig

    fields = dict(MAMBA_PRESETS[preset])
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


@dataclass(frozen=True)
class RecurrentState:
    """Elements one recurrent layer caches per sequence: the conv window and the SSM (or delta-rule) state."""

    conv_elements: int
    ssm_elements: int
    formula: str


def recurrent_state(config: Any) -> RecurrentState:
    """Per recurrent layer, per sequence, from the family's config fields (module docstring: sources).

    Mamba:   conv d_inner * d_conv, SSM d_inner * d_state.
    Mamba-2: conv (d_inner + 2 * ngroups * d_state) * d_conv, SSM nheads * headdim * d_state.
    Gated DeltaNet (Qwen3-Next): conv (2 * k_heads * k_dim + v_heads * v_dim) * d_conv, state v_heads * k_dim * v_dim.
    Short conv (LFM2): conv hidden * L_cache, no SSM state.
    """
    c = config.get_text_config(decoder=True)
    mixer = SSM_FAMILIES[c.model_type].mixer
    if mixer == "mamba":
        d_inner, d_conv, d_state = _mamba_dims(c)
        return RecurrentState(d_inner * d_conv, d_inner * d_state, f"d_inner {d_inner} x d_conv {d_conv} + d_inner {d_inner} x d_state {d_state}")
    if mixer == "mamba2":
        d_inner, heads, head_dim, groups, d_state, d_conv = _mamba2_dims(c)
        return RecurrentState(
            (d_inner + 2 * groups * d_state) * d_conv,
            heads * head_dim * d_state,
            f"(d_inner {d_inner} + 2 x ngroups {groups} x d_state {d_state}) x d_conv {d_conv} + nheads {heads} x headdim {head_dim} x d_state {d_state}",
        )
    if mixer == "gated_delta_net":
        k_heads, k_dim, v_heads, v_dim = c.linear_num_key_heads, c.linear_key_head_dim, c.linear_num_value_heads, c.linear_value_head_dim
        d_conv = c.linear_conv_kernel_dim
        conv = f"(2 x k_heads {k_heads} x k_dim {k_dim} + v_heads {v_heads} x v_dim {v_dim}) x d_conv {d_conv}"
        return RecurrentState(
            (2 * k_heads * k_dim + v_heads * v_dim) * d_conv, v_heads * k_dim * v_dim, f"{conv} + v_heads {v_heads} x k_dim {k_dim} x v_dim {v_dim}"
        )
    return RecurrentState(c.hidden_size * c.conv_L_cache, 0, f"hidden {c.hidden_size} x L_cache {c.conv_L_cache}")  # short_conv


def _mamba_dims(c: Any) -> tuple[int, int, int]:
    """(d_inner, d_conv, d_state) of a Mamba-1 mixer: Mamba and Falcon-Mamba name them one way, Jamba another."""
    if c.model_type == "jamba":
        return int(c.mamba_expand * c.hidden_size), c.mamba_d_conv, c.mamba_d_state
    return c.intermediate_size, c.conv_kernel, c.state_size


def _mamba2_dims(c: Any) -> tuple[int, int, int, int, int, int]:
    """(d_inner, nheads, headdim, ngroups, d_state, d_conv) of a Mamba-2 mixer, as each family's mixer reads its config."""
    t = c.model_type
    if t == "mamba2":
        return int(c.expand * c.hidden_size), c.num_heads, c.head_dim, c.n_groups, c.state_size, c.conv_kernel
    if t == "zamba2":
        return int(c.mamba_expand * c.hidden_size), c.n_mamba_heads, c.mamba_headdim, c.mamba_ngroups, c.mamba_d_state, c.mamba_d_conv
    if t == "nemotron_h":
        return c.mamba_num_heads * c.mamba_head_dim, c.mamba_num_heads, c.mamba_head_dim, c.n_groups, c.ssm_state_size, c.conv_kernel
    d_inner = int(c.mamba_expand * c.hidden_size)
    if t == "falcon_h1" and c.mamba_d_ssm is not None:
        d_inner = c.mamba_d_ssm  # Falcon-H1 sets its SSM width apart from expand * hidden
    return d_inner, c.mamba_n_heads, c.mamba_d_head, c.mamba_n_groups, c.mamba_d_state, c.mamba_d_conv  # bamba, granitemoehybrid, falcon_h1


def scan_contraction_flops(config: Any, batch: int, tokens: int) -> float:
    """FLOPs of the scan's output contraction y = C . h over all layers: 2 per state element per token
    (a multiply and an add), 2 * B * L * d_inner * d_state (Mamba) or 2 * B * L * nheads * headdim * d_state
    (Mamba-2). The PyTorch reference path computes it with matmul/bmm, which FlopCounterMode counts."""
    if SSM_FAMILIES[config.model_type].mixer == "mamba2":
        _, heads, head_dim, _, d_state, _ = _mamba2_dims(config)
        per_token = heads * head_dim * d_state
    else:
        d_inner, _, d_state = _mamba_dims(config)
        per_token = d_inner * d_state
    return 2.0 * batch * tokens * per_token * config.num_hidden_layers


def scan_flops(config: Any, batch: int, tokens: int, prefill: bool, contraction_counted: bool) -> float:
    """FLOPs of the selective scan that FlopCounterMode does not see, for the families in ANALYTIC_SCAN.

    The formulas (per layer): Mamba 9 * B * L * D * N (Albert Gu, state-spaces/mamba issue #110),
    prefill and decode alike; Mamba-2 decode, the recurrent form, 5 * B * H * P * N (h = a*h + x*B:
    3 ops, y = C.h: 2 ops, per state element). On the PyTorch reference path the counter already
    counts the contraction y = C.h (a matmul/bmm, `scan_contraction_flops`): only the formula minus
    it is added, so no FLOP is counted twice. With the fused kernels (mamba_ssm) nothing of the scan
    is counted: the whole formula is added. Mamba-2 prefill adds nothing: on the reference path its
    SSD einsums are counted, and the fused chunked kernel has no formula here (the facts say so).
    """
    if config.model_type not in ANALYTIC_SCAN:
        return 0.0
    if config.model_type == "mamba2":
        if prefill:
            return 0.0
        formula = 5.0 * batch * tokens * config.num_heads * config.head_dim * config.state_size * config.num_hidden_layers
    else:
        d_inner, _, d_state = _mamba_dims(config)
        formula = 9.0 * batch * tokens * d_inner * d_state * config.num_hidden_layers
    return formula - (scan_contraction_flops(config, batch, tokens) if contraction_counted else 0.0)
