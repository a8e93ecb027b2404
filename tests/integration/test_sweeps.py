"""Sweeps expand into isolated child runs stored together; fitted slopes recover known truths."""

from __future__ import annotations

import json

import pytest

from profiler.characterize.stats import linear_fit
from tests.conftest import assert_one_line_error, run_cli, run_suite_text

SUITE = """\
name: sweep
device: cpu
measure: {warmup_iters: 1, min_iters: 3, min_seconds: 0, max_seconds: 20, count_work: false, trace_ops: false}
workloads:
  - name: toy
    type: toy
    params: {first_s: 0.002, step_s: 0.002, step_growth_s: 0.0005, state_bytes_per_step: 4096}
    sweep: {steps: [6, 12], first_s: [0.002, 0.004]}
"""


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    return run_suite_text(tmp_path_factory.mktemp("sweep"), SUITE)[1]


def test_grid_expands_into_isolated_points_stored_together(sweep_run):
    names = sorted(sweep_run.workloads)
    assert names == ["toy[steps=12,first_s=0.002]", "toy[steps=12,first_s=0.004]", "toy[steps=6,first_s=0.002]", "toy[steps=6,first_s=0.004]"]
    pids = {json.loads((w.path / "child.json").read_text())["pid"] for w in sweep_run.workloads.values()}
    assert len(pids) == 4  # one child process per point
    assert {w.path.parent.name for w in sweep_run.workloads.values()} == {"toy"}
    for w in sweep_run.workloads.values():
        point = w.summary.sweep.point
        assert w.summary.params["steps"] == point["steps"] and w.summary.params["first_s"] == point["first_s"]
        assert len(w.spans.query("phase == 'step' and not warmup")) == 3 * point["steps"]


def test_fitted_slopes_recover_the_toy_truth(sweep_run):
    for w in sweep_run.workloads.values():
        fit = w.summary.scaling["step"]
        steps = w.spans.query("phase == 'step' and not warmup")
        latency = (steps["end_ns"] - steps["start_ns"]) / 1e9
        # the stored fit is least squares over every measured span
        assert fit.latency_s_per_position.slope == pytest.approx(linear_fit(steps["position"], latency)["slope"])
        # the spans time the truth: a preempted busy wait lengthens one span, so the truth is checked
        # on each position's median (least squares over 3 x 6 spans moves 15% with one 5 ms preemption)
        medians = latency.groupby(steps["position"]).median()
        if not w.summary.contention.contended:  # contended, busy waits scatter (the summary's verdicts are inconclusive)
            assert linear_fit(medians.index, medians.to_numpy())["slope"] == pytest.approx(0.0005, rel=0.1), w.summary.contention.summary
        assert fit.state_bytes_per_position.slope == pytest.approx(4096)
        # busy waits preempted by other processes scatter around the line: a tight fit is claimed only when quiet
        if not w.summary.contention.contended:
            assert fit.latency_s_per_position.r2 > 0.95, w.summary.contention.summary


def test_bad_sweeps_are_one_line_errors(write_suite):
    base = "name: s\nworkloads:\n  - name: t\n    type: toy\n    sweep: {SWEEP}\n"
    assert_one_line_error(run_cli("validate", write_suite(base.replace("{SWEEP}", "{stepz: [1, 2]}"))), "unknown key 'stepz'", "did you mean 'steps'")
    assert_one_line_error(run_cli("validate", write_suite(base.replace("{SWEEP}", "{steps: [1, -2]}"))), "workloads[0].sweep.steps")
    assert_one_line_error(run_cli("validate", write_suite(base.replace("{SWEEP}", "{steps: []}"))), "has no values")
    assert_one_line_error(run_cli("validate", write_suite(base.replace("{SWEEP}", "{steps: [1, 1]}"))), "repeats a value")
