"""Architecture numbers of real vision-language-action policies, from their papers and configs.

- openvla-7b: SigLIP-so400m/14 at 224 px (OpenVLA fuses it with DINOv2-L; only SigLIP is built
  here, about 0.3B fewer parameters) + a 2-layer projector + Llama-2-7B; 7 action dimensions as
  256-bin tokens decoded autoregressively, one action per call (about 6 Hz on an RTX 4090).
- pi0: PaliGemma-3B prefix (SigLIP-so400m/14 + Gemma-2B) + a 300M Gemma action expert with the
  same attention shapes (18 layers, 8 heads, 1 KV head, head_dim 256) that attends to the prefix
  KV; flow matching, 10 Euler steps, chunks of H = 50 actions (32-dim padded), up to 3 cameras.
- smolvla: SmolVLM2-500M (SigLIP base/16 at 512 px with pixel shuffle to 64 tokens per frame,
  SmolLM2-360M cut to its first 16 layers) + a flow-matching expert at 0.75x width; chunks of 50.
- vla-tiny: ours, same structure, small enough for 2 CPU cores.
Random weights; the numbers that matter for performance are the shapes.
"""

from __future__ import annotations

from typing import Any

SIGLIP_SO400M_224 = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16, "image_size": 224, "patch_size": 14}
SIGLIP_BASE_512 = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 512, "patch_size": 16}
GEMMA_2B = {
    "model_type": "gemma",
    "hidden_size": 2048,
    "intermediate_size": 16384,
    "num_hidden_layers": 18,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "vocab_size": 257152,
}

VLA_PRESETS: dict[str, dict[str, Any]] = {
    "openvla-7b": {
        "vision": SIGLIP_SO400M_224,
        "tokens_per_image": 256,
        "cameras": 1,
        "backbone": {
            "model_type": "llama",
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32064,
            "max_position_embeddings": 4096,
        },
        "head": "discrete",
        "action_dim": 7,
        "chunk_len": 1,
        "published_params": 7_541_000_000,
    },
    "pi0": {
        "vision": SIGLIP_SO400M_224,
        "tokens_per_image": 256,
        "cameras": 3,
        "backbone": GEMMA_2B,
        "expert": {**GEMMA_2B, "hidden_size": 1024, "intermediate_size": 4096, "vocab_size": 8},
        "head": "flow",
        "action_dim": 32,
        "chunk_len": 50,
        "flow_steps": 10,
        "published_params": 3_300_000_000,
    },
    "smolvla": {
        "vision": SIGLIP_BASE_512,
        "tokens_per_image": 64,
        "cameras": 2,
        "backbone": {
            "model_type": "llama",
            "hidden_size": 960,
            "intermediate_size": 2560,
            "num_hidden_layers": 16,
            "num_attention_heads": 15,
            "num_key_value_heads": 5,
            "head_dim": 64,
            "vocab_size": 49280,
            "tie_word_embeddings": True,
        },
        "expert": {
            "model_type": "llama",
            "hidden_size": 720,
            "intermediate_size": 2048,
            "num_hidden_layers": 16,
            "num_attention_heads": 15,
            "num_key_value_heads": 5,
            "head_dim": 64,
            "vocab_size": 8,
        },
        "head": "flow",
        "action_dim": 32,
        "chunk_len": 50,
        "flow_steps": 10,
        "published_params": 450_000_000,
    },
    "vla-tiny": {
        "vision": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
        "tokens_per_image": 16,
        "cameras": 2,
        "backbone": {
            "model_type": "llama",
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "vocab_size": 1024,
        },
        "expert": {
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "vocab_size": 8,
        },
        "head": "flow",
        "action_dim": 7,
        "chunk_len": 20,
        "flow_steps": 10,
        "published_params": None,
    },
}


def build_lm_config(fields: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    fields = dict(fields)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)
