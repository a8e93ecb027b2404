"""Energy from the NVML counter. No GPU here: the counter's samples are synthetic, at the NVML
boundary, with a known power; everything downstream is the real code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiler.energy import energy_summary

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
    import json

    from profiler.rundir import load_run
    from reports.html_report import _energy_section

    (tmp_path / "run.json").write_text(json.dumps({"workloads": [{"name": "gpu", "dir": "gpu"}, {"name": "cpu", "dir": "cpu"}]}))
    (tmp_path / "env.json").write_text("{}")
    for name, summary in (
        ("gpu", {"name": "gpu", "facts": {"output_unit": "token"}, "energy": {"j_per_output_unit": 0.5, "average_power_w": 300.0,
                                                                             "energy_j": 600.0, "window_s": 2.0, "energy_above_idle_j": 460.0, "idle_power_w": 70.0}}),
        ("cpu", {"name": "cpu", "unavailable": {"energy": "no NVML energy counter readings"}}),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    html = _energy_section(load_run(tmp_path))
    assert "0.5 J/token" in html and "300.0 W" in html and "70.0 W" in html
    assert "unavailable: no NVML energy counter readings" in html
