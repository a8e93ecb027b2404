"""Real checkpoints under `llm_decode` with `pretrained:`: small models saved from the published
config.json values of well-known checkpoints (shrunk in depth and width, keeping heads, KV heads,
head_dim, window and layer pattern), random weights, in a temporary directory. For each, the
state growth declared per layer from the model's own config equals the measured growth, to the
byte, and equals the value its formula gives (issue 11, cases 1, 2, 4, 5, 7)."""

from __future__ import annotations

import pandas as pd
import pytest

from profiler.characterize.summary import check_state
from tests.integration.test_llm_decode import run_in_process
from workloads.llm_decode import LLMDecode

F32 = 4


def save(tmp_path, model_type: str, **config) -> str:
    """A random-weight model of `model_type` built from `config`, saved as a local checkpoint."""
    import torch
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIG_MAPPING[model_type](**config), dtype=torch.float32)
    path = tmp_path / model_type
    model.save_pretrained(path)
    return str(path)


def decode(tmp_path, path: str, prompt: int, gen: int, batch: int = 1) -> tuple[pd.DataFrame, dict]:
    (tmp_path / "run").mkdir()
    return run_in_process(tmp_path / "run", pretrained=path, prompt_len=prompt, gen_len=gen, batch_size=batch, dtype="float32")


def measured_growth(spans: pd.DataFrame) -> list[float]:
    """Per sequence, from one decode step to the next."""
    steps = spans.loc[spans["phase"] == "decode_step"].sort_values("position")
    return list((steps["state_bytes"] / steps["sequences"]).diff().dropna())


def assert_declared_equals_measured(spans: pd.DataFrame, facts: dict) -> None:
    check = check_state(spans.assign(warmup=False), "decode_step", facts["declared_state"])
    assert check.steps_compared > 0 and check.steps_matching == check.steps_compared, check.first_mismatch


def test_gemma3_1b_layout_sliding_layers_stop_growing_past_the_window(tmp_path):
    """google/gemma-3-1b-pt: 4 heads, 1 KV head, head_dim 256 > hidden / heads, sliding window on 5
    of every 6 layers. Past the window only the global layer grows: 1 x 2 x 1 x 256 x 4 B/token."""
    path = save(
        tmp_path, "gemma3_text", hidden_size=128, intermediate_size=256, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=1,
        head_dim=256, sliding_window=32, query_pre_attn_scalar=256, vocab_size=1024, max_position_embeddings=512,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path, prompt=64, gen=24)
    declared = facts["declared_state"]
    assert [(x.kind, x.bound_tokens, x.count) for x in declared.layers] == [("sliding_window", 32, 5), ("full_attention", None, 1)]
    assert declared.growth_bytes_per_token == 6 * 2 * 1 * 256 * F32 == 12_288  # while every layer grows
    assert declared.growth_past_bounds_bytes_per_token == 1 * 2 * 1 * 256 * F32 == 2_048
    assert declared.shape == "grows" and declared.bound_tokens == 32
    assert set(measured_growth(spans)) == {2_048}
    assert_declared_equals_measured(spans, facts)
    assert facts["model_type"] == "gemma3_text" and facts["attn_implementation"] in ("sdpa", "eager")


def test_mistral_7b_layout_every_layer_windowed_counts_the_storage_behind_the_views(tmp_path):
    """mistralai/Mistral-7B-v0.1: every layer windowed, GQA 4 query heads per KV head. Right after a
    512-token prefill transformers still holds the whole prompt's K/V behind a window-sized view:
    the state is the storage (512 x 4096 B), not the view's 31 tokens (126,976 B)."""
    path = save(
        tmp_path, "mistral", hidden_size=1024, intermediate_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
        head_dim=128, sliding_window=32, vocab_size=1024, max_position_embeddings=1024,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path, prompt=512, gen=6)
    declared = facts["declared_state"]
    assert declared.growth_bytes_per_token == 2 * 2 * 2 * 128 * F32 == 4_096 and declared.growth_past_bounds_bytes_per_token == 0
    assert declared.shape == "bounded"
    prefill = spans.loc[spans["phase"] == "prefill", "state_bytes"].iloc[0]
    assert prefill == 512 * 4_096 == 2_097_152
    assert set(measured_growth(spans)) == {0}
    assert spans.loc[spans["phase"] == "decode_step", "state_bytes"].iloc[-1] == 32 * 4_096  # the window's tokens
    assert_declared_equals_measured(spans, facts)


def test_deepseek_v2_lite_layout_caches_the_latent(tmp_path):
    """deepseek-ai/DeepSeek-V2-Lite: multi-head latent attention (kv_lora_rank 512, qk_rope_head_dim
    64, 16 heads): the cache grows L x (512 + 64) x 4 B/token, not 2 x heads x head_dim."""
    path = save(
        tmp_path, "deepseek_v2", hidden_size=128, intermediate_size=256, moe_intermediate_size=64, num_hidden_layers=2, num_attention_heads=16,
        num_key_value_heads=16, kv_lora_rank=512, q_lora_rank=None, qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128,
        n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1, vocab_size=1024, max_position_embeddings=512,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path, prompt=16, gen=6)
    declared = facts["declared_state"]
    assert [(x.kind, x.bytes_per_token, x.count) for x in declared.layers] == [("latent_attention", (512 + 64) * F32, 2)]
    assert declared.growth_bytes_per_token == 4_608 and set(measured_growth(spans)) == {4_608}
    assert_declared_equals_measured(spans, facts)


def test_gpt2_layout_without_kv_head_count(tmp_path):
    """openai-community/gpt2: no num_key_value_heads in its config (multi-head: n_head KV heads)."""
    path = save(tmp_path, "gpt2", n_layer=2, n_head=4, n_embd=64, n_positions=256, vocab_size=1024)
    spans, facts = decode(tmp_path, path, prompt=16, gen=6, batch=2)
    assert facts["declared_state"].growth_bytes_per_token == 2 * 2 * 4 * 16 * F32 == 1_024
    assert set(measured_growth(spans)) == {1_024}  # per sequence: the batch of 2 grows twice as fast
    assert_declared_equals_measured(spans, facts)


def test_gemma3_4b_layout_decodes_the_text_model_of_a_multimodal_checkpoint(tmp_path):
    """google/gemma-3-4b-pt: a `gemma3` config with a text_config and a vision_config (every Gemma-3
    of 4B and up). llm_decode decodes its text model; the declared state is the text model's."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    torch.manual_seed(0)
    config = Gemma3Config(
        text_config=dict(
            hidden_size=128, intermediate_size=256, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
            sliding_window=32, query_pre_attn_scalar=256, vocab_size=1024, max_position_embeddings=512,
        ),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
        mm_tokens_per_image=4,
    )  # fmt: skip
    path = tmp_path / "gemma3"
    Gemma3ForConditionalGeneration(config).save_pretrained(path)
    spans, facts = decode(tmp_path, str(path), prompt=40, gen=6)
    assert facts["model_type"] == "gemma3_text" and facts["model_class"] == "Gemma3ForConditionalGeneration"
    assert facts["declared_state"].growth_past_bounds_bytes_per_token == 1 * 2 * 4 * 256 * F32
    assert set(measured_growth(spans)) == {8_192}
    assert_declared_equals_measured(spans, facts)


def test_a_model_transformers_cannot_decode_is_refused_in_one_line(tmp_path):
    """A vision-only checkpoint (google/vit-base-patch16-224 layout): setup refuses it naming its model_type."""
    from transformers import ViTConfig, ViTModel

    from profiler.run.child import SetupContextImpl

    path = tmp_path / "vit"
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)).save_pretrained(path)
    workload = LLMDecode(LLMDecode.Params(pretrained=str(path), prompt_len=4, gen_len=2))
    with pytest.raises(ValueError, match="model_type 'vit'") as info:
        workload.setup(SetupContextImpl("cpu", 0, str(tmp_path)))
    assert "\n" not in str(info.value)


def test_llama4_scout_layout_chunked_attention_stops_growing_at_the_chunk(tmp_path):
    """meta-llama/Llama-4-Scout-17B-16E: three chunked-attention layers (attention_chunk_size) for
    every global one; past the chunk only the global layer grows: 2 x kv_heads x head_dim x 4."""
    path = save(
        tmp_path, "llama4_text", hidden_size=128, intermediate_size=256, intermediate_size_mlp=256, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, attention_chunk_size=16, no_rope_layers=[1, 1, 1, 0], num_local_experts=2, num_experts_per_tok=1,
        interleave_moe_layer_step=1, vocab_size=1024, max_position_embeddings=512,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path, prompt=24, gen=6)
    declared = facts["declared_state"]
    assert [(x.kind, x.bound_tokens, x.count) for x in declared.layers] == [("chunked_attention", 16, 3), ("full_attention", None, 1)]
    assert declared.growth_past_bounds_bytes_per_token == 2 * 2 * 32 * F32 == 512 and set(measured_growth(spans)) == {512}
    assert_declared_equals_measured(spans, facts)


def test_gpt_oss_layout_alternating_sliding_and_global_layers(tmp_path):
    """openai/gpt-oss-20b: sliding (128-token window) and global attention layers alternate."""
    path = save(
        tmp_path, "gpt_oss", hidden_size=128, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, sliding_window=16, num_local_experts=4, num_experts_per_tok=2, vocab_size=1024, max_position_embeddings=512,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path, prompt=24, gen=6)
    declared = facts["declared_state"]
    assert declared.growth_bytes_per_token == 2 * 512 and declared.growth_past_bounds_bytes_per_token == 512 and declared.bound_tokens == 16
    assert set(measured_growth(spans)) == {512}
    assert_declared_equals_measured(spans, facts)
