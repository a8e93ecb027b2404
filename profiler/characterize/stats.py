"""Robust statistics for latency samples (torch.utils.benchmark habits).

Median over mean, IQR for spread, percentiles, and a 95% confidence interval for the median:
a percentile bootstrap (seeded, so reports are reproducible) for up to BOOTSTRAP_MAX_N samples,
and beyond that the distribution-free order-statistic interval (ranks n/2 -/+ 1.96*sqrt(n)/2),
which the bootstrap converges to and which costs nothing on a million spans. The method used is
stored beside the interval.

The same rule holds for the other intervals, so that no statistic ever holds resamples x n values
at once (a million spans would need gigabytes):
- ratio of medians: resampled medians by bootstrap up to BOOTSTRAP_MAX_N, beyond it drawn as
  order statistics at normally distributed ranks n/2 + Z*sqrt(n)/2 (the bootstrap median's
  large-sample law);
- slope of a least-squares line: a pairs bootstrap up to BOOTSTRAP_MAX_N, beyond it the normal
  interval with the heteroscedasticity-robust (HC0) standard error, which the pairs bootstrap
  converges to.
Bootstraps resample in chunks of at most CHUNK_VALUES values.

Between repeats (ratio_between_repeats): when a suite ran several times, the ratio of two
workloads' values comes from one point estimate per repeat (e.g. each repeat's median), as a
ratio of geometric means with Welch's t interval on the logs, so that the interval holds the
variation from one run of the suite to the next and not only within one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

NOISY_IQR_OVER_MEDIAN = 0.10  # torch.utils.benchmark's threshold for "environmental influence"
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_MAX_N = 20_000
Z95 = 1.959963984540054
CHUNK_VALUES = 2_000_000


def describe(values: Any, seed: int = 0) -> dict[str, Any]:
    """Summary of a 1-D sample; {'count': 0} when empty (never zeros standing for unknown)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return {"count": 0}
    q25, median, q75, p90, p99 = np.percentile(x, [25, 50, 75, 90, 99])
    lo, hi, method = median_ci(x, seed)
    return {
        "count": n,
        "median": float(median),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if n > 1 else 0.0,
        "iqr": float(q75 - q25),
        "min": float(x.min()),
        "max": float(x.max()),
        "ci95_median": [lo, hi],
        "ci_method": method,
    }


def median_ci(x: np.ndarray, seed: int = 0) -> tuple[float, float, str]:
    n = x.size
    if n == 1:
        return float(x[0]), float(x[0]), "single sample"
    if n <= BOOTSTRAP_MAX_N:
        lo, hi = np.percentile(bootstrap_medians(x, np.random.default_rng(seed)), [2.5, 97.5])
        return float(lo), float(hi), f"bootstrap ({BOOTSTRAP_RESAMPLES} resamples)"
    s = np.sort(x)
    half = Z95 * math.sqrt(n) / 2
    lo_rank = max(0, int(math.floor(n / 2 - half)))
    hi_rank = min(n - 1, int(math.ceil(n / 2 + half)))
    return float(s[lo_rank]), float(s[hi_rank]), "order statistics (binomial)"


def bootstrap_medians(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """BOOTSTRAP_RESAMPLES medians of resamples of x (finite values); see the module docstring."""
    n = x.size
    if n > BOOTSTRAP_MAX_N:
        ranks = np.rint((n - 1) / 2 + rng.standard_normal(BOOTSTRAP_RESAMPLES) * math.sqrt(n) / 2).astype(np.int64)
        return np.sort(x)[np.clip(ranks, 0, n - 1)]
    medians = np.empty(BOOTSTRAP_RESAMPLES)
    chunk = max(1, CHUNK_VALUES // n)
    for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
        k = min(chunk, BOOTSTRAP_RESAMPLES - start)
        medians[start : start + k] = np.median(x[rng.integers(0, n, size=(k, n))], axis=1)
    return medians


def noisy(stats: dict[str, Any]) -> float | None:
    """IQR / median when it exceeds the noise threshold, else None."""
    median = stats.get("median")
    if not median or stats.get("count", 0) < 4:
        return None
    ratio = stats["iqr"] / median
    return ratio if ratio > NOISY_IQR_OVER_MEDIAN else None


NO_DIFFERENCE_BAND = 1.10
"""A ratio whose 95% interval lies within [1/1.1, 1.1] is "no difference" (the differences table, interference)."""


def ratio_ci(numerator: Any, denominator: Any, seed: int = 0) -> dict[str, Any]:
    """Ratio of medians with a 95% bootstrap interval (both samples resampled independently)."""
    a = np.asarray(numerator, dtype=float)
    b = np.asarray(denominator, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0 or np.median(b) == 0:
        return {"ratio": None}
    rng = np.random.default_rng(seed)
    ra, rb = bootstrap_medians(a, rng), bootstrap_medians(b, rng)
    ok = rb != 0
    lo, hi = np.percentile(ra[ok] / rb[ok], [2.5, 97.5])
    return {"ratio": float(np.median(a) / np.median(b)), "ci95": [float(lo), float(hi)], "n": [int(a.size), int(b.size)]}


MIN_REPEATS = 2


def ratio_between_repeats(w: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
    """B/A-style ratio of `w` to `b` from one value per repeat on each side: {"ratio", "ci95": [low, high], "n": (n_w, n_b)},
    or None with fewer than MIN_REPEATS positive finite values on a side (others are left out: a log needs a positive value).

    With x = log w_i (n_w values) and y = log b_j (n_b values), d = mean(x) - mean(y) and the Welch (1947) standard error
    se = sqrt(s_x^2 / n_w + s_y^2 / n_b) (sample variances, ddof 1):
        ratio = exp(d)  (the ratio of the geometric means),
        ci95  = exp(d -/+ t_{0.975, df} * se), with the Welch-Satterthwaite degrees of freedom
        df    = (s_x^2/n_w + s_y^2/n_b)^2 / ((s_x^2/n_w)^2 / (n_w - 1) + (s_y^2/n_b)^2 / (n_b - 1)),
    t the Student quantile (scipy.stats.t.ppf). When both sides are constant (se = 0), df = n_w + n_b - 2 and the interval
    is the point. Source: B. L. Welch, "The generalization of 'Student's' problem when several different population
    variances are involved", Biometrika 34 (1947) 28-35; F. E. Satterthwaite, Biometrics Bulletin 2 (1946) 110-114.
    """
    from scipy.stats import t as student_t

    x, y = (np.asarray(v, dtype=float) for v in (w, b))
    x = np.log(x[np.isfinite(x) & (x > 0)])
    y = np.log(y[np.isfinite(y) & (y > 0)])
    n_w, n_b = len(x), len(y)
    if min(n_w, n_b) < MIN_REPEATS:
        return None
    diff = float(x.mean() - y.mean())
    vw, vb = float(x.var(ddof=1)) / n_w, float(y.var(ddof=1)) / n_b
    se = math.sqrt(vw + vb)
    df = (vw + vb) ** 2 / (vw**2 / (n_w - 1) + vb**2 / (n_b - 1)) if se > 0 else float(n_w + n_b - 2)
    half = float(student_t.ppf(0.975, df)) * se
    return {"ratio": math.exp(diff), "ci95": [math.exp(diff - half), math.exp(diff + half)], "n": (n_w, n_b)}


def linear_fit(x: Any, y: Any) -> dict[str, Any] | None:
    """Least-squares line with r^2; None with fewer than 3 distinct x. A million points are copied only where some are
    not finite, and the sums of squares take one array between them."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.all():
        x, y = x[keep], y[keep]
    if np.unique(x).size < 3:
        return None
    slope = ols_slope(x, y)
    intercept = y.mean() - slope * x.mean()
    work = y - y.mean()
    total = np.square(work, out=work).sum()
    np.multiply(x, slope, out=work)
    work += intercept
    np.subtract(y, work, out=work)  # the residuals
    r2 = 1.0 - np.square(work, out=work).sum() / total if total > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2), "points": int(x.size)}


def ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope, closed form (np.polyfit builds an n x 2 matrix and factors it: a
    million points cost tens of MB for the same number)."""
    dx = x - x.mean()
    sxx = float(np.dot(dx, dx))
    return float(np.dot(dx, y - y.mean()) / sxx) if sxx > 0 else math.nan


def slope_ci(x: Any, y: Any, seed: int = 0) -> tuple[float, float]:
    """95% interval of the least-squares slope of y on x; see the module docstring."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = x.size
    if n > BOOTSTRAP_MAX_N:
        slope = ols_slope(x, y)
        if math.isnan(slope):
            return math.nan, math.nan
        dx = x - x.mean()
        residual = y - y.mean() - slope * dx
        se = math.sqrt(float(np.dot(dx * residual, dx * residual))) / float(np.dot(dx, dx))
        return float(slope - Z95 * se), float(slope + Z95 * se)
    rng = np.random.default_rng(seed)
    slopes = np.empty(BOOTSTRAP_RESAMPLES)
    chunk = max(1, CHUNK_VALUES // max(n, 1))
    for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
        k = min(chunk, BOOTSTRAP_RESAMPLES - start)
        idx = rng.integers(0, n, size=(k, n))
        xs, ys = x[idx], y[idx]
        xs -= xs.mean(axis=1, keepdims=True)
        ys -= ys.mean(axis=1, keepdims=True)
        var = (xs**2).sum(axis=1)
        slopes[start : start + k] = np.where(var > 0, (xs * ys).sum(axis=1) / np.where(var > 0, var, 1), np.nan)
    lo, hi = np.nanpercentile(slopes, [2.5, 97.5])
    return float(lo), float(hi)
