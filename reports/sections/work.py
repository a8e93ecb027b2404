"""Work, intensity and ceilings: FLOPs and bytes per phase (counted and analytic), intensity,
achieved rates, MFU, MBU and bound class against this machine's measured ceilings, and the
roofline. The main phase (declared step, else request) is marked. Bytes are shown twice where
both apply: the counted traffic (upper bound) of every phase, and for a decode step the bytes it
must read (weights once + state), the basis of its MBU (runmodel.MbuBasis); the counted
traffic's MBU stays beside it, labelled. A phase that beat a ceiling
shows why in place of a percentage (runmodel.Work.ceiling_exceeded), never a utilization above
100%; the ceilings are shown with their spread and where they came from (the cache and its age)."""

from __future__ import annotations

from typing import Any

from profiler.format import duration, percent, si, sig
from profiler.plugin import ITERATION
from profiler.runmodel import Calibration, CeilingSpread, MbuBasis, PhaseWork

from .. import figures
from ..context import ReportContext
from ..table import Cell, Column, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section


@register_section(anchor="work", title="Work, intensity and ceilings", order=70, template="work.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    columns = [
        Column("phase", "l"),
        Column("FLOPs", title="counted by FlopCounterMode, plus analytic formulas declared by the workload"),
        Column("counted bytes", title=f"{MbuBasis.COUNTED.label}: unfused op-level traffic, inputs and outputs of every op (indexing ops: their rows)"),
        Column("must read", title="decode steps: the bytes a step must read, weights once + the state at the step's context; the basis of their MBU"),
        Column("intensity", title="FLOPs / counted bytes"),
        Column("time", title="median per span; host or device time"),
        Column("achieved", title="FLOP/s; below it, counted bytes/s"),
        Column("MFU"),
        Column("MBU", title="achieved bytes/s on the basis named below the value / the measured copy bandwidth"),
        Column("MBU counted", title=f"{MbuBasis.COUNTED.label}: counted bytes / time / copy bandwidth"),
        Column("bound", "l"),
    ]
    rows: list[Row] = []
    rules = set()
    for name, view in ctx.views.items():
        rows.append(Row(group=name, group_href=ctx.anchor(name)))
        rows.extend(_rows(view, len(columns)))
        if view.work and view.work.bound_rule:
            rules.add(view.work.bound_rule)
    cal = ctx.run.calibration
    return {
        "calibration": _calibration(cal),
        "table": Table(columns, rows, cls="wide"),
        # notes under the table: phases counted on one thread, and phases whose MFU or MBU is withheld
        "partial": [
            f"{name}: {', '.join(v.work.partial_phases)} counted on their own thread only" for name, v in ctx.views.items() if v.work and v.work.partial_phases
        ]
        + [f"{name}: {phase}: no MFU/MBU shown: {why}" for name, v in ctx.views.items() if v.work for phase, why in v.work.ceiling_exceeded.items()],
        "bound_rules": sorted(rules),
        "mbu_rules": sorted({v.work.mbu_basis_rule for v in ctx.views.values() if v.work and v.work.mbu_basis_rule}),
        "required_unavailable": [
            f"{name}: MBU on counted traffic: {v.work.required_unavailable}" for name, v in ctx.views.items() if v.work and v.work.required_unavailable
        ],
        "roofline": ctx.figure(_roofline(ctx, cal), "roofline"),
    }


def _rows(view: WorkloadView, width: int) -> list[Row]:
    work = view.work
    if work is None or not work.phases:
        return [Row([unavailable(view.summary.unavailable.get("work") or "not counted", "unavailable", colspan=width, show_why=True)])]
    rows = [Row(_phase_cells(view, phase, e)) for phase, e in work.phases.items() if phase != ITERATION]
    rows += [Row([Cell(phase, cls="l"), unavailable(why, "not counted", colspan=width - 1, show_why=True)]) for phase, why in work.uncounted_phases.items()]
    return rows


def _phase_cells(view: WorkloadView, phase: str, e: PhaseWork) -> list[Cell]:
    partial = view.work.partial_phases if view.work else {}
    beaten = view.work.ceiling_exceeded.get(phase) if view.work else None
    notes = [n for n, on in (("main phase", phase == view.main_phase), ("this thread only", phase in partial)) if on]
    return [
        Cell(phase, sub=" · ".join(notes) or None, cls="l", title=partial.get(phase)),
        Cell(si(e.flops, "FLOP"), sub=f"incl. {si(e.flops_analytic, 'FLOP')} analytic" if e.flops_analytic else None, title=f"{e.spans_counted} spans counted"),
        Cell(si(e.bytes, "B")),
        _required(e),
        Cell(f"{sig(e.intensity_flop_per_byte)} FLOP/B" if e.intensity_flop_per_byte is not None else "—"),
        Cell(duration(e.time_s), sub=e.time_source),
        Cell(si(e.achieved_flops_per_s, "FLOP/s"), sub=si(e.achieved_bytes_per_s, "B/s")),
        _utilisation(e.mfu, beaten),
        _mbu(e, beaten),
        _utilisation(e.counted_mbu(), beaten),
        Cell(
            e.bound.value if e.bound else "—",
            cls="l" if e.bound else "l na",
            title=e.bound_basis if e.bound else beaten or e.bound_basis or "no ceilings or no counted bytes",
        ),
    ]


def _required(e: PhaseWork) -> Cell:
    """The bytes a decode step must read, weights + state below it; a dash for a phase whose MBU is on counted traffic."""
    if e.required_bytes is None:
        return Cell("—", title="not a decode step: its MBU is on counted traffic (upper bound)")
    return Cell(si(e.required_bytes, "B"), sub=f"{si(e.required_weight_bytes, 'B')} weights + {si(e.required_state_bytes, 'B')} state")


def _mbu(e: PhaseWork, beaten: str | None) -> Cell:
    """MBU with its basis below it (must read, or counted traffic)."""
    cell, basis = _utilisation(e.mbu, beaten), e.basis()
    if basis is not None and "na" not in cell.cls:
        cell.sub = "must read" if basis == MbuBasis.REQUIRED else "counted"
        cell.title = basis.label
    return cell


def _utilisation(value: float | None, beaten: str | None) -> Cell:
    """MFU or MBU as a percentage; where the phase beat its ceiling, that reason instead (the note under the table says it in full)."""
    if value is None and beaten:
        return unavailable(beaten, "above ceiling")
    return Cell(percent(value))


def _calibration(cal: Calibration) -> dict[str, Any]:
    if not cal.ok:
        return {"ok": False, "why": cal.unavailable or "calibration.json is missing or incomplete"}
    return {
        "ok": True,
        "peaks": ", ".join(f"{dtype} {si(v, 'FLOP/s')}{_spread(cal.matmul_spread.get(dtype), 'FLOP/s')}" for dtype, v in cal.matmul_flops_per_s.items()),
        "bandwidth": si(cal.copy_bytes_per_s, "B/s") + _spread(cal.copy_spread, "B/s"),
        "when": "; ".join(x for x in (cal.measured_utc or "date unknown", cal.provenance) if x),
        "where": f"on cluster node {cal.node} (each point's MFU and MBU use its own node's: node.json)" if cal.node else "on this machine",
        "method": "; ".join(cal.method.values()),
    }


def _spread(spread: CeilingSpread | None, unit: str) -> str:
    """' (best of 14 trials, median 190 GFLOP/s)', and whether it settled; '' for a calibration without trials (older runs)."""
    if spread is None:
        return ""
    settled = "" if spread.stable else ", not stable"
    return f" (best of {spread.trials} trials, median {si(spread.median, unit)}{settled})"


def _roofline(ctx: ReportContext, cal: Calibration) -> Any:
    points = [
        figures.RooflinePoint(name, phase, e.intensity_flop_per_byte, e.achieved_flops_per_s, phase == v.main_phase)
        for name, v in ctx.views.items()
        if v.work
        for phase, e in v.work.phases.items()
        if phase != ITERATION and e.intensity_flop_per_byte and e.achieved_flops_per_s
    ]
    dtypes = {v.summary.facts.get("dtype") for v in ctx.views.values()}
    peak = max((cal.matmul_flops_per_s.get(d, 0.0) for d in dtypes if isinstance(d, str)), default=0.0) or None
    return figures.roofline(points, peak, cal.copy_bytes_per_s, ctx.colours)
