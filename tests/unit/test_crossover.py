"""The long-context crossover (profiler/characterize/crossover.py) on constructed sweeps whose answers
are known, the suite's `crossover:` block's bad inputs (one line, exit 2), and the report section
rendered from a copy of the golden run with a constructed comparison in its sweeps.json."""

from __future__ import annotations

import json
import shutil

import pytest

from profiler.characterize.crossover import (
    ABOVE_AT_LONGEST,
    ABOVE_EVERYWHERE,
    BELOW_EVERYWHERE,
    CROSSOVER,
    INCONCLUSIVE,
    UNAVAILABLE,
    LatencyPoint,
    find_crossover,
    latency_point,
)
from profiler.runmodel import Declaration, ErrorInfo, RequestMetrics, Stats, Status, SweepGroup, WorkloadSummary
from tests.conftest import ROOT, assert_one_line_error, run_cli

MS = 1e-3


def side(latencies_ms: dict[int, float], half_ms: float = 0.1, **extra) -> list[LatencyPoint]:
    """One point per context with median `latency` and a 95% interval of +/- half_ms."""
    return [LatencyPoint(c, v * MS, ((v - half_ms) * MS, (v + half_ms) * MS), 30, **extra) for c, v in latencies_ms.items()]


FLAT = {1000: 10.0, 2000: 10.0, 3000: 10.0, 4000: 10.0}  # Mamba-like: constant per-token latency
GROWING = {1000: 6.0, 2000: 8.0, 3000: 12.0, 4000: 14.0}  # Transformer-like: grows with the KV cache


def test_a_clear_crossover_is_interpolated_between_the_deciding_lengths():
    out = find_crossover(side(FLAT), side(GROWING), ("mamba", "llm"))
    assert out["verdict"] == CROSSOVER
    # d = a - b: +2 ms at 2000 (last above), -2 ms at 3000 (first below, and below after): 2000 + 1000 * 2 / (2 + 2)
    assert out["context"] == pytest.approx(2500.0, abs=1e-9)
    assert out["bracket"] == [2000, 3000]
    assert "mamba drops below llm at about 2,500 tokens" in out["reason"]
    assert [p["relation"] for p in out["points"]] == ["above", "above", "below", "below"]
    assert out["points"][0]["ratio"] == pytest.approx(10 / 6)


def test_an_asymmetric_crossover_uses_the_median_difference():
    out = find_crossover(side(FLAT), side({1000: 7.0, 2000: 9.0, 3000: 13.0}))
    assert out["context"] == pytest.approx(2000 + 1000 * 1.0 / (1.0 + 3.0))  # d = +1 ms, then -3 ms


def test_never_crossing_says_so():
    above = find_crossover(side({1000: 20.0, 2000: 20.0}), side(GROWING))
    assert above["verdict"] == ABOVE_EVERYWHERE and above["context"] is None and "beyond 2,000 tokens" in above["reason"]
    below = find_crossover(side({1000: 1.0, 2000: 1.0}), side(GROWING))
    assert below["verdict"] == BELOW_EVERYWHERE and below["context"] is None
    back_above = find_crossover(side({1000: 1.0, 4000: 20.0}), side(GROWING))
    assert back_above["verdict"] == ABOVE_AT_LONGEST and back_above["context"] is None


def test_noisy_overlapping_intervals_are_inconclusive_not_a_fake_crossover():
    noisy = find_crossover(side(FLAT, half_ms=3.0), side(GROWING, half_ms=3.0))
    assert noisy["verdict"] == INCONCLUSIVE and noisy["context"] is None
    assert "overlap" in noisy["reason"]
    # decisive on both sides, undecided at the length between: the bracket holds the crossover, no number is claimed
    b = side(GROWING) + []
    b[2] = LatencyPoint(3000, 10.05 * MS, (9.5 * MS, 10.6 * MS), 30)
    bracketed = find_crossover(side(FLAT), b)
    assert bracketed["verdict"] == INCONCLUSIVE and bracketed["context"] is None
    assert bracketed["bracket"] == [2000, 4000]


def test_a_contended_deciding_point_is_inconclusive():
    a = side(FLAT)
    a[2] = LatencyPoint(3000, 10 * MS, (9.9 * MS, 10.1 * MS), 30, contended=True)
    out = find_crossover(a, side(GROWING))
    assert out["verdict"] == INCONCLUSIVE and "contention" in out["reason"]


def test_unreachable_lengths_are_listed_and_not_compared():
    b = side(GROWING) + [LatencyPoint(8192, unreachable="failed in setup: exceeds the model's max_position_embeddings (4096)")]
    out = find_crossover(side({**FLAT, 8192: 10.0}), b)
    assert out["verdict"] == CROSSOVER and out["context"] == pytest.approx(2500.0)
    last = out["points"][-1]
    assert last["context"] == 8192 and last["relation"] is None and "max_position_embeddings" in last["b"]["unreachable"]
    assert find_crossover([], b)["verdict"] == UNAVAILABLE
    SweepGroup.model_validate({"crossover": {"a": "mamba", "b": "llm", "over": "prompt_len", **out}})  # what the runner stores reads back


def test_two_points_at_one_length_are_an_error():
    with pytest.raises(ValueError, match="two points at context 1000"):
        find_crossover(side(FLAT) + side({1000: 1.0}), side(GROWING))


def summary(status: Status = Status.OK, **extra) -> WorkloadSummary:
    return WorkloadSummary(name="p", type="t", plugin="t", status=status, device="cpu", seed=0, declaration=Declaration(step="tick"), **extra)


def test_latency_point_reads_the_tpot_over_requests_or_says_why_not():
    stats = Stats(count=3, median=0.01, ci95_median=(0.009, 0.011))
    ok = latency_point("p", 512, summary(metrics=RequestMetrics(tpot_s=stats)))
    assert (ok.median_s, ok.ci95, ok.count, ok.unreachable) == (0.01, (0.009, 0.011), 3, None)
    failed = latency_point("p", 8192, summary(Status.FAILED, error=ErrorInfo(phase="setup", reason="ValueError: too long")))
    assert failed.median_s is None and failed.unreachable == "failed in setup: ValueError: too long"
    assert latency_point("p", 1, None, "the run stopped before this workload started").unreachable.startswith("the run stopped")
    assert latency_point("p", 1, summary()).unreachable.startswith("no TPOT")


def test_fewer_than_three_requests_decide_nothing():
    a = [LatencyPoint(c, v * MS, (v * MS, v * MS), 1) for c, v in FLAT.items()]  # one request: its interval is a point
    out = find_crossover(a, side(GROWING))
    assert out["verdict"] == INCONCLUSIVE and "fewer than 3 requests" in out["reason"]


# ---------------------------------------------------------------- the suite's crossover: block

SUITE = """\
name: s
crossover: {CROSSOVER}
workloads:
  - {name: flat, type: toy, sweep: {steps: [4, 8]}}
  - {name: growing, type: toy, params: {step_growth_s: 0.001}, sweep: {steps: [4, 8]}}
  - {name: batch, type: toy, sweep: {steps: [4, 8], first_s: [0.001, 0.002]}}
  - {name: single, type: toy}
  - {name: nostep, type: "tests.plugins.faulty:Faulty", sweep: {ok_iters: [1, 2]}}
  - {name: nostep2, type: "tests.plugins.faulty:Faulty", sweep: {ok_iters: [1, 2]}}
"""


@pytest.mark.parametrize(
    "block, needles",
    [
        ("{a: flatt, b: growing, over: steps}", ("crossover.a: 'flatt' is not a workload", "did you mean 'flat'")),
        ("{a: flat, b: growing, over: step}", ("crossover.over: workload 'flat' does not sweep 'step'", "did you mean 'steps'")),
        ("{a: flat, b: single, over: steps}", ("workload 'single' does not sweep 'steps' (it has no sweep: block)",)),
        ("{a: flat, b: batch, over: steps}", ("workload 'batch' also sweeps first_s",)),
        ("{a: flat, b: flat, over: steps}", ("crossover.b: a and b are both 'flat'",)),
        ("{a: flat, b: growing, over: steps, by: x}", ("unknown key 'by'",)),
        ("{a: nostep, b: nostep2, over: ok_iters}", ("crossover.a: workload 'nostep'", "declares no step phase")),
    ],
)
def test_bad_crossover_blocks_are_one_line_errors(write_suite, block, needles):
    line = assert_one_line_error(run_cli("validate", write_suite(SUITE.replace("{CROSSOVER}", block))), *needles)
    assert "suite.yaml:2" in line or "--set" in line


# ---------------------------------------------------------------- the report section


def test_the_report_section_states_the_crossover_and_the_unreachable_lengths(tmp_path):
    from reports.html_report import write_report

    run_dir = tmp_path / "run"
    shutil.copytree(ROOT / "tests" / "data" / "golden-run", run_dir)
    for stale in ("report.html", "differences.csv", "differences.json"):
        (run_dir / stale).unlink(missing_ok=True)
    b = side(GROWING) + [LatencyPoint(8192, unreachable="failed in setup: prompt_len + gen_len = 8208 exceeds the model's max_position_embeddings (4096)")]
    found = find_crossover(side({**FLAT, 8192: 10.0}), b, ("mamba", "llm"))
    (run_dir / "sweeps.json").write_text(json.dumps({"mamba": {"crossover": {"a": "mamba", "b": "llm", "over": "prompt_len", **found}}}))
    assert write_report(run_dir, run_dir / "report.html").problems == []
    page = (run_dir / "report.html").read_text()
    section = page[page.index('id="crossover"') :]
    assert "mamba&#39;s per-token decode latency drops below llm&#39;s at about 2,500 tokens of context" in section
    assert "mamba: 1,000, 2,000, 3,000, 4,000, 8,192 (5 of 5 lengths reached)" in section
    assert "llm: 1,000, 2,000, 3,000, 4,000 (4 of 5 lengths reached)" in section
    assert "llm at 8,192: failed in setup: prompt_len + gen_len = 8208 exceeds" in section
    # the figure's mark; plotly's JSON writes "≈" as is or as \u2248 depending on its version
    assert "crossover ≈ 2,500 tokens" in page.replace("\\u2248", "≈")
    assert "section-error" not in page.replace(".section-error", "")


def test_a_good_crossover_block_validates(write_suite):
    result = run_cli("validate", write_suite(SUITE.replace("{CROSSOVER}", "{a: flat, b: growing, over: steps}")))
    assert result.returncode == 0, result.stderr
