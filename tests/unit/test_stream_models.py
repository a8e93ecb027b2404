"""The smart-glasses assistant's models (workloads/stream_models.py, issue 15): shapes of each part on
glasses-tiny, Whisper decoding exactly N tokens, VITS audio of the documented length, and parameter
counts of the published parts (built on the meta device) against their model cards and their formulas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from workloads.stream_models import (
    WHISPER_PROMPT_IDS,
    FrameEncoder,
    SpeechRecognizer,
    SpeechSynthesizer,
    count_parameters,
    part_parameter_counts,
)
from workloads.stream_presets import MMS_TTS_ENG, SIGLIP_LARGE_384, STREAM_PRESETS, WHISPER_SMALL

TINY = STREAM_PRESETS["glasses-tiny"]


@pytest.fixture(scope="module")
def recognizer():
    torch.manual_seed(0)
    return SpeechRecognizer(TINY["asr"])


@pytest.fixture(scope="module")
def synthesizer():
    torch.manual_seed(0)
    return SpeechSynthesizer(TINY["tts"])


def test_presets_import_without_torch_or_transformers():
    code = "import sys, workloads.stream_presets as p; p.preset_help(); assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# ------------------------------------------------------------------ shapes on glasses-tiny


def test_frame_encoder_gives_tokens_per_frame_tokens_in_the_lm_width():
    torch.manual_seed(0)
    encoder = FrameEncoder(TINY["vision"], TINY["tokens_per_frame"], 512)
    pixels = torch.randn(2, 3, encoder.image_size, encoder.image_size)
    tokens = encoder(pixels)
    assert encoder.image_size == 224
    assert tokens.shape == (2, 10, 512) and tokens.dtype == torch.float32
    assert torch.isfinite(tokens).all()


def test_frame_encoder_refuses_a_token_count_that_is_not_one_plus_a_square():
    with pytest.raises(ValueError, match="1 \\+ k\\*k"):
        FrameEncoder(TINY["vision"], 8, 512, device="meta")


def test_whisper_features_are_the_padded_window(recognizer):
    assert (recognizer.n_mels, recognizer.mel_frames) == (80, 300)  # 150 source positions x conv stride 2 = 3 s
    query = (np.random.default_rng(0).standard_normal(int(2.5 * 16_000)) * 0.1).astype(np.float32)
    mel = recognizer.features(query)
    assert mel.shape == (1, 80, 300) and mel.dtype == torch.float32
    assert mel[0, :, -20:].std() < mel[0, :, :200].std()  # the last 0.5 s is Whisper's zero padding
    too_long = np.zeros(10 * 16_000, np.float32)
    assert recognizer.features(too_long).shape == (1, 80, 300)  # cut to the window, as Whisper cuts at 30 s


def test_transcribe_returns_exactly_the_tokens_asked_for_without_end_of_text(recognizer):
    mel = recognizer.features(np.zeros(16_000, np.float32))
    for n in (1, 5):
        ids = recognizer.transcribe(mel, n)
        assert ids.shape == (1, n) and ids.dtype == torch.long
        assert not (ids == recognizer.eos_token_id).any()
    assert torch.equal(recognizer.transcribe(mel, 5)[:, :3], recognizer.transcribe(mel, 3))  # greedy: a prefix of the longer answer
    with pytest.raises(ValueError, match="tokens must be 1..444"):
        recognizer.transcribe(mel, 445)


def test_vits_audio_is_frames_per_token_times_hop_per_id_and_the_predictor_still_runs(synthesizer):
    calls = []
    handle = synthesizer.model.duration_predictor.register_forward_hook(lambda *_: calls.append(1))
    try:
        for n in (1, 12):
            ids = torch.randint(0, synthesizer.vocab_size, (1, n))
            wave = synthesizer.synthesize(ids)
            assert wave.shape == (n * 4 * 256,)  # 4 frames per id x 256 samples per frame (8*8*2*2) = 64 ms per id at 16 kHz
            assert torch.isfinite(wave).all()
            assert torch.equal(wave, synthesizer.synthesize(ids))  # noise scales 0: deterministic
    finally:
        handle.remove()
    assert len(calls) == 4 and synthesizer.samples_per_token == 1024 and synthesizer.sampling_rate == 16_000


# ------------------------------------------------------------------ parameter counts


def siglip_vision_params(d: int, f: int, layers: int, patch: int, image: int) -> int:
    """SigLIP vision tower: patch conv + positions, pre-LN blocks (attention with biases, GELU MLP), post-LN, MAP head."""
    embeddings = 3 * patch * patch * d + d + (image // patch) ** 2 * d
    block = 4 * (d * d + d) + 2 * 2 * d + 2 * d * f + f + d
    head = d + 4 * (d * d + d) + 2 * d + 2 * d * f + f + d  # probe, multi-head attention (in + out projections), LN, MLP
    return embeddings + layers * block + 2 * d + head


def whisper_params(d: int, f: int, enc_layers: int, dec_layers: int, n_mels: int, source: int, target: int, vocab: int) -> int:
    """Whisper: 2 convs + positions + encoder blocks; tokens + positions + decoder blocks (self + cross attention);
    k_proj has no bias; the output projection is the token embedding (tied)."""
    attention = 4 * d * d + 3 * d
    mlp = 2 * d * f + f + d
    encoder = n_mels * d * 3 + d + d * d * 3 + d + source * d + enc_layers * (attention + 2 * 2 * d + mlp) + 2 * d
    decoder = vocab * d + target * d + dec_layers * (2 * attention + 3 * 2 * d + mlp) + 2 * d
    return encoder + decoder


def test_published_parts_built_on_meta_have_the_model_cards_sizes():
    counts = part_parameter_counts(STREAM_PRESETS["glasses-8b"])
    assert counts == {
        "vision": 316_283_904,  # google/siglip-large-patch16-384 vision tower (the card's 652M is vision + text, below)
        "projector": 20_979_712,  # 1024*4096 + 4096 + 4096*4096 + 4096
        "lm": 8_030_261_248,  # meta-llama/Llama-3.1-8B: 8.03B on the Hub model page
        "asr": 241_734_912,  # openai/whisper-small: 242M on the Hub model page (244M in the Whisper paper's table)
        "tts": 36_284_592,  # facebook/mms-tts-eng: 36.3M on the Hub model page
    }
    published = STREAM_PRESETS["glasses-8b"]["published_params"]
    assert round(counts["lm"] / 1e7) == round(published["lm"] / 1e7)
    assert round(counts["asr"] / 1e6) == round(published["asr"] / 1e6)
    assert round(counts["tts"] / 1e5) == round(published["tts"] / 1e5)


def test_siglip_large_with_its_text_tower_is_the_cards_652m():
    from transformers import SiglipConfig, SiglipModel

    text = {key: SIGLIP_LARGE_384[key] for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")}
    with torch.device("meta"):
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=SIGLIP_LARGE_384))  # text vocab 32000, 64 positions: the defaults
    assert count_parameters(model) == 652_478_466  # google/siglip-large-patch16-384: 652M on the Hub model page
    assert count_parameters(model.vision_model) == siglip_vision_params(1024, 4096, 24, 16, 384) == 316_283_904


def test_vision_and_whisper_counts_follow_their_formulas_when_shrunk():
    small_vision = {"hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 64, "patch_size": 16}
    encoder = FrameEncoder(small_vision, 5, 96, device="meta")
    assert count_parameters(encoder.vision) == siglip_vision_params(64, 160, 2, 16, 64)
    assert count_parameters(encoder.projector) == 64 * 96 + 96 + 96 * 96 + 96
    w = WHISPER_SMALL
    args = (w["d_model"], w["encoder_ffn_dim"], w["encoder_layers"], w["decoder_layers"], w["num_mel_bins"], w["max_source_positions"])
    assert whisper_params(*args, w["max_target_positions"], w["vocab_size"]) == 241_734_912
    shrunk = {**w, "d_model": 64, "encoder_ffn_dim": 256, "decoder_ffn_dim": 256, "encoder_layers": 2, "decoder_layers": 1, "max_source_positions": 50}
    shrunk.update(encoder_attention_heads=2, decoder_attention_heads=2)
    assert count_parameters(SpeechRecognizer(shrunk, device="meta").model) == whisper_params(64, 256, 2, 1, 80, 50, 448, 51865)
    assert count_parameters(SpeechRecognizer(TINY["asr"], device="meta").model) == whisper_params(384, 1536, 4, 2, 80, 150, 448, 51865)


def test_glasses_tiny_vits_differs_from_mms_tts_eng_only_in_the_hifigan_width():
    published = SpeechSynthesizer(MMS_TTS_ENG, device="meta").model
    tiny = SpeechSynthesizer(TINY["tts"], device="meta").model
    for part in ("text_encoder", "flow", "duration_predictor", "posterior_encoder"):
        assert count_parameters(getattr(tiny, part)) == count_parameters(getattr(published, part)), part
    assert count_parameters(tiny.decoder) < count_parameters(published.decoder) / 10  # 128 initial channels instead of 512
    assert max(WHISPER_PROMPT_IDS) < TINY["asr"]["vocab_size"]
