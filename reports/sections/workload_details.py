"""Per workload, folded: its declaration (what its phases mean), every phase's statistics, its
facts and settings, memory, and what could not be measured here and why."""

from __future__ import annotations

from typing import Any

from profiler.format import DASH, by_key, duration, duration_ci, percent, sig
from profiler.runmodel import PhaseStats, WorkloadSummary

from ..context import ReportContext
from ..facts import fact, fact_list
from ..table import Cell, Column, Fact, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section


@register_section(anchor="workloads", title="Workloads", order=120, template="workload_details.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    return {"workloads": [_workload(ctx, name, v) for name, v in ctx.views.items()]}


def _workload(ctx: ReportContext, name: str, view: WorkloadView) -> dict[str, Any]:
    s = view.summary
    return {
        "name": name,
        "id": ctx.anchors[name],
        "line": f"{s.type} · {s.status.value}" + (" · baseline" if name == ctx.baseline else ""),
        "declaration": declaration_facts(s),
        "declaration_source": s.declaration_source,
        "phases": _phases(view) if s.phases else None,
        "settings": _settings(s),
        "facts": fact_list(s.facts),
        "memory": _memory(s),
        "unavailable": [Fact(k, why) for k, why in s.unavailable.items()],
    }


def declaration_facts(s: WorkloadSummary) -> list[Fact]:
    d = s.declaration
    r = d.resources
    return [
        Fact("output unit", d.output_unit),
        Fact("request phase", d.request),
        Fact("step phase", d.step or "none"),
        Fact("deliveries", ", ".join(d.deliveries) or "any span with units > 0"),
        Fact("inference phase", d.inference or "none"),
        Fact("position unit", d.position_unit or DASH),
        Fact("state", d.state or DASH),
        *state_facts(s),
        Fact("traits", ", ".join(sorted(t.value for t in d.traits)) or "none"),
        Fact("main phase", d.main_phase()),
        Fact(
            "resources",
            f"{r.cpu_cores} CPU core{'s' if r.cpu_cores != 1 else ''}, {r.gpus} GPU{'s' if r.gpus != 1 else ''}"
            + (f", host memory {by_key('memory_bytes', r.memory_bytes)}" if r.memory_bytes else "")
            + (f", GPU memory {by_key('gpu_memory_bytes', r.gpu_memory_bytes)}" if r.gpu_memory_bytes else ""),
        ),
    ]


def state_facts(s: WorkloadSummary) -> list[Fact]:
    """The state growth the workload declared per layer, and how it held against the measurement."""
    declared = s.declared_state
    if declared is None:
        return [Fact("declared state growth", "not declared (ctx.declare_state)")]
    layers = "; ".join(
        f"{x.count} x {x.kind} {by_key('bytes', x.bytes_per_token)}/token" + (f" up to {x.bound_tokens:,} tokens" if x.bound_tokens else "")
        for x in declared.layers
    )
    growth = f"{by_key('bytes', declared.growth_bytes_per_token)}/token per sequence"
    if declared.bound_tokens is not None:
        growth += f", {by_key('bytes', declared.growth_past_bounds_bytes_per_token)}/token past {declared.bound_tokens:,} tokens"
    out = [Fact("declared state growth", f"{growth} ({declared.shape.label})"), Fact("state layers", layers)]
    check = s.state_check
    if check is not None:
        verdict = "matches the measurement" if check.steps_matching == check.steps_compared else f"differs: {check.first_mismatch}"
        out.append(Fact("declared vs measured", f"{check.steps_matching} of {check.steps_compared} steps: {verdict}"))
    return out


def _phases(view: WorkloadView) -> Table:
    s = view.summary
    columns = [
        Column("phase", "l"),
        Column("count"),
        Column("median [95% CI]"),
        Column("p90 · p99"),
        Column("mean ± std"),
        Column("IQR"),
        Column("device median"),
        Column("units / span"),
        Column("share of iteration"),
    ]
    return Table(columns, [Row(_phase_cells(view, phase, e, s.unavailable.get("device_s"))) for phase, e in s.phases.items()])


def _phase_cells(view: WorkloadView, phase: str, e: PhaseStats, device_why: str | None) -> list[Cell]:
    lat = e.latency_s
    lo, hi = lat.ci95_median or (None, None)
    roles = [
        role for role, p in (("request", view.declaration.request), ("step", view.declaration.step), ("inference", view.declaration.inference)) if p == phase
    ]
    return [
        Cell(phase, sub=", ".join(roles) or None, cls="l"),
        Cell(f"{lat.count:,}"),
        Cell(duration_ci(lat.median, lo, hi)),
        Cell(f"{duration(lat.p90)} · {duration(lat.p99)}"),
        Cell(f"{duration(lat.mean)} ± {duration(lat.std)}"),
        Cell(duration(lat.iqr)),
        Cell(duration(e.device_s.median)) if e.device_s else unavailable(device_why or "not measured"),
        Cell(sig(e.units_per_span)),
        Cell(percent(e.share_of_iteration)),
    ]


def _settings(s: WorkloadSummary) -> list[Fact]:
    out = [Fact("plugin", s.plugin), fact("params", s.params), Fact("device", s.device), Fact("seed", str(s.seed)), Fact("setup", duration(s.setup_s))]
    if s.loop:
        out.append(fact("loop", s.loop.model_dump()))
    out += [Fact("wall time", duration(s.wall_s)), Fact("spans", f"{s.span_count:,}"), Fact("sampler rows", f"{s.sample_count:,}")]
    out.append(Fact("sampler rate achieved", by_key("rate_hz", s.sample_hz_achieved)))
    if s.sweep:
        out.append(Fact("sweep point", f"{s.sweep.group}: " + ", ".join(f"{k} {by_key(k, v)}" for k, v in s.sweep.point.items())))
    if s.stages:
        out.append(Fact("stages", items=[(st.name, duration((st.end_ns - st.start_ns) / 1e9) if st.end_ns is not None else "did not end") for st in s.stages]))
    return out


def _memory(s: WorkloadSummary) -> list[Fact]:
    out = [Fact("peak RSS", by_key("peak_rss_bytes", s.memory.peak_rss_bytes))]
    for phase, peak in s.memory.device_peak_by_phase.items():
        out.append(
            Fact(f"device peak · {phase}", f"allocated {by_key('x_bytes', peak.peak_allocated_bytes)}, reserved {by_key('x_bytes', peak.peak_reserved_bytes)}")
        )
    return out
