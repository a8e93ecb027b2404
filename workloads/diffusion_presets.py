"""Architecture numbers of real diffusion models (diffusers / transformers config.json files).

- sd15: Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5): UNet2DConditionModel 859.5M,
  AutoencoderKL 83.7M (8x downsampling, 4 latent channels), CLIP ViT-L/14 text encoder 123.1M.
- dit-xl-2-256: DiT-XL/2 at 256x256 (facebook/DiT-XL-2-256), class-conditional, learned sigma,
  the same VAE. diffusers' port gives each of the 28 blocks its own timestep/class embedder, so
  it builds 749.8M parameters where the paper's shared-embedder count is 675M.
Random weights; `-tiny` presets are ours, with the same block types, for 2 CPU cores.
`size_multiple` is what height and width must divide by: VAE factor x denoiser downsampling.
"""

from __future__ import annotations

from typing import Any

_SD_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
_TINY_VAE = {**_SD_VAE, "block_out_channels": (16, 16, 32, 32), "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 64}
_CLIP_L = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
_SD_BETAS = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}

DIFFUSION_PRESETS: dict[str, dict[str, Any]] = {
    "sd15": {
        "denoiser": "unet",
        "unet": {
            "sample_size": 64,
            "in_channels": 4,
            "out_channels": 4,
            "layers_per_block": 2,
            "block_out_channels": (320, 640, 1280, 1280),
            "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            "cross_attention_dim": 768,
            "attention_head_dim": 8,
        },
        "vae": _SD_VAE,
        "text": _CLIP_L,
        "betas": _SD_BETAS,
        "default_size": 512,
        "size_multiple": 64,
        "published_params": {"denoiser": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    },
    "dit-xl-2-256": {
        "denoiser": "dit",
        "dit": {
            "num_attention_heads": 16,
            "attention_head_dim": 72,
            "in_channels": 4,
            "out_channels": 8,
            "num_layers": 28,
            "sample_size": 32,
            "patch_size": 2,
            "num_embeds_ada_norm": 1000,
        },
        "vae": _SD_VAE,
        "text": None,
        "betas": {"num_train_timesteps": 1000, "beta_schedule": "linear"},
        "default_size": 256,
        "size_multiple": 16,
        "published_params": {"denoiser": 675_000_000, "vae": 83_653_863},
    },
    "sd-tiny": {
        "denoiser": "unet",
        "unet": {
            "sample_size": 16,
            "in_channels": 4,
            "out_channels": 4,
            "layers_per_block": 1,
            "block_out_channels": (64, 128),
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
            "cross_attention_dim": 128,
            "attention_head_dim": 8,
            "norm_num_groups": 16,
        },
        "vae": _TINY_VAE,
        "text": {
            **_CLIP_L,
            "vocab_size": 1000,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "projection_dim": 128,
        },
        "betas": _SD_BETAS,
        "default_size": 128,
        "size_multiple": 16,
        "published_params": {},
    },
    "dit-tiny": {
        "denoiser": "dit",
        "dit": {
            "num_attention_heads": 4,
            "attention_head_dim": 16,
            "in_channels": 4,
            "out_channels": 8,
            "num_layers": 2,
            "sample_size": 8,
            "patch_size": 2,
            "num_embeds_ada_norm": 1000,
        },
        "vae": _TINY_VAE,
        "text": None,
        "betas": {"num_train_timesteps": 1000, "beta_schedule": "linear"},
        "default_size": 64,
        "size_multiple": 16,
        "published_params": {},
    },
}
