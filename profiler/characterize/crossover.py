"""Where one workload's per-token decode latency drops below another's as the context grows.

Why it exists: the long-context claim about SSMs is a crossover, not a ratio at one length.
domain-facts.md (table "Directions relative to LLM decode", row "Long-context scaling", Mamba
column: "**Better**: 4× faster than Transformer at 57K; 1.9× slower at <8K", source SSM-Scope;
section 3: Mitra et al., ISPASS'26, arXiv 2507.12442, "Transformers up to 1.9× faster below 8K
tokens; SSMs up to 4× faster at ~57K") implies that a Transformer's decode step, which reads a KV
cache growing with the context, is overtaken by Mamba's, which reads a constant state, somewhere
between those lengths. A suite's `crossover: {a, b, over}` block (profiler/suite/config.py) sweeps
both over the same context key; this module says where a's per-token decode latency falls below
b's, or why that cannot be said from the measurements.

The latency compared is the TPOT (metrics.md, vLLM's definition: (E2E - TTFT) / (tokens - 1) per
request, the mean decode step of one request), its median and 95% bootstrap interval over the
point's requests (WorkloadSummary.metrics.tpot_s). Requests, not step spans, are the replicates:
the steps of one request share its machine state, and on a shared CPU that state shifts between
requests (measured on 2 cores: a constant Mamba step at 16 ms in one request and 21 ms in the
next), so an interval over step spans is too narrow and would turn such a shift into a crossover.

The pure function is `find_crossover`; `latency_point` reads one sweep point's summary into its
input. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..runmodel import Status, WorkloadSummary

BELOW, ABOVE, OVERLAP, CONTENDED, FEW = "below", "above", "overlap", "contended", "too few requests"
MIN_REQUESTS = 3
"""Fewer requests give no interval worth the name (with 3, the bootstrap interval of the median is about their range)."""
CROSSOVER = "crossover"
BELOW_EVERYWHERE = "below at every length"
ABOVE_EVERYWHERE = "above at every reachable length"
ABOVE_AT_LONGEST = "above at the longest reachable length"
INCONCLUSIVE = "inconclusive"
UNAVAILABLE = "unavailable"
RULE = (
    "at each context length both reached, a is below b when the upper end of a's 95% interval of the median TPOT (over "
    "requests) lies under the lower end of b's, above when its lower end lies over b's upper end, and undecided when the "
    f"intervals overlap, either point ran under contention or has fewer than {MIN_REQUESTS} requests; the crossover is "
    "interpolated linearly in the median difference between the last length where a is above and the next, from which a stays below"
)


@dataclass(frozen=True)
class LatencyPoint:
    """One sweep point of one side: its context length and its per-token decode latency.

    context: the swept key's value (tokens of prompt, so the decode steps run at context
    `context` .. `context + gen_len - 1`). median_s: median TPOT over the point's requests, in
    seconds; ci95: its 95% interval (profiler/characterize/stats.py: median_ci), in seconds; count:
    the requests behind them. A point that did not run to
    a measurement has median_s None and `unreachable` set to why (e.g. its setup failed: the
    length is beyond the model's positions, or it ran out of time).
    """

    context: float
    median_s: float | None = None
    ci95: tuple[float, float] | None = None
    count: int = 0
    unreachable: str | None = None
    contended: bool | None = None
    name: str | None = None

    @property
    def measured(self) -> bool:
        return self.median_s is not None and self.ci95 is not None and self.unreachable is None


def relation(a: LatencyPoint, b: LatencyPoint) -> str:
    """below | above | overlap | contended | too few requests: a against b at one length, by their 95% intervals (RULE)."""
    assert a.ci95 is not None and b.ci95 is not None
    if a.contended or b.contended:
        return CONTENDED
    if min(a.count, b.count) < MIN_REQUESTS:
        return FEW
    if a.ci95[1] < b.ci95[0]:
        return BELOW
    if a.ci95[0] > b.ci95[1]:
        return ABOVE
    return OVERLAP


def find_crossover(a: Iterable[LatencyPoint], b: Iterable[LatencyPoint], names: tuple[str, str] = ("a", "b")) -> dict[str, Any]:
    """Where a's per-token decode latency drops below b's, from two sweeps over one context key.

    Input: for each side, one LatencyPoint per swept length (any order; lengths unique per
    side). Lengths are compared where both sides were measured (`LatencyPoint.measured`); a
    length only one side reached, or neither, is listed with the reason and not compared.

    Output (profiler/runmodel.py: Crossover, without the names): `verdict`, `context` (tokens,
    or None), `bracket` ([low, high] lengths, or None), `reason` (one sentence naming the sides by
    `names`), `rule`, and
    `points`: per length {context, a, b, relation, ratio} with each side's median_s, ci95,
    count, unreachable, contended, name; `ratio` = median_a / median_b.

    Verdicts, over the compared lengths L_1 < ... < L_n with relations r_i (RULE):
    - "crossover": r_n is below and the last length not below, L_k, is above. With
      d_i = median_a(L_i) - median_b(L_i) (d_k > 0 > d_{k+1}), the crossover is the linear
      interpolation x = L_k + (L_{k+1} - L_k) * d_k / (d_k - d_{k+1}), in tokens, bracket [L_k, L_{k+1}].
    - "below at every length": every r_i is below (the crossover, if any, lies at or before L_1).
    - "above at every reachable length": every r_i is above.
    - "above at the longest reachable length": r_n is above, some earlier r_i is not (a does not
      stay below at long context).
    - "inconclusive": the length that decides it (L_n, or the last not-below length L_k) is
      overlap, contended or too few requests; the bracket is then the last decisive above length and the first
      length from which a stays below, where those exist.
    - "unavailable": no length was measured on both sides.
    Source of the claim tested: see the module docstring (domain-facts.md, SSM-Scope).
    """
    by_a = _by_context(a, "a")
    by_b = _by_context(b, "b")
    rows: list[dict[str, Any]] = []
    compared: list[tuple[float, str, float]] = []  # (context, relation, median difference in s)
    for context in sorted(set(by_a) | set(by_b)):
        pa, pb = by_a.get(context), by_b.get(context)
        row: dict[str, Any] = {"context": context, "a": _side(pa), "b": _side(pb), "relation": None, "ratio": None}
        if pa is not None and pb is not None and pa.measured and pb.measured:
            assert pa.median_s is not None and pb.median_s is not None
            row["relation"] = relation(pa, pb)
            row["ratio"] = pa.median_s / pb.median_s if pb.median_s > 0 else None
            compared.append((context, row["relation"], pa.median_s - pb.median_s))
        rows.append(row)
    return {**_verdict(compared, *names), "rule": RULE, "points": rows}


def _by_context(points: Iterable[LatencyPoint], side: str) -> dict[float, LatencyPoint]:
    out: dict[float, LatencyPoint] = {}
    for p in points:
        if p.context in out:
            raise ValueError(f"side {side} has two points at context {p.context:g}; one point per length")
        out[p.context] = p
    return out


def _side(p: LatencyPoint | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "name": p.name,
        "median_s": p.median_s,
        "ci95": list(p.ci95) if p.ci95 else None,
        "count": p.count,
        "unreachable": p.unreachable,
        "contended": p.contended,
    }


def _verdict(compared: list[tuple[float, str, float]], a: str, b: str) -> dict[str, Any]:
    none: dict[str, Any] = {"context": None, "bracket": None}
    if not compared:
        return {"verdict": UNAVAILABLE, **none, "reason": f"no context length was measured for both {a} and {b}"}
    lengths = [c for c, _, _ in compared]
    relations = [r for _, r, _ in compared]
    span = f"{_n(lengths[0])} to {_n(lengths[-1])} tokens" if len(lengths) > 1 else f"{_n(lengths[0])} tokens"
    if all(r == BELOW for r in relations):
        return {
            "verdict": BELOW_EVERYWHERE,
            **none,
            "reason": f"{a} is below {b} at every length compared ({span}): any crossover lies at or before {_n(lengths[0])} tokens",
        }
    if all(r == ABOVE for r in relations):
        return {
            "verdict": ABOVE_EVERYWHERE,
            **none,
            "reason": f"{a} is above {b} at every length both reached ({span}): any crossover lies beyond {_n(lengths[-1])} tokens",
        }
    k = max(i for i, r in enumerate(relations) if r != BELOW)  # the last length where a is not (decisively) below
    if k == len(relations) - 1 and relations[k] == ABOVE:
        return {
            "verdict": ABOVE_AT_LONGEST,
            **none,
            "reason": f"{a} is above {b} at the longest length both reached ({_n(lengths[k])} tokens), though not at every shorter one: it does not stay below",
        }
    if relations[k] == ABOVE:
        (lo, _, d_lo), (hi, _, d_hi) = compared[k], compared[k + 1]
        x = lo + (hi - lo) * d_lo / (d_lo - d_hi)
        return {
            "verdict": CROSSOVER,
            "context": x,
            "bracket": [lo, hi],
            "reason": f"{a} drops below {b} at about {_n(round(x))} tokens: above at {_n(lo)}, below from {_n(hi)} on "
            "(linear interpolation of the median difference)",
        }
    undecided = {
        OVERLAP: "the 95% intervals overlap",
        CONTENDED: "a point ran under contention",
        FEW: f"a point has fewer than {MIN_REQUESTS} requests",
    }[relations[k]]
    above = [i for i in range(k) if relations[i] == ABOVE]
    below_from = lengths[k + 1] if k + 1 < len(lengths) else None
    bracket = [lengths[above[-1]], below_from] if above and below_from is not None else None
    reason = f"at {_n(lengths[k])} tokens, the length that decides it, {undecided}"
    if above:
        reason += f"; {a} is above {b} at {_n(lengths[above[-1]])} tokens"
    if below_from is not None:
        reason += f"; below from {_n(below_from)} tokens on"
    return {"verdict": INCONCLUSIVE, **none, "bracket": bracket, "reason": reason}


def _n(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.4g}"


def latency_point(name: str, context: float, summary: WorkloadSummary | None, missing: str | None = None) -> LatencyPoint:
    """One sweep point's LatencyPoint from its summary: the median TPOT over its requests and its 95%
    interval (WorkloadSummary.metrics.tpot_s, seconds) at `context`. A point without a summary
    (`missing` says why), failed, interrupted, or without a TPOT is unreachable, with the reason."""
    if summary is None:
        return LatencyPoint(context, unreachable=missing or "no summary.json", name=name)
    if summary.status != Status.OK:
        why = f"{summary.status.value} in {summary.error.phase}: {summary.error.reason}" if summary.error else f"its run ended {summary.status.value}"
        return LatencyPoint(context, unreachable=why, name=name)
    stats = summary.metrics.tpot_s
    if stats is None or stats.median is None or stats.ci95_median is None:
        why = summary.unavailable.get("tpot_s") or "no request delivered more than one token"
        return LatencyPoint(context, unreachable=f"no TPOT: {why}", name=name)
    contended = summary.contention.contended if summary.contention else None
    return LatencyPoint(context, stats.median, stats.ci95_median, stats.count, None, contended, name)
