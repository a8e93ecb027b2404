"""Where each workload differs from the baseline: one row per registered characteristic
(reports/characteristics.py), with the ratio and its 95% interval, a verdict, and the reading
and lever from reports/rules.yaml.

Verdicts (Verdict):
- ratios with samples (latencies, derived MFU/MBU): higher / lower when the 95% interval of the
  ratio excludes 1, else "no difference";
- slopes (growth per position): bootstrap intervals of both slopes; higher / lower when they do
  not overlap; across different position units only "constant vs growing" compares;
- counted values (FLOPs per byte, shares, energy): exact, so higher / lower beyond +-10%;
- categories (bound class, dominant operator): differs / same;
- present: the baseline has no such thing (deadlines);
- unavailable, baseline unavailable, not comparable, no ratio, no interval: nothing to claim.
A reading applies only where its rule's traits are all declared by the workload (and its
baseline_traits by the baseline): a reading written for one domain never lands on another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from profiler.characterize.stats import MIN_REPEATS, NO_DIFFERENCE_BAND, ratio_between_repeats, ratio_ci, slope_ci
from profiler.format import format_value
from profiler.plugin import Trait
from profiler.rundir import Run
from profiler.runmodel import StateShape, Verdict

from .characteristics import CHARACTERISTICS, Kind, Value, characterize
from .view import WorkloadView, workload_views

RULES_FILE = Path(__file__).with_name("rules.yaml")
EXACT_BAND = 0.10


@dataclass
class Comparison:
    """A workload's characteristic against the baseline's."""

    verdict: Verdict
    ratio: float | None = None
    ci95: tuple[float, float] | None = None
    why: str | None = None
    basis: str = ""


def compare(w: Value, b: Value, kind: Kind, seed: int = 0, contended: str | None = None) -> Comparison:
    """Ratio, interval and verdict of a workload's value `w` against the baseline's `b`.

    `contended`: why either side ran contended, for a characteristic read from timings; a
    direction measured under contention is inconclusive (VERDICT_RULES).
    """
    if w.value is None:
        return Comparison(Verdict.UNAVAILABLE, why=w.why)
    if kind == Kind.PRESENCE:
        return Comparison(Verdict.PRESENT) if b.value is None else _guard(_ratio(w, b, kind, seed), contended)
    if b.value is None:
        return Comparison(Verdict.BASELINE_UNAVAILABLE, why=b.why)
    if kind == Kind.SLOPE:
        return _guard(_slopes(w, b, seed), contended)
    if kind == Kind.CATEGORY:
        if w.family and b.family and w.family != b.family:
            return Comparison(Verdict.DIFFERS, basis=f"{w.family} vs {b.family}")
        unsure = [f"{who}'s class ({v.basis or 'no basis'})" for who, v in (("the workload", w), ("the baseline", b)) if v.value == Verdict.INCONCLUSIVE.value]
        if unsure:
            return Comparison(Verdict.INCONCLUSIVE, why="; ".join(unsure))
        return _guard(Comparison(Verdict.SAME if w.value == b.value else Verdict.DIFFERS), contended)
    if kind in (Kind.SAMPLES, Kind.DERIVED) and w.samples is not None and b.samples is not None:
        n_w, n_b = len(w.samples), len(b.samples)
        if min(n_w, n_b) < MIN_SAMPLES:
            return Comparison(
                Verdict.INCONCLUSIVE, ratio=_safe_ratio(w, b), why=f"too few samples (n = {n_w} and {n_b}; a verdict needs at least {MIN_SAMPLES} on each side)"
            )
    return _guard(_ratio(w, b, kind, seed), contended)


MIN_SAMPLES = 5
FLAT_WITHIN = 0.05
VERDICT_RULES = (
    f"higher / lower: the 95% interval of the ratio excludes 1 (counted values: beyond ±{EXACT_BAND:.0%}); no difference: the interval lies "
    f"within [1/{NO_DIFFERENCE_BAND}, {NO_DIFFERENCE_BAND}]; inconclusive instead of any of these when a timing was measured under contention, "
    f"when either side has fewer than {MIN_SAMPLES} samples, when an interval that includes 1 is wider than that band, or when a growth fit "
    f"cannot tell flat from growing. Growth with position: a slope is flat when its whole 95% interval changes the value by less than "
    f"{FLAT_WITHIN:.0%} over the positions measured, grows (falls) when the whole interval does so by more; a falling or unclear slope gives no direction."
)


def _guard(c: Comparison, contended: str | None) -> Comparison:
    """Contention turns a claim (a direction, or no difference) into inconclusive."""
    if contended and c.verdict in (Verdict.HIGHER, Verdict.LOWER, Verdict.DIFFERS, Verdict.SAME, Verdict.NO_DIFFERENCE):
        return Comparison(Verdict.INCONCLUSIVE, ratio=c.ratio, ci95=c.ci95, why=f"measured under contention ({contended})", basis=c.basis)
    return c


def _safe_ratio(w: Value, b: Value) -> float | None:
    try:
        return float(w.value) / float(b.value) if b.value else None
    except (TypeError, ValueError):
        return None


def slope_shape(v: Value, seed: int = 0) -> tuple[str, str]:
    """("grows" | "flat" | "falls" | "unclear", how it was decided) from the 95% interval of the
    slope, relative to the value's level over the positions measured (FLAT_WITHIN)."""
    x, y = (np.asarray(a, dtype=float) for a in v.samples)
    lo, hi = slope_ci(x, y, seed=seed)
    span = float(x.max() - x.min())
    level = float(np.median(np.abs(y)))
    if level == 0:
        shape = "flat" if lo == hi == 0 else "unclear"
        return shape, "the value is 0 throughout" if shape == "flat" else "a slope around a level of 0"
    rel_lo, rel_hi = lo * span / level, hi * span / level
    described = f"over {span:.0f} positions the 95% interval changes it by {rel_lo:+.1%} to {rel_hi:+.1%}"
    if rel_lo > FLAT_WITHIN:
        return "grows", described
    if rel_hi < -FLAT_WITHIN:
        return "falls", described
    if -FLAT_WITHIN <= rel_lo and rel_hi <= FLAT_WITHIN:
        return "flat", described
    return "unclear", described


def _slopes(w: Value, b: Value, seed: int) -> Comparison:
    """Like with like: each slope is classified first (slope_shape); only two growing slopes in the
    same unit are compared by size, and a falling or unclear slope gives no direction."""
    (ws, wdesc), (bs, bdesc) = slope_shape(w, seed), slope_shape(b, seed)
    for shape, desc, who in ((ws, wdesc, "the workload"), (bs, bdesc, "the baseline")):
        if shape == "falls":
            return Comparison(Verdict.INCONCLUSIVE, why=f"{who}'s value falls with position ({desc}): a warmup or caching effect, not growth")
        if shape == "unclear":
            return Comparison(Verdict.INCONCLUSIVE, why=f"the fit cannot tell whether {who}'s value grows ({desc})")
    same_unit = w.position_unit == b.position_unit
    if ws == bs == "flat":
        return Comparison(Verdict.NO_DIFFERENCE, ratio=None, basis="both flat")
    wl, wh = slope_ci(*w.samples, seed=seed)
    bl, bh = slope_ci(*b.samples, seed=seed)
    # "flat" is relative to the value's level: a long prompt's state changes little over a few generated tokens even
    # when it grows per token exactly as the baseline's does. Flat against growing is a direction only when the flat
    # side's whole slope interval lies below the growing side's (or the position units differ, so slopes cannot meet).
    if ws == "flat" and not same_unit:
        return Comparison(Verdict.LOWER, ratio=0.0, basis="flat vs grows (different position units)")
    if ws == "flat" and wh < bl:
        ratio = max(w.value, 0.0) / b.value  # 0 for a state that does not grow; a real fraction for a slower growth
        return Comparison(Verdict.LOWER, ratio, (max(wl, 0.0) / bh, max(wh, 0.0) / bl), basis="flat vs grows")
    if bs == "flat" and (bh < wl or not same_unit):
        return Comparison(Verdict.HIGHER, basis="grows vs flat" + ("" if same_unit else " (different position units)"))
    if not same_unit:
        return Comparison(Verdict.NOT_COMPARABLE, why=f"both grow, and position is '{w.position_unit}' here and '{b.position_unit}' in the baseline")
    if min(wl, bl) <= 0:
        return Comparison(Verdict.INCONCLUSIVE, why="one slope's interval reaches 0 while the other's overlaps it: neither flat nor growing apart")
    ratio = w.value / b.value
    lo, hi = wl / bh, wh / bl  # both slopes positive here
    if lo > 1:
        return Comparison(Verdict.HIGHER, ratio, (lo, hi))
    if hi < 1:
        return Comparison(Verdict.LOWER, ratio, (lo, hi))
    if 1 / NO_DIFFERENCE_BAND <= lo and hi <= NO_DIFFERENCE_BAND:
        return Comparison(Verdict.NO_DIFFERENCE, ratio, (lo, hi))
    return Comparison(Verdict.INCONCLUSIVE, ratio, (lo, hi), why=f"the slopes' intervals overlap and their ratio [{lo:.3g}, {hi:.3g}] is too wide to say")


def _ratio(w: Value, b: Value, kind: Kind, seed: int) -> Comparison:
    has_samples = w.samples is not None and b.samples is not None and len(w.samples) and len(b.samples)
    if kind == Kind.SAMPLES and has_samples:
        r = ratio_ci(w.samples, b.samples, seed)
        ratio, ci = r.get("ratio"), r.get("ci95")
    elif kind == Kind.DERIVED and has_samples and b.value:
        t = ratio_ci(b.samples, w.samples, seed)  # MFU, MBU scale as 1 / time for fixed work
        ratio = w.value / b.value
        ci = (ratio * t["ci95"][0] / t["ratio"], ratio * t["ci95"][1] / t["ratio"]) if t.get("ratio") else None
    elif kind == Kind.GIVEN and b.value:
        ratio = w.value / b.value
        ci = (w.ci[0] / b.ci[1], w.ci[1] / b.ci[0]) if w.ci and b.ci else None
    else:
        ratio = w.value / b.value if b.value else None
        ci = (ratio, ratio) if ratio is not None else None
        if ratio is not None and kind == Kind.EXACT:
            verdict = Verdict.HIGHER if ratio > 1 + EXACT_BAND else Verdict.LOWER if ratio < 1 - EXACT_BAND else Verdict.NO_DIFFERENCE
            return Comparison(verdict, ratio, ci)
    return _verdict(ratio, ci)


def _verdict(ratio: float | None, ci: tuple[float, float] | None, basis: str = "") -> Comparison:
    """Higher, lower, no difference or inconclusive from a ratio and its 95% interval (VERDICT_RULES)."""
    if ratio is None:
        return Comparison(Verdict.NO_RATIO, ci95=ci)
    if not ci:
        return Comparison(Verdict.NO_INTERVAL, ratio)
    lo, hi = float(ci[0]), float(ci[1])
    if lo > 1:
        return Comparison(Verdict.HIGHER, ratio, (lo, hi), basis=basis)
    if hi < 1:
        return Comparison(Verdict.LOWER, ratio, (lo, hi), basis=basis)
    if 1 / NO_DIFFERENCE_BAND <= lo and hi <= NO_DIFFERENCE_BAND:
        return Comparison(Verdict.NO_DIFFERENCE, ratio, (lo, hi), basis=basis)
    why = f"the interval [{lo:.3g}, {hi:.3g}] includes 1 but is too wide to mean no difference"
    return Comparison(Verdict.INCONCLUSIVE, ratio, (lo, hi), why=why + (f" ({basis})" if basis else ""), basis=basis)


def between_repeats(ws: list[Value], bs: list[Value]) -> Comparison:
    """The ratio of a workload's value to the baseline's from their repeats' values (one point estimate per repeat, e.g.
    each repeat's median): the ratio of geometric means, and its 95% interval from Welch's t on the log values
    (Welch 1947, with the Welch-Satterthwaite degrees of freedom; profiler/characterize/stats.py ratio_between_repeats),
    so the interval holds the variation from one run of the suite to the next, not only within one. Needs MIN_REPEATS
    positive values on each side, else inconclusive."""
    w = [float(v.value) for v in ws if v.value is not None and float(v.value) > 0]
    b = [float(v.value) for v in bs if v.value is not None and float(v.value) > 0]
    r = ratio_between_repeats(w, b)
    if r is None:
        return Comparison(
            Verdict.INCONCLUSIVE, why=f"too few repeats with a value ({len(w)} and {len(b)}; between-repeat intervals need {MIN_REPEATS} on each side)"
        )
    n_w, n_b = r["n"]
    basis = f"between repeats: {n_w} vs {n_b}, Welch t on log values"
    return _verdict(r["ratio"], tuple(r["ci95"]), basis)


# ---------------------------------------------------------------- readings (reports/rules.yaml)


class Rule(BaseModel):
    """One reading: when a characteristic has a verdict (and the workload declares the traits), what it means and the lever."""

    model_config = ConfigDict(extra="forbid")

    characteristic: str
    verdict: Verdict
    traits: frozenset[Trait] = frozenset()
    baseline_traits: frozenset[Trait] = frozenset()
    min_ratio: float | None = None
    max_ratio: float | None = None
    value: str | None = None
    """A category the workload's value must equal (e.g. a dominant operator of host/framework)."""
    state_shape: frozenset[StateShape] = frozenset()
    """The workload's declared state must have one of these shapes (state growth rows)."""
    reading: str
    lever: str = ""
    source: str = ""

    @field_validator("characteristic")
    @classmethod
    def _registered(cls, key: str) -> str:
        if key not in CHARACTERISTICS:
            raise ValueError(f"'{key}' is not a registered characteristic ({', '.join(CHARACTERISTICS)})")
        return key

    def matches(self, key: str, c: Comparison, w: Value, traits: frozenset[Trait], baseline_traits: frozenset[Trait]) -> bool:
        ratio = c.ratio or 0.0
        return (
            self.characteristic == key
            and self.verdict == c.verdict
            and (self.value is None or self.value == str(w.value))
            and (not self.state_shape or w.state_shape in {s.value for s in self.state_shape})
            and self.traits <= traits
            and self.baseline_traits <= baseline_traits
            and (self.min_ratio is None or ratio >= self.min_ratio)
            and (self.max_ratio is None or ratio <= self.max_ratio)
        )


class Rules(BaseModel):
    rules: list[Rule] = Field(default_factory=list)


def load_rules(path: Path = RULES_FILE) -> list[Rule]:
    """The readings, validated (unknown characteristics, verdicts or traits are errors naming the rule)."""
    data = yaml.safe_load(path.read_text()) or []
    try:
        return Rules(rules=data).rules
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ValueError(f"{path}: rule {e['loc'][1] if len(e['loc']) > 1 else '?'}: {'.'.join(map(str, e['loc'][2:]))}: {e['msg']}") from None


def reading(
    rules: list[Rule], key: str, c: Comparison, name: str, baseline: str, w: Value, b: Value, views: tuple[WorkloadView, WorkloadView]
) -> tuple[str, str, str]:
    """(reading, lever, source) for one row: the first matching rule (bounded rules come first)."""
    label = CHARACTERISTICS[key].label
    if c.verdict == Verdict.NO_DIFFERENCE:
        return f"No difference from {baseline} within the 95% interval.", "", ""
    if c.verdict == Verdict.INCONCLUSIVE:
        return f"Inconclusive: {c.why or 'no reason recorded'}.", "", ""
    if c.verdict in (Verdict.UNAVAILABLE, Verdict.BASELINE_UNAVAILABLE, Verdict.NOT_COMPARABLE):
        return f"Not compared: {c.why or 'unavailable'}.", "", ""
    fields = {
        "workload": name,
        "baseline": baseline,
        "value": format_value(w.value, w.unit),
        "baseline_value": format_value(b.value, b.unit),
        "ratio": f"{c.ratio:.3g}x" if isinstance(c.ratio, float) else "—",
        "unit": w.unit.split("/")[-1],
    }
    if c.verdict == Verdict.SAME:
        return f"Same as {baseline} ({fields['value']}).", "", ""
    traits, baseline_traits = views[0].declaration.traits, views[1].declaration.traits
    for rule in rules:
        if rule.matches(key, c, w, traits, baseline_traits):
            return rule.reading.format(**fields), rule.lever, rule.source
    if c.verdict in (Verdict.HIGHER, Verdict.LOWER):
        return f"{name}: {label} is {c.verdict.value} than {baseline}'s ({fields['value']} vs {fields['baseline_value']}).", "", ""
    if c.verdict == Verdict.DIFFERS:
        return f"{name}: {label} differs from {baseline}'s ({fields['value']} vs {fields['baseline_value']}).", "", ""
    return f"{name}: {label}: {c.verdict.value} ({fields['value']} vs {baseline}'s {fields['baseline_value']}).", "", ""


# ---------------------------------------------------------------- the table


def run_characteristics(run: Run, views: dict[str, WorkloadView] | None = None) -> dict[str, dict[str, Value]]:
    """The characteristics of every workload that ran to the end (computed once per report:
    they read every measured span)."""
    views = workload_views(run) if views is None else views
    return {name: characterize(v) for name, v in views.items() if v.ok}


COLUMNS = [
    "workload", "characteristic", "label", "short", "better", "baseline", "baseline_value", "baseline_unit", "value", "unit",
    "ratio", "ci_low", "ci_high", "verdict", "basis", "reading", "lever", "source", "why_unavailable",
]  # fmt: skip


def differences(run: Run, seed: int = 0, chars: dict[str, dict[str, Value]] | None = None, views: dict[str, WorkloadView] | None = None) -> pd.DataFrame:
    """The differences table: one row per (workload, characteristic) against the baseline."""
    views = workload_views(run) if views is None else views
    chars = run_characteristics(run, views) if chars is None else chars
    baselines = {"architecture": run.baseline, "serving": serving_baseline(run)}
    if baselines["architecture"] not in chars:
        return pd.DataFrame(columns=COLUMNS)
    repeats = {name: repeat_characteristics(views[name]) for name in chars}
    rules = load_rules()
    rows = []
    for name, values in chars.items():
        for key, w in values.items():
            spec = CHARACTERISTICS[key]
            baseline = baselines.get(spec.axis)
            if baseline is None or baseline == name or baseline not in chars:
                continue
            if spec.axis == "serving" and w.value is None:
                continue  # a request-pattern trait the workload does not have (no load): nothing to set beside the engine's
            b = chars[baseline][key]
            contended = _contended(views[name], views[baseline]) if spec.timing else None
            if spec.kind in (Kind.SAMPLES, Kind.DERIVED) and _positive(w, b) and repeats[name] and repeats[baseline]:
                c = _guard(between_repeats([r[key] for r in repeats[name]], [r[key] for r in repeats[baseline]]), contended)
            else:
                c = compare(w, b, spec.kind, seed, contended)
            if c.verdict == Verdict.UNAVAILABLE and spec.kind == Kind.PRESENCE:
                continue  # neither has deadlines: nothing to say
            text, lever, source = reading(rules, key, c, name, baseline, w, b, (views[name], views[baseline]))
            lo, hi = c.ci95 or (None, None)
            rows.append(
                {
                    "workload": name, "characteristic": key, "label": spec.label, "short": spec.short, "better": spec.better.value,
                    "baseline": baseline, "baseline_value": _plain(b.value), "baseline_unit": b.unit, "value": _plain(w.value), "unit": w.unit,
                    "ratio": c.ratio, "ci_low": lo, "ci_high": hi, "verdict": c.verdict.value, "basis": c.basis or w.basis,
                    "reading": text, "lever": lever, "source": source, "why_unavailable": c.why,
                }
            )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def serving_baseline(run: Run) -> str | None:
    """The workload request-pattern and objective characteristics are compared with: the suite's serving_baseline (the
    first point when it is a sweep), else the first workload that ran under a load; None when none did."""
    name = run.info.serving_baseline
    if name in run.workloads:
        return name
    group = [n for n, w in run.workloads.items() if w.summary.sweep and w.summary.sweep.group == name]
    if group:
        return group[0]
    return next((n for n, w in run.workloads.items() if w.summary.serving is not None), None)


def _positive(*values: Value) -> bool:
    """Every value is a positive number: a ratio of geometric means applies (between_repeats)."""
    try:
        return all(v.value is not None and float(v.value) > 0 for v in values)
    except (TypeError, ValueError):
        return False


def repeat_characteristics(view: WorkloadView) -> list[dict[str, Value]]:
    """The characteristics of each completed repeat of a run with measure.repeats > 1 (profiler/run/repeats.py); [] for
    a run without repeats."""
    return [characterize(WorkloadView(r, view.sweeps)) for r in view.run.repeats if r.status == "ok"]


def _contended(w: WorkloadView, b: WorkloadView) -> str | None:
    """Why the timings of this pair are not trusted: either side ran contended (runmodel.Contention)."""
    reasons = [f"{v.name}: {v.summary.contention.summary}" for v in (w, b) if v.summary.contention is not None and v.summary.contention.contended]
    return "; ".join(reasons) or None


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, (np.floating, np.integer)) else value


def write_differences(run_dir: Path, diffs: pd.DataFrame) -> None:
    """differences.csv and differences.json in the run directory (the same rows as the report)."""
    from profiler.measure.store import atomic_write_text

    atomic_write_text(run_dir / "differences.csv", diffs.to_csv(index=False))
    atomic_write_text(run_dir / "differences.json", cast(str, diffs.to_json(orient="records", indent=1)))
