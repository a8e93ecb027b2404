"""Architecture numbers of real LLMs, as published in their config.json files on the Hub.

Random weights are fine for performance (it does not depend on weight values); the shapes are
what must be real. Each preset is the subset of the published config that fixes the compute and
memory: widths, layer and head counts, vocabulary, tying, RoPE. `-tiny` presets are ours, small
enough for 2 CPU cores, with the same architecture (GQA, SwiGLU, RMSNorm, RoPE).

Reasoning models (long chain-of-thought outputs, up to 32k tokens and beyond) are served with the
same engine; their presets are the published distilled checkpoints of DeepSeek-R1 (arXiv
2501.12948), whose shapes are their base models': R1-Distill-Qwen-1.5B is Qwen2.5-Math-1.5B
(RoPE theta 10000, 128k positions, untied embeddings), R1-Distill-Llama-8B is Llama-3.1-8B.
`reasoning-tiny` is ours: llama-tiny's width with positions for long outputs.
"""

from __future__ import annotations

from typing import Any

_LLAMA3_ROPE = {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}

LLM_PRESETS: dict[str, dict[str, Any]] = {
    # meta-llama/Llama-3.2-1B config.json
    "llama-3.2-1b": {
        "model_type": "llama",
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_theta": 500000.0, "factor": 32.0, **_LLAMA3_ROPE},
    },
    # meta-llama/Llama-3.1-8B config.json
    "llama-3.1-8b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 500000.0, "factor": 8.0, **_LLAMA3_ROPE},
    },
    # Qwen/Qwen2.5-0.5B config.json (q/k/v projections carry a bias in Qwen2)
    "qwen2.5-0.5b": {
        "model_type": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    },
    # Qwen/Qwen2.5-1.5B config.json (the policy of GRPO recipes at the 1.5B scale; fits one 141 GB GPU with its
    # reference, rollout copy and fp32 AdamW state: 1.54B x (16 + 2 + 2) bytes = 31 GB)
    "qwen2.5-1.5b": {
        "model_type": "qwen2",
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    },
    # Qwen/Qwen2.5-7B config.json
    "qwen2.5-7b": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    },
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B config.json (Qwen2.5-Math-1.5B's shape; sliding window off)
    "r1-distill-qwen-1.5b": {
        "model_type": "qwen2",
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    },
    # deepseek-ai/DeepSeek-R1-Distill-Llama-8B config.json (Llama-3.1-8B's shape)
    "r1-distill-llama-8b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_theta": 500000.0, "factor": 8.0, **_LLAMA3_ROPE},
    },
    # ours, for reasoning on CPU: llama-tiny's width and depth, 32k positions so long outputs fit
    "reasoning-tiny": {
        "model_type": "llama",
        "hidden_size": 512,
        "intermediate_size": 1408,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 64,
        "vocab_size": 32000,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
    },
    # ours: ~45M parameters, Llama-3 style GQA (8 query heads, 4 KV heads)
    "llama-tiny": {
        "model_type": "llama",
        "hidden_size": 512,
        "intermediate_size": 1408,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 64,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
    },
    # ours: ~13M parameters, Qwen2 architecture (attention bias, 7 query heads over 1 KV head)
    "qwen-tiny": {
        "model_type": "qwen2",
        "hidden_size": 448,
        "intermediate_size": 1216,
        "num_hidden_layers": 3,
        "num_attention_heads": 7,
        "num_key_value_heads": 1,
        "vocab_size": 16384,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    },
}

REASONING_PRESETS = ("reasoning-tiny", "r1-distill-qwen-1.5b", "r1-distill-llama-8b")
"""The reasoning family (served by llm_serve with long, long-tailed outputs: configs/reasoning.yaml)."""


def build_config(preset: str) -> Any:
    """A transformers config object for `preset` (imports transformers: call from setup only)."""
    from transformers import AutoConfig

    fields = dict(LLM_PRESETS[preset])
    return AutoConfig.for_model(fields.pop("model_type"), **fields)
