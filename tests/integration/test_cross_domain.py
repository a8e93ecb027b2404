"""The built-in cross-domain suite runs all four domains end to end (shortened) and reports each."""

from __future__ import annotations

import pandas as pd

from tests.conftest import ROOT, run_cli


def test_cross_domain_suite(tmp_path):
    from profiler import load_run

    shorter = [
        "measure.min_seconds=0",
        "measure.min_iters=2",
        "workloads.0.params.gen_len=16",
        "workloads.1.params.gen_len=16",
        "workloads.2.params.steps=5",
        "workloads.3.params.ticks=20",
        "workloads.4.load.requests=8",
    ]
    result = run_cli("run", ROOT / "configs" / "cross_domain.yaml", "-o", tmp_path, "--device", "cpu", *[a for s in shorter for a in ("--set", s)])
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    assert {n: w.status for n, w in run.workloads.items()} == {"llm": "ok", "mamba": "ok", "diffusion": "ok", "vla": "ok", "serving": "ok"}
    s = {n: w.summary for n, w in run.workloads.items()}
    assert s["llm"].metrics.tpot_s.count == 2
    assert "kernel path: SLOW" in " ".join(s["mamba"].warnings)
    mamba_state = run.workloads["mamba"].spans.query("phase == 'decode_step'")["state_bytes"]
    llm_state = run.workloads["llm"].spans.query("phase == 'decode_step'")["state_bytes"]
    assert mamba_state.nunique() == 1 and llm_state.nunique() > 1  # constant vs growing state
    assert s["diffusion"].phases["denoise_step"].latency_s.count == 2 * 5
    assert s["vla"].deadlines.miss_rate.count == 2
    assert (run_dir / "calibration.json").is_file()
    llm_work = s["llm"].work.phases
    assert llm_work["decode_step"].bound in ("memory-bound", "overhead-bound")
    assert llm_work["decode_step"].intensity_flop_per_byte < 2  # GEMV at batch 1
    assert s["diffusion"].work.phases["denoise_step"].intensity_flop_per_byte > 10 * llm_work["decode_step"].intensity_flop_per_byte
    assert s["mamba"].work.phases["decode_step"].flops_analytic > 0
    assert s["diffusion"].operator_mix.phases["denoise_step"].dominant_category in ("convolution", "attention", "matmul/GEMM")
    # GEMV weight reads are among decode's largest op categories (which is first, and their share of all
    # time, depend on the machine's load: on a contended machine copies and attention can lead)
    decode_ops = {k: v for k, v in s["llm"].operator_mix.phases["decode_step"].time_us_by_category.items() if k != "host/framework"}
    assert "matmul/GEMM" in sorted(decode_ops, key=decode_ops.get, reverse=True)[:3]
    assert s["llm"].operator_mix.traced_over_timed_e2e > 0
    assert (run_dir / "llm" / "trace.json.gz").is_file()
    # the serving baseline: the same model in a continuous-batching engine under Poisson arrivals
    assert run.info.serving_baseline == "serving" and s["serving"].serving.status_counts == {"finished": 8}
    diffs = pd.read_csv(run_dir / "differences.csv")
    objective = diffs.loc[diffs["characteristic"] == "objective"].set_index("workload")
    assert (objective["baseline"] == "serving").all()
    assert objective.loc["llm", "verdict"] == "same" and objective.loc["diffusion", "verdict"] == "differs"
    assert objective.loc["vla", "verdict"] == "differs"
    for name, summary in s.items():  # every unavailable metric carries its reason; none is a zero
        assert summary.unavailable, name
        for key, why in summary.unavailable.items():
            assert isinstance(why, str) and len(why) > 10, (name, key, why)
        for column in ("gpu_kernel_active_percent", "gpu_power_w", "gpu_energy_j", "gpu_memory_used_bytes"):
            assert column in summary.unavailable and run.workloads[name].samples[column].isna().all()
        assert "energy" in summary.unavailable and "device_s" in summary.unavailable
    page = (run_dir / "report.html").read_text()
    for needle in (
        "Operator mix",
        "Work, intensity and ceilings",
        "Roofline",
        "Control loops",
        "deadline-miss rate",
        "image/s",
        "token/s",
        "action/s",
        "SLOW PyTorch reference path",
        "Serving under load",
    ):
        assert needle in page, needle
