"""Run directories of earlier schema versions, read as the current model (profiler/runmodel.py).

Version 1 is what the 0.1 release wrote (run.json has no `schema_version`): per-request and
control-loop metrics in one `metrics` dict, empty dicts for passes that did not run, and no
declaration. Its declaration is the workload plugin's own, computed again from the stored params
when the plugin still resolves here; otherwise it is inferred by the 0.1 rule (the step is the
phase that carried `position` with the most spans, else the leaf phase with the most counted
FLOPs; units from the declared facts), and the summary says which.

A version this profiler cannot read is one line naming the version and what to do.
"""

from __future__ import annotations

from typing import Any

from .characterize.analysis import DEADLINE_FIELDS
from .errors import UserError
from .plugin import ITERATION, Declaration, declaration_of
from .runmodel import READABLE_VERSIONS, SCHEMA_VERSION


def schema_version(info: dict[str, Any], where: str) -> int:
    """The run's schema version (1 when run.json has none); UserError for one this profiler cannot read."""
    version = info.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version not in READABLE_VERSIONS:
        shown = repr(version) if len(repr(version)) <= 40 else repr(version)[:40] + "..."
        raise UserError(
            f"{where}: run directory schema version {shown}; this profiler (schema {SCHEMA_VERSION}) reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}: install the profiler release that wrote it "
            "(its run.json names profiler_version), or run the suite again with this one"
        )
    return version


def run_info_v1(info: dict[str, Any]) -> dict[str, Any]:
    """run.json v1 -> v2: a version number; entries had no resources (and hand-written ones may lack a type)."""
    entries = info.get("workloads")
    if isinstance(entries, list):  # anything else is named by the reader (profiler/rundir.py), as is an entry that is no object
        entries = [{"type": "unknown", **e} if isinstance(e, dict) else e for e in entries]
    return {**info, "schema_version": 1, "workloads": entries}


def summary_v1(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json v1 -> v2 (see the module docstring)."""
    s = dict(summary)
    metrics = dict(s.pop("metrics", None) or {})
    deadlines: dict[str, Any] = {}
    for old, new in DEADLINE_FIELDS.items():
        if old in metrics:
            deadlines[new] = dict(metrics.pop(old))
    interval = deadlines.get("tick_interval_s")
    if interval is not None and "jitter_p99_minus_p50" in interval:
        deadlines["jitter_p99_minus_p50_s"] = interval.pop("jitter_p99_minus_p50")
    declaration, source = _declaration_v1(s)
    s["declaration"] = declaration.model_dump(mode="json")
    s["declaration_source"] = source
    request = _request_latency_v1(declaration, metrics, deadlines, s.get("phases") or {})
    if request is not None:
        metrics["request_latency_s"] = request
    s["metrics"] = metrics
    s["deadlines"] = deadlines or None
    for key in ("work", "energy", "operator_mix"):
        if not s.get(key):
            s[key] = None
    s["scaling"] = _state_fits_per_sequence(s.get("scaling") or {}, (s.get("params") or {}).get("batch_size"))
    if s.get("status") not in ("ok", "failed", "interrupted"):
        s["status"] = "not finished"
    s.setdefault("plugin", "unknown (a v1 run that did not record it)")
    s.setdefault("device", "unknown")
    s.setdefault("seed", 0)
    s.setdefault("type", "unknown")
    return s


def _state_fits_per_sequence(scaling: dict[str, Any], batch: Any) -> dict[str, Any]:
    """Schema 1 fitted the whole batch's state; schema 2 one sequence's (a batch_size param divides it)."""
    if not isinstance(batch, int) or batch <= 1:
        return scaling
    out = {}
    for phase, fits in scaling.items():
        fits = dict(fits)
        state = fits.get("state_bytes_per_position")
        if state:
            fits["state_bytes_per_position"] = {**state, "slope": state["slope"] / batch, "intercept": state["intercept"] / batch}
        out[phase] = fits
    return out


def _request_latency_v1(declaration: Declaration, metrics: dict, deadlines: dict, phases: dict) -> dict | None:
    if declaration.request == ITERATION:
        return metrics.get("e2e_s")
    if "inference_latency_s" in deadlines:  # 0.1: a control loop's request is one inference, from its observation
        return deadlines["inference_latency_s"]
    return (phases.get(declaration.request) or {}).get("latency_s")


def _declaration_v1(s: dict[str, Any]) -> tuple[Declaration, str]:
    plugin_declaration = _plugin_declaration(s.get("type"), s.get("params") or {})
    if plugin_declaration is not None:
        return plugin_declaration, "a schema-1 run: the declaration of the installed plugin, for the stored params"
    facts = s.get("facts") or {}
    step = _v1_main_phase(s)
    return (
        Declaration(
            output_unit=str(facts.get("output_unit") or "unit"),
            step=step,
            position_unit=str(facts["position_unit"]) if step and facts.get("position_unit") and step in (s.get("scaling") or {}) else None,
        ),
        "a schema-1 run: inferred by the 0.1 rule (the plugin did not resolve here); no traits",
    )


def _plugin_declaration(type_name: Any, params: dict[str, Any]) -> Declaration | None:
    if not isinstance(type_name, str) or ":" in type_name:
        return None  # a module:Class plugin needs its suite's folder on the path: not known here
    try:
        from .suite.registry import resolve_workload

        cls = resolve_workload(type_name).cls
        return declaration_of(cls, cls.Params.model_validate(params))
    except Exception:  # not installed, or its params changed since: infer instead
        return None


def _v1_main_phase(s: dict[str, Any]) -> str | None:
    """0.1's main phase: the phase carrying `position` with the most spans, else the leaf phase
    with the most counted FLOPs (an enclosing phase's FLOPs include its children's)."""
    phases = s.get("phases") or {}
    positioned = [p for p in (s.get("scaling") or {}) if p in phases and p != ITERATION]
    if positioned:
        return max(positioned, key=lambda p: phases[p]["latency_s"].get("count", 0))
    work = ((s.get("work") or {}).get("phases")) or {}
    leaves = {p: e.get("flops", 0) for p, e in work.items() if p != ITERATION and p in phases and e.get("flops")}
    if not leaves:
        return None
    ordered = sorted(leaves, key=lambda p: leaves[p], reverse=True)
    if len(ordered) > 1 and leaves[ordered[0]] >= sum(leaves[p] for p in ordered[1:]) * 0.99:
        return ordered[1]
    return ordered[0]
