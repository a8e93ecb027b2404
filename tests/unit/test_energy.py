"""Energy from the NVML counter. No GPU here: the counter's samples are synthetic, at the NVML
boundary, with a known power; everything downstream is the real code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiler.characterize.energy import energy_summary

NS = 1_000_000_000


def spans_and_counter(power_w: float, iterations: int, iteration_s: float, decode_share: float):
    rows, t = [], 0.5 * NS
    for i in range(iterations):
        start, end = int(t), int(t + iteration_s * NS)
        split = int(start + (1 - decode_share) * (end - start))
        rows.append({"iteration": i, "warmup": False, "phase": "iteration", "start_ns": start, "end_ns": end, "units": 0.0, "error": None})
        rows.append({"iteration": i, "warmup": False, "phase": "prefill", "start_ns": start, "end_ns": split, "units": 1.0, "error": None})
        rows.append({"iteration": i, "warmup": False, "phase": "decode_step", "start_ns": split, "end_ns": end, "units": 9.0, "error": None})
        t = end + 0.01 * NS
    t_ns = np.arange(0, int(t + NS), NS // 20)  # 20 Hz sampler
    samples = pd.DataFrame({"t_ns": t_ns, "gpu_energy_j": 1000.0 + power_w * t_ns / NS})
    return pd.DataFrame(rows), samples


def test_energy_from_synthetic_nvml_counter_no_gpu_here():
    spans, samples = spans_and_counter(power_w=300.0, iterations=10, iteration_s=0.25, decode_share=0.8)
    out, why = energy_summary(spans, samples, idle_power_w=70.0)
    assert why is None
    assert out["average_power_w"] == pytest.approx(300.0, rel=1e-6)
    assert out["energy_j"] == pytest.approx(300.0 * out["window_s"], rel=1e-6)
    assert out["j_per_output_unit"] == pytest.approx(out["energy_j"] / 100)
    assert out["energy_above_idle_j"] == pytest.approx((300.0 - 70.0) * out["window_s"], rel=1e-6)
    assert out["phases"]["decode_step"]["average_power_w"] == pytest.approx(300.0, rel=1e-6)
    assert "under 1 s" in out["phases"]["prefill"]["unavailable"]  # 10 x 0.05 s = 0.5 s


def test_energy_unavailable_without_a_counter_or_a_long_window():
    spans, samples = spans_and_counter(300.0, 2, 0.2, 0.5)
    assert "under 1 s" in energy_summary(spans, samples, None)[1]
    no_gpu = samples.assign(gpu_energy_j=np.nan)
    out, why = energy_summary(spans, no_gpu, None)
    assert out == {} and "no NVML energy counter" in why


def test_report_shows_energy_per_unit(tmp_path):
    """The energy section reads the typed summary: J per output unit in the workload's unit, power
    and idle power with units; a workload without the counter says why."""
    import json
    import shutil

    from profiler.rundir import load_run
    from profiler.runmodel import Energy
    from reports.html_report import build_html
    from tests.conftest import ROOT

    run_dir = tmp_path / "run"
    shutil.copytree(ROOT / "tests" / "data" / "golden-run", run_dir)
    path = run_dir / "llm" / "summary.json"
    summary = json.loads(path.read_text())
    energy = Energy(window_s=2.0, energy_j=600.0, average_power_w=300.0, idle_power_w=70.0, energy_above_idle_j=460.0, j_per_output_unit=0.5, method="NVML")
    summary["energy"] = energy.model_dump(mode="json")
    summary["unavailable"].pop("energy", None)
    path.write_text(json.dumps(summary))
    page = build_html(load_run(run_dir))
    energy_html = page[page.index('id="energy"') :][:6000]
    assert "0.500 J/token" in energy_html and "300 W" in energy_html and "70.0 W" in energy_html and "460 J" in energy_html
    assert "no NVML energy counter readings" in energy_html  # the other workloads: unavailable, with the reason
