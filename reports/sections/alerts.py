"""Warnings and problems, one line per workload ("mamba — 1 warning: kernel path: SLOW…"), the
full texts folded underneath. Warnings are the workload's own (ctx.warn: a slow fallback kernel);
problems are the profiler's: an analysis that failed, a file it could not read."""

from __future__ import annotations

from typing import Any

from ..context import ReportContext
from . import register_section

FIRST_LINE = 110


@register_section(anchor="warnings", title="Warnings and problems", order=40, template="alerts.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    warnings, problems = [], []
    for name, w in ctx.run.workloads.items():
        if w.summary.warnings:
            warnings.append(group(name, ctx.anchor(name), "warning", w.summary.warnings))
        texts = list(w.summary.problems) + [f"could not read {p}" for p in w.problems]
        if texts:
            problems.append(group(name, ctx.anchor(name), "problem", texts))
    if ctx.run.problems:
        problems.append(group("run", "#environment", "problem", [f"could not read {p}" for p in ctx.run.problems]))
    return {"warnings": warnings, "problems": problems}


def group(name: str, href: str, kind: str, texts: list[str]) -> dict[str, Any]:
    first = texts[0] if len(texts[0]) <= FIRST_LINE else texts[0][: FIRST_LINE - 1].rstrip() + "…"
    return {"name": name, "href": href, "count": f"{len(texts)} {kind}{'s' if len(texts) != 1 else ''}", "first": first, "texts": texts}
