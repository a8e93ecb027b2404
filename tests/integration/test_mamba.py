"""Mamba: constant state equal to the mamba_ssm cache formula, and the kernel path on record."""

from __future__ import annotations

import pytest

from profiler.run.child import SetupContextImpl
from tests.integration.test_llm_decode import run_with_recorder
from workloads.mamba import Mamba
from workloads.mamba_presets import MAMBA_PRESETS


def formula_elements(preset: str) -> int:
    """From the published hyper-parameters alone (mamba_ssm allocate_inference_cache shapes)."""
    c = MAMBA_PRESETS[preset]
    d_inner = c["expand"] * c["hidden_size"]
    if c["model_type"] == "mamba2":
        per_layer = (d_inner + 2 * c["n_groups"] * c["state_size"]) * c["conv_kernel"] + c["num_heads"] * c["head_dim"] * c["state_size"]
    else:
        per_layer = d_inner * c["conv_kernel"] + d_inner * c["state_size"]
    return c["num_hidden_layers"] * per_layer


@pytest.mark.parametrize("preset", ["mamba-tiny", "mamba2-tiny"])
def test_state_is_constant_and_equals_the_formula(tmp_path, preset):
    batch, prompt, gen = 2, 12, 6
    spans, facts = run_with_recorder(tmp_path, Mamba(Mamba.Params(preset=preset, batch_size=batch, prompt_len=prompt, gen_len=gen)))
    expected = formula_elements(preset) * 4 * batch  # float32 on CPU
    steps = spans[spans["phase"].isin(["prefill", "decode_step"])]
    assert list(steps["position"]) == list(range(prompt, prompt + gen))
    assert (steps["state_bytes"] == expected).all()  # constant in the context length
    assert facts["state_bytes_per_seq"] * batch == expected


def test_published_mamba_sizes():
    """Domain facts: Mamba-2.8B about 6.6M state elements (13 MB bf16), Mamba-2 at 2.7B about 43M (87 MB)."""
    assert formula_elements("mamba-2.8b") == 6_553_600
    assert formula_elements("mamba2-2.7b") == 43_319_296


def test_kernel_path_is_recorded_and_warned(tmp_path):
    workload = Mamba(Mamba.Params(preset="mamba-tiny", prompt_len=4, gen_len=2))
    ctx = SetupContextImpl("cpu", 0, str(tmp_path))
    workload.setup(ctx)
    assert ctx.facts["kernel_path_fused"] is False
    assert ctx.facts["kernel_path"].startswith("SLOW PyTorch reference path")
    assert set(ctx.facts["kernel_packages"]) == {"mamba_ssm", "causal_conv1d"}
    assert any("kernel path: SLOW" in w for w in ctx.warnings)
