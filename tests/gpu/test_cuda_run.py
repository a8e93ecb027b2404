"""On a CUDA GPU: device times from CUDA events, NVML samples, per-phase allocator peaks, bf16 KV.

Skipped without CUDA (see tests/conftest.py); run on a GPU machine with `pytest -m gpu`.
"""

from __future__ import annotations

import pytest

from profiler import load_run
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu")
    result = run_cli(
        "run",
        ROOT / "configs" / "llm_decode.yaml",
        "-o",
        out,
        "--device",
        "cuda",
        "--set",
        "measure.min_seconds=2",
        "--set",
        "measure.min_iters=5",
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = out.iterdir()
    return load_run(run_dir)


def test_device_time_from_cuda_events(cuda_run):
    w = cuda_run.workloads["llm"]
    decode = w.spans.query("phase == 'decode_step' and not warmup")
    assert decode["device_s"].notna().all()
    host = (decode["end_ns"] - decode["start_ns"]) / 1e9
    # the host waits for the token, so the device region cannot be longer than the host span
    assert (decode["device_s"] <= host * 1.05 + 50e-6).mean() > 0.95
    assert w.summary.phases["decode_step"].device_s is not None
    assert "device_s" not in w.summary.unavailable


def test_nvml_samples_are_real(cuda_run):
    w = cuda_run.workloads["llm"]
    samples = w.samples
    for column in ("gpu_kernel_active_percent", "gpu_memory_used_bytes", "gpu_power_w", "gpu_sm_clock_hz"):
        if column in w.summary.unavailable:
            continue  # the driver said why; it must not be a fake number either
        assert samples[column].notna().mean() > 0.5, column
    assert samples["gpu_memory_used_bytes"].max() > 0
    if "gpu_energy_j" not in w.summary.unavailable:
        energy = samples["gpu_energy_j"].dropna()
        assert energy.is_monotonic_increasing and energy.iloc[-1] > energy.iloc[0]


def test_allocator_peaks_per_phase_and_bf16_kv(cuda_run):
    s = cuda_run.workloads["llm"].summary
    peaks = s.memory.device_peak_by_phase
    assert peaks["prefill"].peak_allocated_bytes > s.facts["param_bytes"]
    assert s.facts["dtype"] == "bfloat16"
    assert s.declared_state.growth_bytes_per_token == 2 * 4 * 4 * 64 * 2
    decode = cuda_run.workloads["llm"].spans.query("phase == 'decode_step'")
    assert (decode["state_bytes"] == s.declared_state.growth_bytes_per_token * decode["position"]).all()


def test_traced_pass_counts_launches_and_idle_time(cuda_run):
    mix = cuda_run.workloads["llm"].summary.operator_mix
    decode = mix.phases["decode_step"]
    assert decode.kernel_launches > 0
    assert 0.0 <= decode.device_idle_fraction <= 1.0
    assert decode.dominant_category in ("matmul/GEMM", "attention", "normalization/elementwise")
    assert (cuda_run.workloads["llm"].path / "trace.json.gz").is_file()


def test_energy_from_the_nvml_counter(cuda_run):
    s = cuda_run.workloads["llm"].summary
    idle = cuda_run.info.gpu_idle_power
    if "energy" in s.unavailable:
        pytest.skip(f"energy unavailable on this GPU: {s.unavailable['energy']}")
    assert idle.idle_power_w > 0
    energy = s.energy
    assert energy.window_s >= 1.0 and energy.energy_j > 0
    assert energy.j_per_output_unit > 0
    assert energy.average_power_w > 0.5 * idle.idle_power_w


def test_work_and_bound_class_on_gpu(cuda_run):
    work = cuda_run.workloads["llm"].summary.work.phases["decode_step"]
    assert work.time_source.startswith("device")
    assert work.bound in ("memory-bound", "overhead-bound", "compute-bound")
    assert 0 < work.mbu < 1.5


def test_rl_step_on_cuda_holds_fp32_master_state_and_bf16_copies(tmp_path):
    """configs/rl.yaml's GRPO step on CUDA: autocast bf16 forwards over fp32 master weights, 16 bytes of model state per
    parameter, bf16 rollout and reference copies, and a generation stage less compute-bound than training."""
    result = run_cli("run", ROOT / "configs" / "rl.yaml", "-o", tmp_path, "--device", "cuda", "--set", "measure.min_iters=3")
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    s = load_run(run_dir).workloads["grpo"].summary
    kinds, params = s.memory.by_kind, s.facts["param_count"]
    assert (kinds["weights"] + kinds["gradients"] + kinds["optimizer_state"]) / params == pytest.approx(16, abs=0.01)
    assert kinds["rollout_weights"] == kinds["reference_weights"] == 2 * params
    assert s.facts["dtype"] == "bfloat16" and s.facts["autocast"] is True
    assert s.memory.device_peak_by_phase  # allocator peaks per phase
    work = s.work.phases
    assert work["forward_backward"].intensity_flop_per_byte > work["rollout_step"].intensity_flop_per_byte


def test_glasses_on_cuda_measures_energy_per_hour_and_the_8b_context(tmp_path):
    """configs/glasses.yaml on CUDA, the glasses workload at the published shapes (SigLIP-L/16-384 + Llama-3-8B, Whisper
    small, VITS): energy per hour and per query from the NVML counter in every condition, and the KV cache bounded at its
    window (bf16: 128 KiB per token for Llama-3-8B)."""
    sets = ["measure.min_iters=3", "measure.warmup_iters=1", "workloads.2.params.preset=glasses-8b", "workloads.2.params.session_s=6"]
    result = run_cli("run", ROOT / "configs" / "glasses.yaml", "-o", tmp_path, "--device", "cuda", *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    s = load_run(run_dir).workloads["glasses"].summary
    assert s.facts["kv_bytes_per_token"] == 131072
    assert s.streams.energy_unavailable is None
    for condition in s.streams.conditions.values():
        assert condition.average_power_w > 0
    held = s.facts["context_bound_bytes"]
    assert held == 256 * 131072
