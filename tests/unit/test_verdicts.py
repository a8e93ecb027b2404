"""The verdict rules (reports/differences.py VERDICT_RULES): a direction only where it would survive
a rerun; "inconclusive" with the reason otherwise; "no difference" only for a narrow interval;
slopes compared like with like."""

from __future__ import annotations

import numpy as np
import pytest

from profiler.runmodel import Verdict
from reports.characteristics import Kind, Value
from reports.differences import MIN_SAMPLES, compare, slope_shape

RNG = np.random.default_rng(0)


def samples(median: float, n: int = 40, spread: float = 0.01) -> Value:
    x = median * (1 + spread * RNG.standard_normal(n))
    return Value(float(np.median(x)), "s", samples=x)


def test_a_clear_difference_is_a_direction():
    assert compare(samples(2.0), samples(1.0), Kind.SAMPLES).verdict == Verdict.HIGHER
    assert compare(samples(0.5), samples(1.0), Kind.SAMPLES).verdict == Verdict.LOWER


def test_no_difference_needs_a_narrow_interval():
    assert compare(samples(1.0), samples(1.0), Kind.SAMPLES).verdict == Verdict.NO_DIFFERENCE
    wide = compare(samples(1.0, spread=0.6), samples(1.0, spread=0.6), Kind.SAMPLES)
    assert wide.verdict == Verdict.INCONCLUSIVE and "too wide" in wide.why


def test_contention_and_too_few_samples_are_inconclusive_with_the_reason():
    c = compare(samples(2.0), samples(1.0), Kind.SAMPLES, contended="llm: contended: other processes used 1.00 of its 2 cores")
    assert c.verdict == Verdict.INCONCLUSIVE and "contention" in c.why and c.ratio == pytest.approx(2.0, rel=0.05)
    few = compare(samples(2.0, n=MIN_SAMPLES - 1), samples(1.0), Kind.SAMPLES)
    assert few.verdict == Verdict.INCONCLUSIVE and "too few samples" in few.why
    # a category measured under contention says nothing either; a presence stays a presence
    assert compare(Value("compute-bound"), Value("memory-bound"), Kind.CATEGORY, contended="x").verdict == Verdict.INCONCLUSIVE
    assert compare(Value(0.1, "of ticks"), Value(None), Kind.PRESENCE, contended="x").verdict == Verdict.PRESENT


def line(slope: float, level: float, noise: float, unit: str = "token of context") -> Value:
    x = np.repeat(np.arange(100, 164, dtype=float), 3)
    y = level + slope * (x - 100) + noise * RNG.standard_normal(x.size)
    return Value(float(np.polyfit(x, y, 1)[0]), "s/token", samples=(x, y), position_unit=unit)


def test_slopes_are_classified_before_they_are_compared():
    grows, flat = line(1e-4, 0.01, 1e-5), line(0.0, 0.01, 1e-5)
    falls, unclear = line(-1e-4, 0.02, 1e-5), line(0.0, 0.01, 5e-3)
    assert slope_shape(grows)[0] == "grows" and slope_shape(flat)[0] == "flat"
    assert slope_shape(falls)[0] == "falls" and slope_shape(unclear)[0] == "unclear"
    assert compare(flat, grows, Kind.SLOPE).verdict == Verdict.LOWER
    assert compare(grows, flat, Kind.SLOPE).verdict == Verdict.HIGHER
    assert compare(flat, flat, Kind.SLOPE).verdict == Verdict.NO_DIFFERENCE
    # a negative value is never "higher" or "lower" than a positive baseline: falling is no direction
    assert compare(falls, grows, Kind.SLOPE).verdict == Verdict.INCONCLUSIVE
    assert compare(unclear, grows, Kind.SLOPE).verdict == Verdict.INCONCLUSIVE
    # different position units: only flat against growing compares
    steps = line(0.0, 0.02, 1e-5, unit="denoising step")
    assert compare(steps, grows, Kind.SLOPE).verdict == Verdict.LOWER
    assert compare(line(1e-4, 0.01, 1e-5, unit="step"), grows, Kind.SLOPE).verdict == Verdict.NOT_COMPARABLE


def test_two_growing_slopes_in_one_unit_compare_by_size():
    assert compare(line(4e-4, 0.01, 1e-6), line(1e-4, 0.01, 1e-6), Kind.SLOPE).verdict == Verdict.HIGHER
    assert compare(line(1e-4, 0.01, 1e-6), line(1e-4, 0.01, 1e-6), Kind.SLOPE).verdict == Verdict.NO_DIFFERENCE


def test_a_growth_that_looks_flat_against_a_long_prompt_is_compared_by_its_slope():
    """A KV cache after a 1,024-token prompt grows 8,192 B/token over 16 generated tokens: 1.6% of its level, "flat" by
    the relative rule, yet its slope is the baseline's exactly. Flat against growing needs the slopes apart."""
    x_long, x_short = np.arange(1024, 1040, dtype=float), np.arange(128, 160, dtype=float)
    long = Value(8192.0, "B/token", samples=(x_long, 8192 * x_long), position_unit="token of context")
    short = Value(8192.0, "B/token", samples=(x_short, 8192 * x_short), position_unit="token of context")
    assert slope_shape(long)[0] == "flat" and slope_shape(short)[0] == "grows"
    assert compare(long, short, Kind.SLOPE).verdict == Verdict.NO_DIFFERENCE
    assert compare(short, long, Kind.SLOPE).verdict == Verdict.NO_DIFFERENCE
    half = Value(4096.0, "B/token", samples=(x_long, 4096 * x_long), position_unit="token of context")
    assert compare(half, short, Kind.SLOPE).verdict == Verdict.LOWER  # a real difference in the slope itself


def test_categories_of_different_families_differ_even_where_one_is_inconclusive():
    batch = Value("all at once: synchronous batches", family="synchronous batch")
    unsure = Value("inconclusive", basis="CV interval too wide", family="open arrivals")
    assert compare(batch, unsure, Kind.CATEGORY).verdict == Verdict.DIFFERS
    assert compare(Value("bursty (CV > 1)", family="open arrivals"), unsure, Kind.CATEGORY).verdict == Verdict.INCONCLUSIVE
