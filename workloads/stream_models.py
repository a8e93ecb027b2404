"""The four models of the smart-glasses assistant (issue 15), built from transformers configs with random weights.

Imported only from a workload's setup (it imports torch and transformers). The shapes come from
workloads/stream_presets.py; what each class adds to the transformers model is the glue a real
assistant runs around it, with the source of each choice:
- FrameEncoder: SigLIP vision tower -> VideoLLM-online's 10 tokens per frame (the MAP-pooled
  token + the patch grid average-pooled to 3 x 3) -> its Linear-GELU-Linear connector into the
  language model's width;
- SpeechRecognizer: Whisper's log-mel front end (transformers' WhisperFeatureExtractor, built
  from arguments) and greedy decoding with the KV cache, exactly `tokens` tokens;
- SpeechSynthesizer: VITS with its durations fixed at a trained model's rate (random weights
  predict durations that vary with the seed); the text encoder, the duration predictor, the
  flow and the HiFi-GAN decoder all run as they would with trained weights;
- build_language_model: the causal LM of an llm_presets name, as llm_decode builds it.
Everything is in eval mode; float32 on the CPU unless `dtype` and `device` say otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .decode_loop import build_causal_lm, cache_argument
from .llm_presets import build_config

SAMPLING_RATE = 16_000  # Whisper's and mms-tts-eng's audio rate (Hz)
HOP_SAMPLES = 160  # Whisper's mel hop: 10 ms at 16 kHz
N_FFT = 400  # Whisper's STFT window: 25 ms at 16 kHz
# Whisper's forced decoder prompt in the multilingual vocabulary (openai/whisper-small generation_config.json):
# <|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|>
WHISPER_PROMPT_IDS = (50258, 50259, 50359, 50363)
# mms-tts-eng speaks about 4 spectrogram frames per input id: in transformers' VitsModel docstring example,
# "Hello - my dog is cute" (43-45 ids: the tokenizer puts a blank id around every character) gives 45824 samples = 179 frames
VITS_FRAMES_PER_TOKEN = 4


class FrameEncoder(nn.Module):
    """One camera frame -> `tokens_per_frame` tokens in the language model's width (VideoLLM-online "live1+").

    SiglipVisionModel over the frame's patches; the token from SigLIP's attention-pooling head
    (`pooler_output`, what VideoLLM-online calls the CLS token) followed by the patch grid
    average-pooled to k x k (adaptive_avg_pool2d, as videollm-online models/vision_live.py);
    then Linear(vision width, D) - GELU - Linear(D, D), its connector (LLaVA's projector).
    `tokens_per_frame` must be 1 + k*k: 10 is VideoLLM-online's 1 + 3 x 3.
    """

    def __init__(
        self, vision_kwargs: dict[str, Any], tokens_per_frame: int, lm_hidden: int, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__()
        from transformers import SiglipVisionConfig, SiglipVisionModel

        config = SiglipVisionConfig(**vision_kwargs)
        self.side = config.image_size // config.patch_size  # patches per side of the grid
        self.pool = math.isqrt(max(tokens_per_frame - 1, 0))
        if tokens_per_frame < 2 or self.pool**2 != tokens_per_frame - 1 or self.pool > self.side:
            raise ValueError(f"tokens_per_frame {tokens_per_frame} must be 1 + k*k with k <= {self.side} (1 pooled token + a k x k grid of the patches)")
        if not config.vision_use_head:
            raise ValueError("the frame encoder needs SigLIP's attention-pooling head (vision_use_head: true)")
        self.tokens_per_frame = tokens_per_frame
        self._image_size = config.image_size
        with torch.device(device):
            self.vision = SiglipVisionModel(config)
            self.projector = nn.Sequential(nn.Linear(config.hidden_size, lm_hidden), nn.GELU(), nn.Linear(lm_hidden, lm_hidden))
        self.to(dtype).eval()

    @property
    def image_size(self) -> int:
        """Side of the square frame the tower takes, in pixels."""
        return self._image_size

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, S, S] (normalised, the model's dtype) -> tokens [B, tokens_per_frame, lm_hidden]."""
        out = self.vision(pixel_values=pixels)
        patches = out.last_hidden_state  # [B, side*side, Dv]
        batch, _, width = patches.shape
        grid = patches.transpose(1, 2).reshape(batch, width, self.side, self.side)  # [B, Dv, side, side]
        pooled = nn.functional.adaptive_avg_pool2d(grid, self.pool).flatten(2).transpose(1, 2)  # [B, k*k, Dv]
        tokens = torch.cat([out.pooler_output[:, None], pooled], dim=1)  # [B, 1 + k*k, Dv]
        return self.projector(tokens)  # [B, T, D]


class SpeechRecognizer(nn.Module):
    """Whisper (WhisperForConditionalGeneration from WhisperConfig): 16 kHz audio -> log-mel -> `tokens` text tokens.

    Whisper's encoder takes a fixed window, 2 x max_source_positions mel frames (3000 = 30 s for
    the published models): every query is padded with silence to it, as Whisper does, so the
    encoder's cost is the window's, not the query's. Decoding is greedy with the KV cache after
    Whisper's 4-token prompt (WHISPER_PROMPT_IDS); the cross-attention keys and values are computed
    once, at the first step. Random weights never predict a useful end of text, so end-of-text is
    masked and decoding runs exactly `tokens` steps, as a trained model's answer of that length would.
    """

    def __init__(self, asr_kwargs: dict[str, Any], *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> None:
        super().__init__()
        from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

        config = WhisperConfig(**asr_kwargs)
        if max(WHISPER_PROMPT_IDS) >= config.vocab_size:
            raise ValueError(f"Whisper's prompt ids {WHISPER_PROMPT_IDS} need the multilingual vocabulary (vocab_size 51865), got {config.vocab_size}")
        with torch.device(device):
            self.model = WhisperForConditionalGeneration(config)
        self.model.to(dtype).eval()
        self.n_mels = config.num_mel_bins
        self.mel_frames = 2 * config.max_source_positions  # the encoder's conv2 has stride 2
        self.window_samples = self.mel_frames * HOP_SAMPLES
        self.max_tokens = config.max_target_positions - len(WHISPER_PROMPT_IDS)
        self.eos_token_id = config.eos_token_id
        # built from arguments (no download); the call pads or cuts the audio to the window explicitly
        self.extractor = WhisperFeatureExtractor(
            feature_size=self.n_mels,
            sampling_rate=SAMPLING_RATE,
            hop_length=HOP_SAMPLES,
            n_fft=N_FFT,
            chunk_length=math.ceil(self.window_samples / SAMPLING_RATE),
        )

    def features(self, audio: np.ndarray) -> torch.Tensor:
        """audio [samples] float32 at 16 kHz -> log-mel [1, n_mels, mel_frames] on the model's device and dtype.

        Whisper's log-mel (25 ms Hann window, 10 ms hop, Slaney mel filters to 8 kHz, log10 clamped
        to 8 below the maximum, scaled by (x + 4) / 4), after padding with zeros (or cutting) to the
        window; computed on the CPU (torch.stft), then moved.
        """
        mel = self.extractor(
            audio, sampling_rate=SAMPLING_RATE, max_length=self.window_samples, padding="max_length", truncation=True, return_tensors="pt"
        ).input_features  # [1, n_mels, mel_frames]
        weight = self.model.proj_out.weight
        return mel.to(weight.device, weight.dtype)

    @torch.inference_mode()
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """log-mel [1, n_mels, mel_frames] -> encoder states [1, mel_frames / 2, d_model]."""
        return self.model.model.encoder(input_features=features).last_hidden_state

    @torch.inference_mode()
    def decode(self, encoded: torch.Tensor, tokens: int) -> torch.Tensor:
        """encoder states [1, T, d_model] -> greedy tokens [1, tokens] (LongTensor); the prompt is not included."""
        from transformers import DynamicCache, EncoderDecoderCache

        if not 1 <= tokens <= self.max_tokens:
            raise ValueError(
                f"tokens must be 1..{self.max_tokens} (Whisper's {self.max_tokens + len(WHISPER_PROMPT_IDS)} target positions less its prompt), got {tokens}"
            )
        decoder = self.model.model.decoder
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())  # self-attention, cross-attention
        cache_kw = {cache_argument(type(decoder)): cache}
        ids = torch.tensor([WHISPER_PROMPT_IDS], device=encoded.device)  # [1, 4]
        out = torch.empty(1, tokens, dtype=torch.long, device=encoded.device)
        for i in range(tokens):
            hidden = decoder(input_ids=ids, encoder_hidden_states=encoded, **cache_kw, use_cache=True).last_hidden_state  # [1, S, d]
            logits = self.model.proj_out(hidden[:, -1])  # [1, V]
            logits[:, self.eos_token_id] = -math.inf
            ids = logits.argmax(-1, keepdim=True)  # [1, 1]
            out[:, i] = ids[:, 0]
        return out

    def transcribe(self, features: torch.Tensor, tokens: int) -> torch.Tensor:
        """log-mel [1, n_mels, mel_frames] -> exactly `tokens` greedy tokens [1, tokens] (encode, then decode)."""
        return self.decode(self.encode(features), tokens)


class SpeechSynthesizer(nn.Module):
    """VITS (VitsModel from VitsConfig): input ids [1, n] -> waveform at `sampling_rate`.

    What is replaced, and why: VITS predicts each input id's duration (spectrogram frames) with
    its stochastic duration predictor; random weights predict durations set by the seed and the
    noise of each call (12 to 48 frames for the same 12 ids over four seeds of mms-tts-eng's
    shapes), so the audio length, and with it the flow's and decoder's work, would be noise
    rather than speech's. A forward hook on `duration_predictor` keeps the predictor running (its
    work is measured) and replaces its output, the log-durations, by
    log(frames_per_token - 0.5), so that VitsModel.forward's ceil(exp(.)) gives exactly
    `frames_per_token` frames per id (default 4, mms-tts-eng's rate: VITS_FRAMES_PER_TOKEN). The
    noise scales are set to 0 and the speaking rate to 1, so the output is deterministic; the
    random draws and the work are unchanged. The text encoder, the flow and the HiFi-GAN decoder
    run as they would with trained weights: the waveform has `n x frames_per_token x hop` samples,
    hop = the product of the decoder's upsample rates (256 for mms-tts-eng: 16 ms at 16 kHz).
    Input ids must be below the config's vocab_size (38 for mms-tts-eng: characters and a blank).
    """

    def __init__(
        self,
        tts_kwargs: dict[str, Any],
        frames_per_token: int = VITS_FRAMES_PER_TOKEN,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        from transformers import VitsConfig, VitsModel

        if frames_per_token < 1:
            raise ValueError(f"frames_per_token must be at least 1, got {frames_per_token}")
        config = VitsConfig(**tts_kwargs)
        with torch.device(device):
            self.model = VitsModel(config)
        self.model.to(dtype).eval()
        self.model.noise_scale = 0.0
        self.model.noise_scale_duration = 0.0
        self.model.speaking_rate = 1.0
        self.frames_per_token = frames_per_token
        self.vocab_size = config.vocab_size
        self.sampling_rate = config.sampling_rate
        self.hop_samples = int(np.prod(config.upsample_rates))  # waveform samples per spectrogram frame
        self.model.duration_predictor.register_forward_hook(self._fixed_log_durations)

    def _fixed_log_durations(self, module: nn.Module, args: Any, log_durations: torch.Tensor) -> torch.Tensor:
        """The duration predictor's output [B, 1, n] replaced: every id lasts `frames_per_token` frames."""
        return torch.full_like(log_durations, math.log(self.frames_per_token - 0.5))

    @property
    def samples_per_token(self) -> int:
        """Waveform samples each input id becomes (frames_per_token x hop)."""
        return self.frames_per_token * self.hop_samples

    @torch.inference_mode()
    def synthesize(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input ids [1, n] (< vocab_size) -> waveform [n x samples_per_token] at `sampling_rate`."""
        return self.model(input_ids=input_ids).waveform[0]


def build_language_model(lm_preset: str, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Any:
    """The causal LM of an llm_presets name with random weights, in eval mode (as llm_decode builds it)."""
    return build_causal_lm(build_config(lm_preset), None, dtype, str(device))


def count_parameters(module: nn.Module) -> int:
    """Parameters of `module`, each tied tensor once (Whisper's output projection is its token embedding)."""
    return sum(p.numel() for p in module.parameters())


def part_parameter_counts(preset: dict[str, Any]) -> dict[str, int]:
    """{vision, projector, lm, asr, tts} -> parameter count of a STREAM_PRESETS entry, built on the meta device.

    No memory and no time (under a second for glasses-8b). `tts` is the whole VitsModel, as its
    checkpoint holds it, with the posterior encoder that only training uses.
    """
    from transformers import AutoModelForCausalLM

    lm_config = build_config(preset["lm"])
    encoder = FrameEncoder(preset["vision"], preset["tokens_per_frame"], lm_config.hidden_size, device="meta")
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(lm_config)
    return {
        "vision": count_parameters(encoder.vision),
        "projector": count_parameters(encoder.projector),
        "lm": count_parameters(lm),
        "asr": count_parameters(SpeechRecognizer(preset["asr"], device="meta").model),
        "tts": count_parameters(SpeechSynthesizer(preset["tts"], device="meta").model),
    }
