"""The runner's long-context crossover end to end on toy sweeps with known step times: a flat 5 ms
step against one growing 1 ms per position, swept over the number of steps. The growing side's
median step is 2.5 ms at 4 steps and 8.5 ms at 16, so the flat side is above, then below, and
crosses at 4 + 12 * 2.5 / (2.5 + 3.5) = 9 steps; sweeps.json holds it and the report states it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_suite_text

SUITE = """\
name: crossover
device: cpu
measure: {warmup_iters: 0, min_iters: 3, min_seconds: 0, max_seconds: 20, count_work: false, trace_ops: false}
crossover: {a: flat, b: growing, over: steps}
workloads:
  - {name: growing, type: toy, params: {first_s: 0.001, step_s: 0.001, step_growth_s: 0.001}, sweep: {steps: [4, 16]}}
  - {name: flat, type: toy, params: {first_s: 0.001, step_s: 0.005}, sweep: {steps: [4, 16]}}
"""


def test_the_run_stores_and_reports_the_crossover(tmp_path):
    _, run = run_suite_text(tmp_path, SUITE)
    stored = json.loads((run.path / "sweeps.json").read_text())["flat"]["crossover"]
    c = run.sweeps["flat"].crossover
    assert c is not None and stored["verdict"] == c.verdict
    assert [p.context for p in c.points] == [4, 16]
    assert all(p.a.median_s and p.b.median_s and p.a.unreachable is None for p in c.points)
    if any(p.a.contended or p.b.contended for p in c.points):  # a busy machine: the rule withholds the claim
        assert c.verdict == "inconclusive" and "contention" in c.reason
    else:
        assert c.verdict == "crossover"
        assert c.context == pytest.approx(9.0, abs=1.0)
    page = (run.path / "report.html").read_text()
    assert 'id="crossover"' in page and "flat against growing, over steps" in page
