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
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from profiler.characterize.stats import ratio_ci, slope_ci
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


def compare(w: Value, b: Value, kind: Kind, seed: int = 0) -> Comparison:
    """Ratio, interval and verdict of a workload's value `w` against the baseline's `b`."""
    if w.value is None:
        return Comparison(Verdict.UNAVAILABLE, why=w.why)
    if kind == Kind.PRESENCE:
        return Comparison(Verdict.PRESENT) if b.value is None else _ratio(w, b, kind, seed)
    if b.value is None:
        return Comparison(Verdict.BASELINE_UNAVAILABLE, why=b.why)
    if kind == Kind.SLOPE:
        return _slopes(w, b, seed)
    if kind == Kind.CATEGORY:
        return Comparison(Verdict.SAME if w.value == b.value else Verdict.DIFFERS)
    return _ratio(w, b, kind, seed)


def _slopes(w: Value, b: Value, seed: int) -> Comparison:
    wl, wh = slope_ci(*w.samples, seed=seed)
    bl, bh = slope_ci(*b.samples, seed=seed)
    if w.position_unit != b.position_unit:
        # different units (denoising steps vs tokens): only "does not grow vs grows" is comparable;
        # growing means the whole interval of the slope is above zero (a falling slope is not growth)
        w_grows, b_grows = wl > 0 and w.value > 1e-9, bl > 0 and b.value > 1e-9
        if b_grows and not w_grows:
            return Comparison(Verdict.LOWER, ratio=0.0, basis="does not grow vs grows (different position units)")
        if w_grows and not b_grows:
            return Comparison(Verdict.HIGHER, basis="grows vs does not grow (different position units)")
        both = "both grow" if w_grows else "neither grows"
        return Comparison(Verdict.NOT_COMPARABLE, why=f"{both}, and position is '{w.position_unit}' here and '{b.position_unit}' in the baseline")
    verdict = Verdict.LOWER if wh < bl else Verdict.HIGHER if wl > bh else Verdict.NO_DIFFERENCE
    return Comparison(verdict, ratio=w.value / b.value if b.value else None)


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
    if ratio is None:
        return Comparison(Verdict.NO_RATIO, ci95=ci)
    if not ci:
        return Comparison(Verdict.NO_INTERVAL, ratio)
    lo, hi = ci
    return Comparison(Verdict.HIGHER if lo > 1 else Verdict.LOWER if hi < 1 else Verdict.NO_DIFFERENCE, ratio, (float(lo), float(hi)))


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
    return f"{name}: {label} is {c.verdict.value} than {baseline}'s ({fields['value']} vs {fields['baseline_value']}).", "", ""


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
    baseline = run.baseline
    chars = run_characteristics(run, views) if chars is None else chars
    if baseline is None or baseline not in chars:
        return pd.DataFrame(columns=COLUMNS)
    base = chars[baseline]
    rules = load_rules()
    rows = []
    for name, values in chars.items():
        if name == baseline:
            continue
        for key, w in values.items():
            spec, b = CHARACTERISTICS[key], base[key]
            c = compare(w, b, spec.kind, seed)
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


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, (np.floating, np.integer)) else value


def write_differences(run_dir: Path, diffs: pd.DataFrame) -> None:
    """differences.csv and differences.json in the run directory (the same rows as the report)."""
    from profiler.measure.store import atomic_write_text

    atomic_write_text(run_dir / "differences.csv", diffs.to_csv(index=False))
    atomic_write_text(run_dir / "differences.json", diffs.to_json(orient="records", indent=1))
