"""Mamba presets: constant state equal to the mamba_ssm cache formula, the kernel path on record, and the
FLOPs facts of the fused path (the other families: test_ssm_families.py)."""

from __future__ import annotations

import pytest

from profiler.plugin import Trait
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


def test_flops_facts_on_the_fused_path_say_what_the_counter_cannot_see():
    """No GPU here: the facts a CUDA run with mamba_ssm and causal_conv1d would declare. Mamba adds its
    whole scan formula; a hybrid gets no invented formula and says its scan is not counted."""
    from transformers import CONFIG_MAPPING

    from workloads.mamba import flops_facts
    from workloads.mamba_presets import SSM_FAMILIES

    fused = {"scan_path_fused": True, "conv_path_fused": True}
    mamba = flops_facts(CONFIG_MAPPING["mamba"](), SSM_FAMILIES["mamba"], fused, 32)
    assert mamba["analytic_flops"].endswith("9*B*L*d_inner*d_state per layer (state-spaces/mamba issue #110), all of it (fused)")
    assert mamba["counted_flops"].endswith(
        "not seen: the causal conv1d of 32 layers (causal_conv1d kernels), the selective scan of 32 layers (mamba_ssm kernels)"
    )
    jamba = flops_facts(CONFIG_MAPPING["jamba"](), SSM_FAMILIES["jamba"], fused, 28)
    assert jamba["analytic_flops"] == "none: the selective scan of 28 layers is not counted: no analytic formula for jamba"
    mamba2 = flops_facts(CONFIG_MAPPING["mamba2"](), SSM_FAMILIES["mamba2"], fused, 64)
    assert "prefill: the fused SSD chunk scan of 64 layers is not counted: no analytic formula" in mamba2["analytic_flops"]


def test_presets_declare_a_constant_state():
    for preset in ("mamba-tiny", "mamba2-tiny"):
        declaration = Mamba.declaration(Mamba.Params(preset=preset))
        assert declaration.traits == {Trait.AUTOREGRESSIVE, Trait.CONSTANT_STATE} and declaration.state == "SSM conv + ssm state"
