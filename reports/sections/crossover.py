"""Long-context crossover: where one sweep's per-token decode latency drops below another's.

Why it exists: the Mamba-against-Transformer claim in domain-facts (SSM-Scope: slower below 8K
tokens, 4x faster at 57K) is a crossover in context length, which no single-length difference
shows. The suite's `crossover: {a, b, over}` block names the pair; the runner stores the
comparison in sweeps.json (profiler/characterize/crossover.py: find_crossover, its rule and
formula). This section reads it back: one sentence with the crossover length or why there is
none, the lengths each side reached (a failed point is listed with its reason), a table per
length, and a figure of the per-token decode latency (TPOT) against context with the 95% intervals.
"""

from __future__ import annotations

from typing import Any

from profiler.format import duration_ci, ratio
from profiler.runmodel import Crossover, CrossoverPoint, CrossoverSide

from .. import figures
from ..context import ReportContext
from ..table import Cell, Column, Row, Table
from . import register_section

RELATION_TEXT = {
    "below": "below",
    "above": "above",
    "overlap": "intervals overlap",
    "contended": "contended: undecided",
    "too few requests": "too few requests: undecided",
}


@register_section(anchor="crossover", title="Long-context crossover", order=105, template="crossover.html.j2")
def build(ctx: ReportContext) -> dict[str, Any] | None:
    found = [g.crossover for g in ctx.run.sweeps.values() if g.crossover is not None]
    if not found:
        return None
    return {"items": [_item(ctx, c) for c in found]}


def _item(ctx: ReportContext, c: Crossover) -> dict[str, Any]:
    curves = [figures.LatencyCurve(name, _measured(c.points, key), _colour(ctx, c.points, key)) for name, key in ((c.a, "a"), (c.b, "b"))]
    return {
        "a": c.a,
        "b": c.b,
        "over": c.over,
        "verdict": c.verdict,
        "sentence": _sentence(c),
        "reached": [_reached(c, name, key) for name, key in ((c.a, "a"), (c.b, "b"))],
        "unreachable": [
            f"{name} at {_n(p.context)}: {side.unreachable}"
            for p in c.points
            for name, side in ((c.a, p.a), (c.b, p.b))
            if side is not None and side.unreachable
        ],
        "table": Table(
            [
                Column(f"context ({c.over})"),
                Column(f"{c.a} TPOT [95% CI]"),
                Column(f"{c.b} TPOT [95% CI]"),
                Column(f"{c.a} / {c.b}"),
                Column(f"{c.a} against {c.b}", "l"),
            ],
            [Row([Cell(_n(p.context)), _side(p.a), _side(p.b), Cell(ratio(p.ratio)), _relation(p)]) for p in c.points],
        ),
        "figure": ctx.figure(figures.crossover(curves, c.over, c.context, c.bracket), "crossover"),
        "rule": c.rule,
    }


def _sentence(c: Crossover) -> str:
    """The answer in one sentence: the crossover length, or why there is none."""
    if c.verdict == "crossover" and c.context is not None and c.bracket is not None:
        lo, hi = c.bracket
        return (
            f"{c.a}'s per-token decode latency drops below {c.b}'s at about {_n(round(c.context))} tokens of context: "
            f"above at {_n(lo)}, below from {_n(hi)} on (linear interpolation of the median difference)."
        )
    lead = {
        "below at every length": "No crossover inside the sweep",
        "above at every reachable length": "No crossover at the lengths reached",
        "above at the longest reachable length": "No crossover at long context",
        "inconclusive": "Inconclusive",
        "unavailable": "No crossover can be stated",
    }.get(c.verdict, c.verdict)
    return f"{lead}: {c.reason}."


def _reached(c: Crossover, name: str, key: str) -> str:
    sides = [(p.context, getattr(p, key)) for p in c.points if getattr(p, key) is not None]
    ok = [_n(x) for x, s in sides if s.unreachable is None and s.median_s is not None]
    if not sides:
        return f"{name}: not swept"
    return f"{name}: {', '.join(ok) if ok else 'none'} ({len(ok)} of {len(sides)} lengths reached)"


def _measured(points: list[CrossoverPoint], key: str) -> list[tuple[float, float, float, float]]:
    out = []
    for p in points:
        s: CrossoverSide | None = getattr(p, key)
        if s is not None and s.median_s is not None and s.ci95 is not None and s.unreachable is None:
            out.append((p.context, s.median_s, s.ci95[0], s.ci95[1]))
    return out


def _colour(ctx: ReportContext, points: list[CrossoverPoint], key: str) -> str | None:
    """The colour of the side's first point, so the figure matches the others."""
    names = [s.name for p in points if (s := getattr(p, key)) is not None and s.name]
    return ctx.colours.get(names[0]) if names else None


def _side(s: CrossoverSide | None) -> Cell:
    if s is None:
        return Cell("—", cls="na", title="not swept at this length")
    if s.unreachable:
        return Cell("unreachable", cls="na", title=s.unreachable, sub=s.unreachable.split(":")[0][:60])
    lo, hi = s.ci95 or (None, None)
    return Cell(duration_ci(s.median_s, lo, hi), sub=f"{s.count} requests" + (" · contended" if s.contended else ""))


def _relation(p: CrossoverPoint) -> Cell:
    if p.relation is None:
        return Cell("not compared", cls="na l", title="measured on one side only")
    return Cell(RELATION_TEXT.get(p.relation, p.relation), cls="l")


def _n(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.4g}"
