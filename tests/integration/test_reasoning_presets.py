"""The reasoning presets: published DeepSeek-R1 distills (their config.json shapes) and reasoning-tiny, served by
llm_serve. Each published one is built shrunk (2 layers, one KV head group) keeping what sets its KV cache and its
kind (GQA ratio, head_dim, vocabulary, RoPE); the KV bytes per token llm_serve declares and the engine's own paged
cache allocation must both equal 2 x layers x kv_heads x head_dim x dtype bytes."""

from __future__ import annotations

import pytest
import yaml

from profiler.run.child import SetupContextImpl
from tests.conftest import ROOT
from workloads.llm_presets import LLM_PRESETS, REASONING_PRESETS

PAGE = 16


def shrunk(preset: str) -> dict:
    """The preset's published fields with 2 layers and 1 KV head (its query heads cut to keep the GQA ratio), head_dim,
    vocabulary, tying and RoPE unchanged."""
    c = dict(LLM_PRESETS[preset])
    heads, kv = c["num_attention_heads"], c["num_key_value_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    ratio = heads // kv
    c.update(num_hidden_layers=2, num_attention_heads=ratio, num_key_value_heads=1, hidden_size=ratio * head_dim, head_dim=head_dim)
    c["intermediate_size"] = 2 * c["hidden_size"]
    return c


def kv_formula(c: dict, dtype_bytes: int) -> int:
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * head_dim * dtype_bytes


def test_the_family_and_the_published_parameter_counts():
    """Meta-device builds at full size: the parameter counts the checkpoints publish (1.78B: Qwen2.5-Math-1.5B's shape
    with untied embeddings; 8.03B: Llama-3.1-8B's)."""
    import torch
    from transformers import AutoModelForCausalLM

    from workloads.llm_presets import build_config

    assert set(REASONING_PRESETS) <= set(LLM_PRESETS)
    expected = {"r1-distill-qwen-1.5b": 1_777_088_000, "r1-distill-llama-8b": 8_030_261_248}
    for preset, count in expected.items():
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(build_config(preset))
        assert sum(p.numel() for p in model.parameters()) == count, preset
        assert model.config.max_position_embeddings == 131072


@pytest.mark.parametrize(
    "preset, dtype, dtype_bytes",
    [("r1-distill-qwen-1.5b", "bfloat16", 2), ("r1-distill-llama-8b", "bfloat16", 2), ("reasoning-tiny", "float32", 4)],
)
def test_llm_serve_declares_and_allocates_the_formulas_kv_bytes_per_token(monkeypatch, tmp_path, preset, dtype, dtype_bytes):
    from transformers import AutoConfig

    import workloads.llm_serve as llm_serve

    fields = shrunk(preset) if preset != "reasoning-tiny" else dict(LLM_PRESETS[preset])
    published = LLM_PRESETS[preset]
    monkeypatch.setattr(
        llm_serve, "build_config", lambda name: AutoConfig.for_model(fields["model_type"], **{k: v for k, v in fields.items() if k != "model_type"})
    )
    workload = llm_serve.LLMServe(llm_serve.LLMServe.Params(preset=preset, dtype=dtype, page_size=PAGE, kv_cache_tokens=256, max_batch_tokens=64))
    ctx = SetupContextImpl("cpu", 0, str(tmp_path))
    try:
        workload.setup(ctx)
        text = workload.model.config.get_text_config(decoder=True)
        k_proj = workload.model.model.layers[0].self_attn.k_proj.weight
    finally:
        workload.teardown()
    facts = ctx.facts
    per_token = kv_formula(fields, dtype_bytes)
    assert facts["kv_bytes_per_token"] == per_token
    assert facts["kv_cache_bytes"] == facts["kv_pages"] * PAGE * per_token  # the engine's pages hold exactly that per token
    # what was kept: the GQA ratio, head_dim, vocabulary, RoPE and positions of the published config
    assert text.num_attention_heads // text.num_key_value_heads == published["num_attention_heads"] // published["num_key_value_heads"]
    head_dim = fields.get("head_dim") or fields["hidden_size"] // fields["num_attention_heads"]
    assert k_proj.shape[0] == text.num_key_value_heads * head_dim  # the K projection the cache stores
    assert text.vocab_size == published["vocab_size"] and facts["max_positions"] == published["max_position_embeddings"]
    assert text.rope_parameters["rope_theta"] == published["rope_parameters"]["rope_theta"]
    assert text.rope_parameters.get("rope_type", "default") == published["rope_parameters"].get("rope_type", "default")
    assert "never stop by themselves" in facts["eos"]


def test_the_reasoning_suite_fits_its_presets_positions():
    """configs/reasoning.yaml: the longest prompt plus the output cap fits reasoning-tiny, and the GPU's cap of 32768 fits the distills."""
    suite = yaml.safe_load((ROOT / "configs" / "reasoning.yaml").read_text())
    (w,) = suite["workloads"]
    sizes = w["load"]["sizes"]
    longest = max(sizes["input"]["uniform"]) + sizes["output"]["lognormal"]["max"]
    assert w["params"]["preset"] == "reasoning-tiny" and longest <= LLM_PRESETS["reasoning-tiny"]["max_position_embeddings"]
    assert w["params"]["kv_cache_tokens"] >= longest * w["load"]["concurrency"] and w["params"]["prefix_caching"] is False
    for preset in ("r1-distill-qwen-1.5b", "r1-distill-llama-8b"):
        assert max(sizes["input"]["uniform"]) + 32768 <= LLM_PRESETS[preset]["max_position_embeddings"]
