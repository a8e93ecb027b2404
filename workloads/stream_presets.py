"""Shapes of a smart-glasses assistant (issue 15): camera frames, a language model, speech in, speech out.

The `multimodal_stream` workload builds four models from these numbers with random weights
(performance does not depend on weight values; the shapes are what must be real). This module
holds only numbers, so that `validate` and `list` can read the presets without importing torch
or transformers; workloads/stream_models.py builds the models from them inside setup.

Each preset: `vision` (SiglipVisionConfig kwargs), `tokens_per_frame` (visual tokens per camera
frame in the language model), `lm` (a preset name of workloads/llm_presets.py), `asr`
(WhisperConfig kwargs), `tts` (VitsConfig kwargs), `published_params` (part -> the parameter
count its model card publishes, where one does) and a one-line `description`.

Sources of the numbers:
- glasses-8b follows VideoLLM-online (Chen et al., CVPR 2024, arXiv 2406.11816; code
  github.com/showlab/videollm-online, models/arguments_live.py and vision_live.py, "live1+"):
  frames at 2 fps, each encoded by google/siglip-large-patch16-384 (its vision config: hidden
  1024, intermediate 4096, 24 layers, 16 heads, 384 px, patch 16 -> 24 x 24 = 576 patches) into
  10 tokens (the attention-pooled "CLS" token + the patch grid average-pooled to 3 x 3), a
  Linear-GELU-Linear connector into Meta-Llama-3-8B-Instruct. The LM preset is "llama-3.1-8b":
  the same shapes as Llama-3-8B (only the RoPE scaling and context length differ).
- Speech in: openai/whisper-small config.json (d_model 768, 12 encoder + 12 decoder layers,
  12 heads, ffn 3072, vocab 51865, 80 mel bins, 1500 source positions = 3000 mel frames = 30 s,
  448 target positions; bos/eos/pad 50257, decoder start 50258).
- Speech out: facebook/mms-tts-eng config.json (VITS: text encoder 6 layers x 192 wide, 2 heads,
  ffn 768 with kernel 3; 4 residual coupling flows of 4 WaveNet layers (kernel 5) on 192
  channels; stochastic duration predictor; HiFi-GAN decoder from 512 channels upsampling
  8 x 8 x 2 x 2 = 256 samples per frame at 16 kHz). Its vocab_size (38) and the fields the
  config.json we could read did not show are VitsConfig's defaults, which transformers documents
  as that checkpoint's architecture; the parameter count they give, 36,284,592, is the Hub's
  36.3M (tests/unit/test_stream_models.py).
- Published sizes: whisper-small 242M (Hub model page; the Whisper paper's table rounds it to
  244M), mms-tts-eng 36.3M (Hub model page), Meta-Llama-3.1-8B 8.03B (Hub model page). The
  siglip-large-patch16-384 Hub page gives 652M for vision + text together, not the vision tower alone (316.3M).
- glasses-tiny is ours, sized for 2 CPU cores, each model keeping its architecture (medians of
  two runs with torch.set_num_threads(2), float32: one frame encoded in 15-17 ms; an 8-token
  transcription of a 2.5 s query in 125-136 ms with its log-mel and encoder; a 12-id sentence
  synthesised, 0.77 s of audio, in 47-62 ms; one llama-tiny decode step in 13-15 ms):
  - vision: SigLIP (16 px patches at 224 px -> 196 patches, MAP head) at a third of
    google/siglip-base-patch16-224's width (256 of 768, head_dim 64 kept) and 4 of its 12
    layers; 10 tokens per frame, as VideoLLM-online.
  - lm: "llama-tiny".
  - asr: openai/whisper-tiny config.json (d_model 384, 4 encoder layers, 6 heads, ffn 1536, the
    multilingual vocabulary of 51865 whose output projection is most of a decode step's cost)
    with two changes. The decoder has 2 layers instead of 4: Distil-Whisper's student keeps its
    teacher's whole encoder and 2 decoder layers (Gandhi et al. 2023, arXiv 2311.00430;
    distil-large-v2, distil-medium.en); with 4, the 8-token transcription took 151 ms. The audio
    window is 3 s instead of 30 s (max_source_positions 150 -> 300 mel frames): Whisper pads
    every query to its window, so a 30 s window would make a 3 s query cost ten times the
    encoder work.
  - tts: mms-tts-eng with its HiFi-GAN at 128 initial channels (HiFi-GAN V2's width, Kong et
    al. 2020, Table 1; V1 has 512) instead of 512; the text encoder, duration predictor and flow
    unchanged.
"""

from __future__ import annotations

from typing import Any

# google/siglip-large-patch16-384 config.json, vision_config (hidden_act gelu_pytorch_tanh, MAP head: the defaults)
SIGLIP_LARGE_384 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 384, "patch_size": 16}

# openai/whisper-small config.json
WHISPER_SMALL = {
    "d_model": 768,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 12,
    "decoder_attention_heads": 12,
    "encoder_ffn_dim": 3072,
    "decoder_ffn_dim": 3072,
    "vocab_size": 51865,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "bos_token_id": 50257,
    "eos_token_id": 50257,
    "pad_token_id": 50257,
    "decoder_start_token_id": 50258,
}

# openai/whisper-tiny config.json (same vocabulary and special tokens as whisper-small)
WHISPER_TINY = {
    **WHISPER_SMALL,
    "d_model": 384,
    "encoder_layers": 4,
    "decoder_layers": 4,
    "encoder_attention_heads": 6,
    "decoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_ffn_dim": 1536,
}

# facebook/mms-tts-eng config.json (the fields that fix the compute; the others are VitsConfig's defaults, which are this checkpoint's)
MMS_TTS_ENG = {
    "vocab_size": 38,
    "hidden_size": 192,
    "num_hidden_layers": 6,
    "num_attention_heads": 2,
    "window_size": 4,
    "ffn_dim": 768,
    "ffn_kernel_size": 3,
    "flow_size": 192,
    "spectrogram_bins": 513,
    "use_stochastic_duration_prediction": True,
    "duration_predictor_num_flows": 4,
    "duration_predictor_filter_channels": 256,
    "prior_encoder_num_flows": 4,
    "prior_encoder_num_wavenet_layers": 4,
    "posterior_encoder_num_wavenet_layers": 16,
    "wavenet_kernel_size": 5,
    "upsample_initial_channel": 512,
    "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4],
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "sampling_rate": 16000,
}

STREAM_PRESETS: dict[str, dict[str, Any]] = {
    "glasses-tiny": {
        "description": "ours, for 2 CPU cores: narrow SigLIP at 224 px, llama-tiny, whisper-tiny (2 decoder layers, 3 s window), mms-tts-eng (narrow HiFi-GAN)",
        "vision": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 4, "image_size": 224, "patch_size": 16},
        "tokens_per_frame": 10,
        "lm": "llama-tiny",
        "asr": {**WHISPER_TINY, "decoder_layers": 2, "max_source_positions": 150},
        "tts": {**MMS_TTS_ENG, "upsample_initial_channel": 128},
        "published_params": {},
    },
    "glasses-8b": {
        "description": "published shapes (VideoLLM-online): SigLIP-L/16 at 384 px, 10 tokens per frame, Llama-3-8B, whisper-small, mms-tts-eng",
        "vision": SIGLIP_LARGE_384,
        "tokens_per_frame": 10,
        "lm": "llama-3.1-8b",
        "asr": WHISPER_SMALL,
        "tts": MMS_TTS_ENG,
        "published_params": {"lm": 8_030_000_000, "asr": 242_000_000, "tts": 36_300_000},
    },
}


def preset_help() -> str:
    """One line per preset, for a Params field's description."""
    return "; ".join(f"{name}: {preset['description']}" for name, preset in STREAM_PRESETS.items())
