"""LLM decode: real architectures, KV bytes measured from the cache tensors, TTFT/TPOT end to end."""

from __future__ import annotations

import pandas as pd
import pytest

from profiler.measure.spans import SpanRecorder
from profiler.measure.store import SPANS, PartWriter, merge_parts
from profiler.run.child import SetupContextImpl
from profiler.rundir import load_run
from profiler.runmodel import DeclaredState
from tests.conftest import ROOT, run_cli
from workloads.llm_decode import LLMDecode
from workloads.llm_presets import LLM_PRESETS


def run_in_process(tmp_path, **params) -> tuple[pd.DataFrame, dict]:
    return run_with_recorder(tmp_path, LLMDecode(LLMDecode.Params(**params)))


def run_with_recorder(tmp_path, workload) -> tuple[pd.DataFrame, dict]:
    """setup + one run_once with a real SpanRecorder on CPU, without the runner. The facts carry
    the declared state as `declared_state` (profiler.runmodel.DeclaredState)."""
    ctx = SetupContextImpl("cpu", 0, str(tmp_path))
    workload.setup(ctx)
    recorder = SpanRecorder(PartWriter(tmp_path, SPANS))
    try:
        recorder.run_iteration(workload, 0, warmup=False)
    finally:
        workload.teardown()
    recorder.flush()
    merge_parts(tmp_path, SPANS)
    declared = DeclaredState.from_layers(list(ctx.state_layers)) if ctx.state_layers else None
    return pd.read_parquet(tmp_path / "spans.parquet"), {**ctx.facts, "declared_state": declared}


def kv_formula(preset: str, dtype_bytes: int) -> int:
    """2 * layers * kv_heads * head_dim * dtype_bytes, from the published numbers alone."""
    c = LLM_PRESETS[preset]
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * head_dim * dtype_bytes


@pytest.mark.parametrize(
    "preset, dtype, dtype_bytes",
    [
        ("llama-tiny", "float32", 4),
        ("qwen2.5-0.5b", "bfloat16", 2),  # a published architecture at its published size (494M)
    ],
)
def test_kv_bytes_per_token_equal_the_formula_exactly(tmp_path, preset, dtype, dtype_bytes):
    batch, prompt, gen = 2, 6, 4
    spans, facts = run_in_process(tmp_path, preset=preset, dtype=dtype, batch_size=batch, prompt_len=prompt, gen_len=gen)
    per_token = kv_formula(preset, dtype_bytes)
    declared = facts["declared_state"]
    assert declared.growth_bytes_per_token == declared.growth_past_bounds_bytes_per_token == per_token and declared.shape == "grows"
    steps = spans[spans["phase"].isin(["prefill", "decode_step"])]
    assert list(steps["phase"]) == ["prefill"] + ["decode_step"] * (gen - 1)
    assert list(steps["position"]) == list(range(prompt, prompt + gen))
    assert (steps["state_bytes"] == per_token * steps["position"] * batch).all()
    assert (steps["units"] == batch).all()


def test_published_parameter_counts():
    """The presets build the models their names claim (meta-device build: no memory, no time)."""
    import torch
    from transformers import AutoModelForCausalLM

    from workloads.llm_presets import build_config

    expected = {
        "llama-3.2-1b": 1_235_814_400,
        "llama-3.1-8b": 8_030_261_248,
        "qwen2.5-0.5b": 494_032_768,
        "qwen2.5-1.5b": 1_543_714_304,
        "qwen2.5-7b": 7_615_616_512,
    }
    for preset, count in expected.items():
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(build_config(preset))
        assert sum(p.numel() for p in model.parameters()) == count, preset


def test_pretrained_directory_loads_local_files_only(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from workloads.llm_presets import build_config

    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    AutoModelForCausalLM.from_config(build_config("qwen-tiny")).save_pretrained(model_dir)
    spans, facts = run_in_process(tmp_path, pretrained=str(model_dir), prompt_len=4, gen_len=3)
    assert facts["weights"].startswith("pretrained:")
    assert facts["model_class"] == "Qwen2ForCausalLM"
    assert (spans["phase"] == "decode_step").sum() == 2


def test_preset_and_pretrained_are_exclusive(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="either preset or pretrained"):
        LLMDecode.Params(preset="llama-tiny", pretrained=str(tmp_path))


def test_context_longer_than_the_model_is_a_setup_error(tmp_path):
    with pytest.raises(ValueError, match="max_position_embeddings"):
        run_in_process(tmp_path, preset="qwen-tiny", prompt_len=4000, gen_len=200)


def test_llm_suite_end_to_end(tmp_path):
    result = run_cli(
        "run",
        ROOT / "configs" / "llm_decode.yaml",
        "-o",
        tmp_path,
        "--device",
        "cpu",
        "--set",
        "workloads.0.params.gen_len=12",
        "--set",
        "workloads.0.params.prompt_len=16",
        "--set",
        "measure.min_seconds=0",
        "--set",
        "measure.min_iters=3",
        "--set",
        "measure.warmup_iters=1",
    )
    assert result.returncode == 0, result.stderr
    assert "TTFT" in result.stdout and "report.html" in result.stdout
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    s = run.workloads["llm"].summary
    assert s.status == "ok" and s.params["gen_len"] == 12
    m = s.metrics
    assert m.ttft_s.count == 3 and m.tpot_s.count == 3 and m.itl_s.count == 3 * 11
    assert 0 < m.tpot_s.median < m.e2e_s.median
    assert s.phases["decode_step"].latency_s.count == 3 * 11
    spans = run.workloads["llm"].spans
    decode = spans.query("phase == 'decode_step'")
    assert (decode["state_bytes"] == s.declared_state.growth_bytes_per_token * decode["position"]).all()
    assert s.state_check.steps_compared == 3 * 10 and s.state_check.steps_matching == 3 * 10
    page = (run_dir / "report.html").read_text()
    assert "Per-step latency against position" in page and "State alive after each step" in page


def test_state_growth_is_compared_per_request_not_per_batch(tmp_path):
    """Issue 11 case 11: the same model at batch 4 against batch 1 holds 4 times the cache, but
    each request's state grows the same: per request the ratio is 1, no finding."""
    import json

    from tests.conftest import run_suite_text

    suite = (
        "name: batches\ndevice: cpu\nbaseline: one\n"
        "measure: {warmup_iters: 0, min_iters: 2, min_seconds: 0, count_work: false, trace_ops: false}\n"
        "workloads:\n"
        "  - {name: one, type: llm_decode, params: {preset: llama-tiny, batch_size: 1, prompt_len: 8, gen_len: 6}}\n"
        "  - {name: four, type: llm_decode, params: {preset: llama-tiny, batch_size: 4, prompt_len: 8, gen_len: 6}}\n"
    )
    _, run = run_suite_text(tmp_path, suite, "--no-report")
    rows = {r["characteristic"]: r for r in json.loads((run.path / "differences.json").read_text())}
    state = rows["state_per_token"]
    assert state["verdict"] == "no difference" and state["ratio"] == pytest.approx(1.0)
    assert state["value"] == state["baseline_value"] == 8192
    assert run.workloads["four"].summary.scaling["decode_step"].state_bytes_per_position.slope == pytest.approx(8192)
