"""SSM and hybrid families under the `mamba` workload with `pretrained:` (issue 11, cases 3 and 6,
and the SSM/hybrid requirement): for each family a small model saved from the published
config.json values of a real checkpoint (shrunk in width and depth, keeping its layer pattern,
head ratios, state size, conv kernel and MoE), random weights, in a temporary directory, decoded
in process for one iteration. Each test checks that it runs, that the growth declared per layer
from the model's own config equals the measured growth step by step (prefill to the first
decode step included), the growth's value from its formula (0 for a pure SSM, the attention
layers' K/V for a hybrid), the constant state measured against its formula, and the state's
shape. float32 on CPU: 4 bytes per element."""

from __future__ import annotations

import pandas as pd
import pytest

from profiler.characterize.summary import check_state
from profiler.plugin import Trait
from profiler.run.child import SetupContextImpl
from tests.integration.test_llm_decode import run_with_recorder
from workloads.mamba import Mamba
from workloads.mamba_presets import ANALYTIC_SCAN

F32 = 4
PROMPT, GEN = 16, 6


def save(tmp_path, model_type: str, **config) -> str:
    """A random-weight model of `model_type` built from `config`, saved as a local checkpoint."""
    import torch
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIG_MAPPING[model_type](vocab_size=256, **config), dtype=torch.float32)
    path = tmp_path / model_type
    model.save_pretrained(path)
    return str(path)


def decode(tmp_path, path: str, prompt: int = PROMPT, gen: int = GEN, **params) -> tuple[pd.DataFrame, dict]:
    (tmp_path / "run").mkdir()
    workload = Mamba(Mamba.Params(pretrained=path, prompt_len=prompt, gen_len=gen, dtype="float32", **params))
    return run_with_recorder(tmp_path / "run", workload)


def steps(spans: pd.DataFrame) -> pd.DataFrame:
    """Prefill and decode steps in context order, with the state per sequence."""
    s = spans.loc[spans["phase"].isin(["prefill", "decode_step"])].sort_values("position")
    return s.assign(per_sequence=s["state_bytes"] / s["sequences"])


def check(spans: pd.DataFrame, facts: dict, growth: int, constant: int, shape: str) -> None:
    """The run decoded every token; declared growth == measured growth at every step (prefill to the
    first decode step too) == `growth`; the state minus the attention K/V == `constant`; shape."""
    s = steps(spans)
    assert list(s["phase"]) == ["prefill"] + ["decode_step"] * (GEN - 1)
    assert list(s["position"]) == list(range(PROMPT, PROMPT + GEN))
    declared = facts["declared_state"]
    assert declared.growth_bytes_per_token == declared.growth_past_bounds_bytes_per_token == growth
    assert list(s["per_sequence"].diff().dropna()) == [growth] * (GEN - 1)
    check_ = check_state(spans.assign(warmup=False), "decode_step", declared)
    assert check_.steps_compared == GEN - 2 and check_.steps_matching == check_.steps_compared, check_.first_mismatch
    assert (s["per_sequence"] - growth * s["position"] == constant).all()  # the recurrent state: constant from prefill on
    assert facts["state_bytes_per_seq" if growth == 0 else "recurrent_state_bytes_per_seq"] == constant
    assert declared.shape == shape
    assert facts["kernel_path_fused"] is False and facts["kernel_path"].startswith("SLOW PyTorch reference path")
    assert any("falling back to its reference PyTorch implementation" in m for m in facts["kernel_fallbacks"])  # transformers said so
    if facts["model_type"] not in ANALYTIC_SCAN:  # no formula invented: the facts say what is not counted
        assert (s["analytic_flops"] == 0).all() and facts["analytic_flops"].startswith("none: ")


def mamba1(layers: int, d_inner: int, d_conv: int, d_state: int) -> int:
    """Mamba-1 state per sequence (mamba_ssm allocate_inference_cache): conv d_inner x d_conv, SSM d_inner x d_state."""
    return layers * (d_inner * d_conv + d_inner * d_state) * F32


def mamba2(layers: int, d_inner: int, heads: int, head_dim: int, groups: int, d_state: int, d_conv: int) -> int:
    """Mamba-2 state per sequence: conv (d_inner + 2 x ngroups x d_state) x d_conv, SSM nheads x headdim x d_state."""
    return layers * ((d_inner + 2 * groups * d_state) * d_conv + heads * head_dim * d_state) * F32


def kv(layers: int, kv_heads: int, head_dim: int) -> int:
    """K/V bytes one token adds per sequence: 2 x kv_heads x head_dim x 4 per attention layer."""
    return layers * 2 * kv_heads * head_dim * F32


def test_mamba_130m_layout(tmp_path):
    """state-spaces/mamba-130m-hf: d_state 16, d_conv 4, expand 2 (hidden 768 -> 64, 24 layers -> 2). Constant state."""
    path = save(tmp_path, "mamba", hidden_size=64, num_hidden_layers=2, state_size=16, conv_kernel=4, expand=2)
    spans, facts = decode(tmp_path, path)
    check(spans, facts, growth=0, constant=mamba1(2, 128, 4, 16), shape="constant")
    assert facts["model_type"] == "mamba" and "7*B*L*d_inner*d_state" in facts["analytic_flops"]
    assert Mamba.declaration(Mamba.Params(pretrained=path)).traits == {Trait.AUTOREGRESSIVE, Trait.CONSTANT_STATE}


def test_mamba_codestral_layout_mamba2(tmp_path):
    """mistralai/Mamba-Codestral-7B-v0.1 (mamba2): headdim 64, d_state 128, ngroups 8, d_conv 4, expand 2
    (hidden 4096 -> 256, so 8 heads instead of 128; 64 layers -> 2). Constant state."""
    path = save(
        tmp_path, "mamba2", hidden_size=256, num_hidden_layers=2, num_heads=8, head_dim=64, state_size=128, n_groups=8, conv_kernel=4, expand=2,
        chunk_size=256,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path)
    check(spans, facts, growth=0, constant=mamba2(2, 512, 8, 64, 8, 128, 4), shape="constant")
    assert facts["state_bytes_per_seq"] == 606_208


def test_falcon_mamba_7b_layout(tmp_path):
    """tiiuae/falcon-mamba-7b (falcon_mamba, the Mamba-1 design with RMS-normed B, C, dt): d_state 16,
    d_conv 4, expand 2 (hidden 4096 -> 256, 64 layers -> 4). L x (d_inner x d_conv + d_inner x d_state)
    x 4 = 4 x (512 x 4 + 512 x 16) x 4 = 163,840 B, constant (issue 11, case 6)."""
    path = save(tmp_path, "falcon_mamba", hidden_size=256, num_hidden_layers=4, state_size=16, conv_kernel=4, expand=2, mixer_rms_eps=1e-6)
    spans, facts = decode(tmp_path, path)
    check(spans, facts, growth=0, constant=163_840, shape="constant")
    assert mamba1(4, 512, 4, 16) == 163_840 and facts["state_bytes_per_seq"] == 163_840


def test_jamba_v01_layout_one_attention_layer_in_eight(tmp_path):
    """ai21labs/Jamba-v0.1: attention in 1 layer of 8 (attn_layer_period 8, offset 4), Mamba-1 in the
    rest (d_state 16, d_conv 4, expand 2), MoE every other layer (expert period 2, offset 1), 32 heads
    with 8 KV heads. Hidden 4096 -> 256 (head_dim 8), 32 layers -> 8, 16 experts -> 4. The attention
    layer grows 1 x 2 x 8 x 8 x 4 = 512 B/token (issue 11, case 3); 7 Mamba layers stay constant."""
    path = save(
        tmp_path, "jamba", hidden_size=256, intermediate_size=128, num_hidden_layers=8, num_attention_heads=32, num_key_value_heads=8,
        attn_layer_period=8, attn_layer_offset=4, expert_layer_period=2, expert_layer_offset=1, num_experts=4, num_experts_per_tok=2,
        mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=16,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path, batch_size=2)  # per sequence: the batch of 2 holds twice the bytes
    assert [(x.kind, x.count) for x in facts["declared_state"].layers] == [("recurrent", 4), ("full_attention", 1), ("recurrent", 3)]
    assert (steps(spans)["sequences"] == 2).all()
    check(spans, facts, growth=kv(1, 8, 8), constant=mamba1(7, 512, 4, 16), shape="hybrid")
    assert kv(1, 8, 8) == 512
    assert Mamba.declaration(Mamba.Params(pretrained=path)).traits == {Trait.AUTOREGRESSIVE, Trait.KV_CACHE}  # its state grows with the context
    assert "no analytic formula for jamba" in facts["analytic_flops"]


def test_bamba_9b_layout(tmp_path):
    """ibm-ai-platform/Bamba-9B: Mamba-2 (headdim 64, d_state 128, ngroups 1, d_conv 4, expand 2) with
    attention at layers 9, 18, 27 of 32, 32 heads with 8 KV heads. Hidden 4096 -> 128 (4 heads, 1 KV
    head, head_dim 32), 3 layers with attention in the middle."""
    path = save(
        tmp_path, "bamba", hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
        attn_layer_indices=[1], mamba_n_heads=4, mamba_d_head=64, mamba_n_groups=1, mamba_d_state=128, mamba_d_conv=4, mamba_expand=2,
        mamba_chunk_size=256,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path)
    check(spans, facts, growth=kv(1, 1, 32), constant=mamba2(2, 256, 4, 64, 1, 128, 4), shape="hybrid")


def test_zamba2_1_2b_layout_shared_attention_on_a_mamba_layer(tmp_path):
    """Zyphra/Zamba2-1.2B: Mamba-2 layers (headdim 64, d_state 64, ngroups 1, d_conv 4, expand 2), every
    sixth a hybrid layer that adds the shared attention block (as many KV heads as heads; attention
    over the concatenated input and embedding, head_dim 2 x hidden / heads) beside its Mamba state.
    Hidden 2048 -> 64, 3 layers (mamba, mamba, hybrid)."""
    path = save(
        tmp_path, "zamba2", hidden_size=64, num_hidden_layers=3, layers_block_type=["mamba", "mamba", "hybrid"], num_attention_heads=4,
        num_key_value_heads=4, mamba_d_state=64, mamba_d_conv=4, mamba_expand=2, mamba_headdim=64, mamba_ngroups=1, n_mamba_heads=2,
        num_mem_blocks=1, use_shared_attention_adapter=False, adapter_rank=8, use_mem_rope=True, intermediate_size=128,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path)
    assert [(x.kind, x.with_recurrent, x.count) for x in facts["declared_state"].layers] == [("recurrent", False, 2), ("full_attention", True, 1)]
    check(spans, facts, growth=kv(1, 4, 2 * 64 // 4), constant=mamba2(3, 128, 2, 64, 1, 64, 4), shape="hybrid")


def test_falcon_h1_05b_layout_attention_and_mamba_in_every_layer(tmp_path):
    """tiiuae/Falcon-H1-0.5B-Base: attention and Mamba-2 side by side in every layer, 8 heads with 2 KV
    heads of head_dim 64 (not hidden / heads), the SSM width mamba_d_ssm = 1.5 x hidden apart from
    expand (1536 at hidden 1024), headdim 64, d_state 128, d_conv 4. Hidden 1024 -> 128 (d_ssm 192,
    3 SSM heads), 36 layers -> 2. Every layer's K/V grows: the state grows with the context."""
    path = save(
        tmp_path, "falcon_h1", hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
        head_dim=64, mamba_d_ssm=192, mamba_n_heads=3, mamba_d_head=64, mamba_n_groups=1, mamba_d_state=128, mamba_d_conv=4, mamba_expand=2,
        mamba_chunk_size=128,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path)
    check(spans, facts, growth=kv(2, 2, 64), constant=mamba2(2, 192, 3, 64, 1, 128, 4), shape="grows")


def test_nemotron_h_8b_layout_mamba_attention_and_mlp_layers(tmp_path):
    """nvidia/Nemotron-H-8B-Base-8K: the pattern M-M-M-M*-...: Mamba-2 (headdim 64, d_state 128, ngroups
    8, d_conv 4), attention (32 heads, 8 KV heads) and MLP-only layers without a cache. Hidden 4096 ->
    256 (8 SSM heads, 8 heads with 2 KV heads of head_dim 32), 52 layers -> the pattern M-M*-."""
    path = save(
        tmp_path, "nemotron_h", hidden_size=256, intermediate_size=512, hybrid_override_pattern="M-M*-", num_attention_heads=8,
        num_key_value_heads=2, head_dim=32, mamba_num_heads=8, mamba_head_dim=64, ssm_state_size=128, n_groups=8, conv_kernel=4, expand=2,
        chunk_size=128,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path)
    kinds = [(x.kind, x.count) for x in facts["declared_state"].layers]
    assert kinds == [("recurrent", 1), ("none", 1), ("recurrent", 1), ("full_attention", 1), ("none", 1)]
    check(spans, facts, growth=kv(1, 2, 32), constant=mamba2(2, 512, 8, 64, 8, 128, 4), shape="hybrid")


def test_granite_4_tiny_preview_layout(tmp_path):
    """ibm-granite/granite-4.0-tiny-preview (granitemoehybrid): Mamba-2 layers (headdim 64, d_state 128,
    ngroups 1, d_conv 4, expand 2) with a few attention layers (12 heads, 4 KV heads, no positional
    embedding), MoE with a shared expert. Hidden 1536 -> 96 (head_dim 8, 3 SSM heads), 3 layers."""
    path = save(
        tmp_path, "granitemoehybrid", hidden_size=96, intermediate_size=32, shared_intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=12, num_key_value_heads=4, layer_types=["mamba", "attention", "mamba"], num_local_experts=4,
        num_experts_per_tok=2, mamba_n_heads=3, mamba_d_head=64, mamba_n_groups=1, mamba_d_state=128, mamba_d_conv=4, mamba_expand=2,
        mamba_chunk_size=256, position_embedding_type="nope",
    )  # fmt: skip
    spans, facts = decode(tmp_path, path)
    check(spans, facts, growth=kv(1, 4, 8), constant=mamba2(2, 192, 3, 64, 1, 128, 4), shape="hybrid")


def test_lfm2_350m_layout_short_convolutions(tmp_path):
    """LiquidAI/LFM2-350M: short gated convolutions (conv_L_cache 3, no SSM state) in 10 of 16 layers,
    attention (16 heads, 8 KV heads) in the rest. Hidden 1024 -> 64 (4 heads, 2 KV heads, head_dim 16),
    3 layers (conv, conv, attention). The conv state: hidden x L_cache per conv layer."""
    path = save(
        tmp_path, "lfm2", hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        conv_L_cache=3, layer_types=["conv", "conv", "full_attention"],
    )  # fmt: skip
    spans, facts = decode(tmp_path, path)
    check(spans, facts, growth=kv(1, 2, 16), constant=2 * 64 * 3 * F32, shape="hybrid")
    assert facts["kernel_packages"] == {"causal_conv1d": False}


def test_qwen3_next_layout_gated_deltanet(tmp_path):
    """Qwen/Qwen3-Next-80B-A3B-Instruct: gated DeltaNet in 3 of every 4 layers (16 key heads, 32 value
    heads of dim 128, conv 4), full attention in the fourth (16 heads, 2 KV heads, head_dim 256), MoE.
    Hidden 2048 -> 64, 8:1 heads kept (8 heads, 1 KV head), 2 key / 4 value heads of 128, 48 layers -> 4.
    State: conv (2 x 2 x 128 + 4 x 128) x 4 and 4 x 128 x 128 per DeltaNet layer."""
    path = save(
        tmp_path, "qwen3_next", hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=1,
        head_dim=256, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=128, linear_value_head_dim=128,
        linear_conv_kernel_dim=4, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32,
    )  # fmt: skip
    spans, facts = decode(tmp_path, path)
    constant = 3 * ((2 * 2 * 128 + 4 * 128) * 4 + 4 * 128 * 128) * F32
    check(spans, facts, growth=kv(1, 1, 256), constant=constant, shape="hybrid")
    assert facts["kernel_packages"] == {"fla": False, "causal_conv1d": False}
    assert facts["analytic_flops"].startswith("none: the gated delta rule recurrence of 3 layers is not counted")
    assert facts["analytic_flops"].endswith("no analytic formula for qwen3_next")


def test_bfloat16_keeps_the_ssm_state_in_float32(tmp_path):
    """The PyTorch path computes the SSM state in float32 and transformers caches it so: a bfloat16
    Mamba-2 keeps its conv window in bfloat16 (2 B) and its SSM state in float32 (4 B)."""
    path = save(tmp_path, "mamba2", hidden_size=128, num_hidden_layers=2, num_heads=4, head_dim=64, state_size=128, n_groups=1, conv_kernel=4, expand=2)
    (tmp_path / "run").mkdir()
    spans, facts = run_with_recorder(tmp_path / "run", Mamba(Mamba.Params(pretrained=path, prompt_len=PROMPT, gen_len=3, dtype="bfloat16")))
    expected = 2 * ((256 + 2 * 128) * 4 * 2 + 4 * 64 * 128 * 4)
    assert facts["state_dtypes"] == {"conv": "bfloat16", "ssm": "float32"} and facts["state_bytes_per_seq"] == expected
    assert (steps(spans)["per_sequence"] == expected).all()


@pytest.mark.parametrize(
    "model_type, config, expected",
    [
        ("llama", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2), "use llm_decode for pure-attention models"),
        ("mamba3", None, "not known to the installed transformers"),
    ],
)
def test_an_unsupported_model_type_is_refused_in_one_line(tmp_path, model_type, config, expected):
    """A pure-attention model (a meta-llama layout), or a model_type the installed transformers does not
    know (a config.json alone): setup refuses it before loading any weights, naming the model_type."""
    if config is None:
        (tmp_path / model_type).mkdir()
        (tmp_path / model_type / "config.json").write_text(f'{{"model_type": "{model_type}"}}')
        path = str(tmp_path / model_type)
    else:
        path = save(tmp_path, model_type, **config)
    workload = Mamba(Mamba.Params(pretrained=path, prompt_len=4, gen_len=2))
    with pytest.raises(ValueError, match=f"model_type '{model_type}'") as info:
        workload.setup(SetupContextImpl("cpu", 0, str(tmp_path)))
    assert expected in str(info.value) and "\n" not in str(info.value)
