"""`python -m profiler compare RUN_A RUN_B`: an A/B report of two runs of the same workloads.

For every workload present in both runs, each per-request metric and each phase's latency is
compared as B / A with a 95% interval ("no difference" when the interval includes 1), on one of
two bases (the table's `basis` column):
- between repeats, when both runs were made with `run --repeats N` and each has at least
  MIN_REPEATS completed repeats of the workload: one median per repeat, the ratio of their
  geometric means with a Welch t interval on the logs (profiler/characterize/stats.py
  ratio_between_repeats), so the interval holds the variation from one run of the suite to the
  next;
- otherwise over iterations: the ratio of the pooled medians with a 95% bootstrap interval.
A workload measured under contention in either run (its summary's `contention.contended`) gives
no claim: each of its rows is "inconclusive" with the reason (which run, and its contention
summary). `--fail-if "e2e_s>1.10"` (or "llm:tpot_s>1.05", "phase:decode_step>1.1",
"llm:phase:decode_step>1.1") makes the command exit 1 when a ratio crosses the threshold, so it
can guard CI. The rule (RULE) reads the interval, not the point estimate: a ratio of 1.14 whose
interval is [0.67, 1.51] has not been shown to be above 1.10, and a guard that fired on it would
fail CI on noise. A threshold is a positive ratio: B/A is always above 0, so 'e2e_s>0' (always
crossed) or 'e2e_s<-1' (never) is a usage error. A condition on a workload measured under
contention in A or B is "inconclusive": reported (on stderr and the page) with the reason, and it
does not fail the command, since timings measured beside other work say nothing either way.

A guard must never pass because it checked nothing: a condition naming a workload, metric or
phase neither run has is a usage error (one line listing the valid names) raised before anything
is written; a guarded workload missing from B, or without measured samples there (it failed or
was interrupted first), fails the condition with the reason. When the runs differ in parameters,
device, machine, status or schema version, each difference is a note on the page and the
terminal: a ratio across different settings is not a regression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from profiler.characterize.analysis import NS, request_metrics
from profiler.characterize.stats import MIN_REPEATS, ratio_between_repeats, ratio_ci
from profiler.errors import UserError, suggest
from profiler.format import duration, rate, ratio, sig
from profiler.rundir import Run, WorkloadRun

from .render import render
from .verdicts import css_class

CONDITION = re.compile(r"^\s*(?P<left>.*?)\s*(?P<op>[<>])\s*(?P<threshold>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*$")
RATIO_RANGE = (1e-3, 1e3)
"""The thresholds a guard may take: a B/A ratio beyond a thousandfold either way is no guard (nothing real crosses
it unnoticed) and usually a typo (1e10 for 1.10)."""
METRIC_NAME = re.compile(r"^(phase:)?[A-Za-z_][\w.\-]*$")
PHASE = "phase:"
REQUEST_METRICS = ("e2e_s", "ttft_s", "tpot_s", "itl_s", "output_units_per_s")
RULE = (
    "'METRIC>T' fails only when the whole 95% interval of B/A lies above T (its lower bound exceeds T), 'METRIC<T' only when it lies "
    "below T (its upper bound is under T); an interval that includes T is 'not shown to cross' and passes; a guarded workload missing "
    "from B, or with no measured samples there, fails; a guarded workload measured under contention in A or B is 'inconclusive': "
    "reported with the reason, not failed"
)
INCONCLUSIVE = "inconclusive"
BOOTSTRAP_BASIS = "iterations (bootstrap)"
NOT_A_REGRESSION = "a ratio across different settings is not a regression"


@dataclass(frozen=True)
class Condition:
    """One `--fail-if`: B/A of `metric` (of `workload`, or of every workload of A that has it) against `threshold`."""

    workload: str | None
    metric: str
    op: str
    threshold: float
    text: str

    def crossed(self, low: float, high: float) -> bool:
        """The whole 95% interval [low, high] lies beyond the threshold (RULE)."""
        return low > self.threshold if self.op == ">" else high < self.threshold

    def includes_threshold(self, low: float, high: float) -> bool:
        return low <= self.threshold <= high

    @property
    def side(self) -> str:
        return "above" if self.op == ">" else "below"


def parse_condition(text: str) -> Condition:
    """'[WORKLOAD:]METRIC>T' or '<T'; METRIC is a request metric or phase:NAME. UserError (one line) when malformed."""
    m = CONDITION.match(text)
    left = m["left"] if m else ""
    if left.startswith(PHASE):
        workload, metric = None, left
    elif f":{PHASE}" in left:
        workload, _, rest = left.partition(f":{PHASE}")
        metric = PHASE + rest
    elif ":" in left:
        workload, _, metric = left.rpartition(":")
    else:
        workload, metric = None, left
    if not m or not METRIC_NAME.match(metric) or workload == "":
        raise UserError(f"--fail-if '{text}': expected METRIC>RATIO or WORKLOAD:METRIC<RATIO, e.g. 'e2e_s>1.10' or 'llm:phase:decode_step>1.05'")
    threshold = float(m["threshold"])
    if threshold > 0 and not RATIO_RANGE[0] <= threshold <= RATIO_RANGE[1]:
        raise UserError(
            f"--fail-if '{text}': threshold {m['threshold']} is outside {RATIO_RANGE[0]:g} to {RATIO_RANGE[1]:g}, the B/A ratios a guard may take; "
            f"give e.g. '{left}>1.10' (B more than 10% above A) or '{left}<0.90'"
        )
    if threshold <= 0:
        always = "always be crossed" if m["op"] == ">" else "never be crossed"
        raise UserError(
            f"--fail-if '{text}': threshold {m['threshold']} is not a positive ratio (B/A is always above 0, so this condition would {always}); "
            f"give a ratio above 0, e.g. '{left}>1.10' (B more than 10% above A) or '{left}<0.90'"
        )
    return Condition(workload, metric, m["op"], threshold, text)


class Outcome(str, Enum):
    CROSSED = "crossed"
    NOT_SHOWN = "not shown to cross"
    NOT_CROSSED = "not crossed"
    MISSING = "cannot be checked"
    INCONCLUSIVE = "inconclusive"
    """Measured under contention in A or B: no claim either way, and not a failure."""

    @property
    def failed(self) -> bool:
        return self in (Outcome.CROSSED, Outcome.MISSING)


@dataclass(frozen=True)
class Evaluation:
    """One condition on one workload: its outcome, with the ratio and interval, or why it cannot be checked (or is
    inconclusive)."""

    condition: Condition
    workload: str
    outcome: Outcome
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    why: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome.failed

    @property
    def text(self) -> str:
        c = self.condition
        head = f"{c.text}: {self.workload}"
        if self.outcome == Outcome.MISSING:
            return f"{head}: cannot be checked: {self.why}"
        if self.outcome == Outcome.INCONCLUSIVE:
            return f"{head}: {self.why}"
        lo, hi = self.ci or (float("nan"), float("nan"))
        value = f"{head} {c.metric} B/A {self.ratio:.3f} [{lo:.3f}, {hi:.3f}]"
        threshold = f"{c.threshold:g}"
        if self.outcome == Outcome.CROSSED:
            return f"{value}: crossed (the whole interval lies {c.side} {threshold})"
        if self.outcome == Outcome.NOT_SHOWN:
            return f"{value}: not shown to cross {threshold} (the interval includes it)"
        return f"{value}: not crossed (the whole interval lies {'below' if c.op == '>' else 'above'} {threshold})"


@dataclass
class Comparison:
    """B against A: the table of ratios, the conditions' outcomes, how the runs differ, and other notes."""

    a: Run
    b: Run
    table: pd.DataFrame
    checks: list[Evaluation] = field(default_factory=list)
    """Every condition's outcome on every workload it guards, in the order of the conditions."""
    differences: list[str] = field(default_factory=list)
    """How the runs' settings differ (parameters, device, machine, status, schema version): one line each."""
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [e.text for e in self.evaluations if e.failed]

    @property
    def evaluations(self) -> list[Evaluation]:
        """The decided outcomes: crossed, not shown to cross, not crossed, cannot be checked."""
        return [e for e in self.checks if e.outcome != Outcome.INCONCLUSIVE]

    @property
    def inconclusive(self) -> list[Evaluation]:
        """The outcomes on workloads measured under contention: reported, never failed."""
        return [e for e in self.checks if e.outcome == Outcome.INCONCLUSIVE]


def samples(run: Run, name: str) -> dict[str, np.ndarray]:
    """Per-request metrics and per-phase latencies (s) of one workload's measured spans; {} when none."""
    return workload_samples(run.workloads[name])


def workload_samples(w: WorkloadRun) -> dict[str, np.ndarray]:
    """Per-request metrics and per-phase latencies (s) of a workload's measured spans (a run's pooled workload, or one
    repeat of it); {} when none."""
    m = w.measured
    if m.empty:
        return {}
    d = w.declaration
    out = dict(request_metrics(m, d.deliveries, d.request, keyed_only=bool(d.streams)))
    for phase, g in m.groupby("phase"):
        if phase != "iteration":
            out[f"{PHASE}{phase}"] = ((g["end_ns"] - g["start_ns"]) / NS).to_numpy(dtype=float)
    return {k: v for k, v in out.items() if len(v)}


def repeat_medians(w: WorkloadRun) -> list[dict[str, float]]:
    """Each completed repeat's median of every metric (workload_samples of the repeat), when the workload has at least
    MIN_REPEATS completed repeats (`run --repeats N`, profiler/run/repeats.py); [] otherwise."""
    done = [r for r in w.repeats if r.status == "ok"]
    if len(done) < MIN_REPEATS:
        return []
    return [{k: float(np.median(v)) for k, v in workload_samples(r).items()} for r in done]


def contention(a: Run, b: Run, name: str) -> str | None:
    """Why the timings of workload `name` are not trusted: 'measured under contention in A (...)', 'in B (...)' or
    'in A and B (A: ...; B: ...)' with the runs' contention summaries; None when neither run measured it contended."""
    contended = {
        label: w.summary.contention.summary or "contended"
        for label, run in (("A", a), ("B", b))
        if (w := run.workloads.get(name)) is not None and w.summary.contention is not None and w.summary.contention.contended
    }
    if not contended:
        return None
    if len(contended) == 1:
        ((label, summary),) = contended.items()
        return f"measured under contention in {label} ({summary})"
    return "measured under contention in A and B (" + "; ".join(f"{label}: {summary}" for label, summary in contended.items()) + ")"


def compare_runs(a: Run, b: Run, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """The table of B/A ratios of every metric of every common workload, and notes on workloads in one run only and on
    what could not be read (unread_notes)."""
    sa = {n: samples(a, n) for n in a.workloads}
    sb = {n: samples(b, n) for n in b.workloads}
    table = _table(a, b, sa, sb, seed)
    return table, _only_in_one(a, b) + unread_notes(a, b, sa, sb)


def unread_notes(a: Run, b: Run, sa: dict[str, dict[str, np.ndarray]], sb: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """A note per problem met reading either run's files ('run A: <file>: <what is wrong>', after every table the comparison
    reads was read), and one per workload of both runs left out of the table for want of measured samples in one of
    them, so that a workload never drops out of a comparison silently."""
    notes = [f"run {label}: {problem}" for label, run in (("A", a), ("B", b)) for problem in run.all_problems()]
    for name in (n for n in a.workloads if n in b.workloads):
        empty = [(label, run.workloads[name]) for label, run, s in (("A", a, sa), ("B", b, sb)) if not s.get(name)]
        if empty:
            why = "; ".join(
                f"{label} has no measured samples ({w.status}{', its files could not be read: see above' if w.problems else ''})" for label, w in empty
            )
            notes.append(f"{name}: not compared: {why}")
    return notes


def build_comparison(a: Run, b: Run, conditions: list[Condition], seed: int = 0) -> Comparison:
    """Compare B with A and check every condition. UserError (one line) when a condition names a
    workload, metric or phase that neither run has: raised before anything is written."""
    sa = {n: samples(a, n) for n in a.workloads}
    sb = {n: samples(b, n) for n in b.workloads}
    for c in conditions:
        check_names(c, a, b, sa, sb)
    table = _table(a, b, sa, sb, seed)
    rows = {(r["workload"], r["metric"]): r for r in table.to_dict("records")}
    evaluations = [e for c in conditions for e in evaluate(c, a, b, sa, sb, rows)]
    return Comparison(a, b, table, evaluations, run_differences(a, b), _only_in_one(a, b) + unread_notes(a, b, sa, sb))


COLUMNS = ["workload", "metric", "a_median", "b_median", "ratio", "ci_low", "ci_high", "basis", "verdict", "why"]


def _table(a: Run, b: Run, sa: dict[str, dict[str, np.ndarray]], sb: dict[str, dict[str, np.ndarray]], seed: int) -> pd.DataFrame:
    """One row per metric of every workload in both runs: the pooled medians, B/A with its 95% interval (between repeats
    when both runs have MIN_REPEATS completed repeats of the workload, else over iterations) and the verdict."""
    rows = []
    for name in (n for n in sa if n in sb):
        ra = repeat_medians(a.workloads[name])
        rb = repeat_medians(b.workloads[name]) if ra else []
        why = contention(a, b, name)
        for metric in sorted(set(sa[name]) & set(sb[name]), key=lambda k: (k not in REQUEST_METRICS, k)):
            r = None
            if ra and rb:
                r = ratio_between_repeats([m[metric] for m in rb if metric in m], [m[metric] for m in ra if metric in m])
            if r is not None:
                n_b, n_a = r["n"]
                basis = f"between repeats: {n_a} vs {n_b}"
            else:
                r, basis = ratio_ci(sb[name][metric], sa[name][metric], seed), BOOTSTRAP_BASIS
            if r.get("ratio") is None:
                continue
            lo, hi = r["ci95"]
            rows.append(
                {
                    "workload": name,
                    "metric": metric,
                    "a_median": float(np.median(sa[name][metric])),
                    "b_median": float(np.median(sb[name][metric])),
                    "ratio": r["ratio"],
                    "ci_low": lo,
                    "ci_high": hi,
                    "basis": basis,
                    "verdict": INCONCLUSIVE if why else "higher" if lo > 1 else "lower" if hi < 1 else "no difference",
                    "why": why,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _only_in_one(a: Run, b: Run) -> list[str]:
    return [f"{n}: only in A" for n in a.workloads if n not in b.workloads] + [f"{n}: only in B" for n in b.workloads if n not in a.workloads]


# ---------------------------------------------------------------- conditions


def check_names(c: Condition, a: Run, b: Run, sa: dict[str, dict[str, np.ndarray]], sb: dict[str, dict[str, np.ndarray]]) -> None:
    """UserError naming what is unknown and listing the valid names: a typo must not turn a guard off.

    A workload is known when A has it (B/A needs A); a metric or phase when either run has it for
    that workload (or, without a workload, for any workload). Names that one run lacks are not
    typos: `evaluate` fails the condition with the reason."""
    both = [n for n in a.workloads if n in b.workloads]
    if c.workload is not None and c.workload not in a.workloads:
        where = " (it is only in B, so B/A has no baseline)" if c.workload in b.workloads else suggest(c.workload, a.workloads)
        raise UserError(f"--fail-if '{c.text}': unknown workload '{c.workload}'{where}; workloads in both runs: {_names(both)}")
    names = [c.workload] if c.workload is not None else list(dict.fromkeys([*a.workloads, *b.workloads]))
    known = {m for n in names for m in (*sa.get(n, {}), *sb.get(n, {}))}
    if c.metric in known:
        return
    in_both = list(dict.fromkeys(m for n in names if n in both for m in sorted(sa[n], key=_order) if m in sb[n]))
    of = f"of {c.workload} " if c.workload is not None else ""
    if c.metric.startswith(PHASE):
        phases = [m.removeprefix(PHASE) for m in in_both if m.startswith(PHASE)]
        wrong = c.metric.removeprefix(PHASE)
        raise UserError(f"--fail-if '{c.text}': unknown phase '{wrong}'{suggest(wrong, phases)}; phases {of}in both runs: {_names(phases)}")
    metrics = [m for m in in_both if not m.startswith(PHASE)]
    raise UserError(
        f"--fail-if '{c.text}': unknown metric '{c.metric}'{suggest(c.metric, metrics)}; metrics {of}in both runs: {_names(metrics)} (or phase:NAME)"
    )


def _order(metric: str) -> tuple[bool, int | str]:
    return (metric not in REQUEST_METRICS, REQUEST_METRICS.index(metric) if metric in REQUEST_METRICS else metric)


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def evaluate(
    c: Condition, a: Run, b: Run, sa: dict[str, dict[str, np.ndarray]], sb: dict[str, dict[str, np.ndarray]], rows: dict[tuple[str, str], dict[str, Any]]
) -> list[Evaluation]:
    """The condition on each workload it guards: the named one, or every workload of A that measured the metric.
    Nothing to compare in B fails (MISSING); a workload measured under contention in A or B is INCONCLUSIVE."""
    guarded = [c.workload] if c.workload is not None else [n for n in a.workloads if c.metric in sa[n]]
    if not guarded:
        return [Evaluation(c, "every workload", Outcome.MISSING, why=f"no workload of A measured {c.metric} (B did)")]
    out = []
    for name in guarded:
        row = rows.get((name, c.metric))
        if row is None:
            out.append(Evaluation(c, name, Outcome.MISSING, why=_why_missing(c.metric, name, a, b, sa, sb)))
            continue
        low, high = row["ci_low"], row["ci_high"]
        if why := contention(a, b, name):
            out.append(Evaluation(c, name, Outcome.INCONCLUSIVE, row["ratio"], (low, high), why=why))
            continue
        outcome = Outcome.CROSSED if c.crossed(low, high) else Outcome.NOT_SHOWN if c.includes_threshold(low, high) else Outcome.NOT_CROSSED
        out.append(Evaluation(c, name, outcome, row["ratio"], (low, high)))
    return out


def _why_missing(metric: str, name: str, a: Run, b: Run, sa: dict[str, dict[str, np.ndarray]], sb: dict[str, dict[str, np.ndarray]]) -> str:
    if name not in b.workloads:
        return "missing from B"
    if not sb[name]:
        w = b.workloads[name]
        error = w.summary.error
        where = f" (in phase '{error.phase}': {error.reason})" if error else ""
        return f"{w.status} in B with no measured samples{where}"
    if metric not in sb[name]:
        return f"B measured no {metric}"
    if metric not in sa[name]:
        return f"A measured no {metric}"
    return "no ratio: A's median is zero"


# ---------------------------------------------------------------- how the runs differ


def run_differences(a: Run, b: Run) -> list[str]:
    """One line per setting in which B's run differs from A's: schema version, device, machine, run status, executor; per
    common workload its parameters, status, and the cores and threads it ran on."""
    out = []
    run_settings = {
        "schema version": (a.schema_version, b.schema_version),
        "device": (a.info.device, b.info.device),
        "CPU": (a.env.get("cpu_model"), b.env.get("cpu_model")),
        "GPUs": (_gpus(a), _gpus(b)),
        "run status": (a.info.status.value, b.info.status.value),
        "executor": (a.info.executor, b.info.executor),
    }
    for what, (va, vb) in run_settings.items():
        if va != vb and va is not None and vb is not None:
            out.append(f"{what} differs: A {va}, B {vb}")
    for name in (n for n in a.workloads if n in b.workloads):
        wa, wb = a.workloads[name], b.workloads[name]
        changed = _param_changes(wa.summary.params, wb.summary.params)
        if changed and wa.summary.params and wb.summary.params:
            out.append(f"{name}: parameters differ: {changed}")
        if wa.status != wb.status:
            out.append(f"{name}: status differs: A {wa.status}, B {wb.status}")
        threads = _threads(wa), _threads(wb)
        if threads[0] != threads[1] and None not in threads:
            out.append(f"{name}: CPU cores and torch threads differ: A {threads[0]}, B {threads[1]}")
    return out


def _threads(w: Any) -> str | None:
    """'1 core(s), 1 thread(s)' from the workload's contention record (its affinity mask and torch threads), or None."""
    c = w.summary.contention
    if c is None or not c.cores or c.torch_threads is None:
        return None
    return f"{len(c.cores)} core(s), {c.torch_threads} thread(s)"


def _gpus(run: Run) -> str | None:
    gpus = run.env.get("gpus")
    if gpus is None:
        return None
    return ", ".join(str(g.get("name", "?")) if isinstance(g, dict) else str(g) for g in gpus) or "none"


def _param_changes(pa: dict[str, Any], pb: dict[str, Any]) -> str:
    return ", ".join(f"{k} {pa.get(k, '(unset)')} → {pb.get(k, '(unset)')}" for k in sorted(set(pa) | set(pb), key=str) if pa.get(k) != pb.get(k))


# ---------------------------------------------------------------- the page


def compare_html(c: Comparison) -> str:
    """The A/B page (templates/compare.html.j2, autoescaped): the failed conditions first, every condition's outcome
    under the rule, how the runs differ, then every metric of every common workload, both medians in their units, B / A
    with its interval."""
    rows = [
        {
            "workload": r["workload"],
            "metric": r["metric"],
            "a": _metric_value(r["metric"], r["a_median"], _unit(c.b, r["workload"])),
            "b": _metric_value(r["metric"], r["b_median"], _unit(c.b, r["workload"])),
            "ratio": ratio(r["ratio"], r["ci_low"], r["ci_high"]),
            "basis": r["basis"],
            "verdict": r["verdict"],
            "why": r["why"] or "",
            # B / A of a latency: higher is worse; of a throughput: better
            "cls": css_class(r["verdict"], "higher" if r["metric"] == "output_units_per_s" else "lower"),
        }
        for r in c.table.to_dict("records")
    ]
    checks = [
        {
            "condition": e.condition.text,
            "workload": e.workload,
            "ratio": ratio(e.ratio, *e.ci) if e.ratio is not None and e.ci else "—",
            "outcome": e.outcome.value,
            "why": e.why or "",
            "cls": "v-bad" if e.failed else "v-inconclusive" if e.outcome == Outcome.INCONCLUSIVE else "",
        }
        for e in c.checks
    ]
    return str(
        render(
            "compare.html.j2",
            a=str(c.a.path),
            b=str(c.b.path),
            rows=rows,
            checks=checks,
            rule=RULE,
            differences=c.differences,
            not_a_regression=NOT_A_REGRESSION,
            notes=c.notes,
            failed=c.failed,
            min_repeats=MIN_REPEATS,
        )
    )


def _unit(run: Run, name: str) -> str:
    w = run.workloads.get(name)
    return w.declaration.output_unit if w is not None else "unit"


def _metric_value(metric: str, value: float, unit: str) -> str:
    """A compared median in its unit: seconds for latencies and phases, output units/s for throughput."""
    if metric == "output_units_per_s":
        return rate(value, unit)
    if metric.endswith("_s") or metric.startswith(PHASE):
        return duration(value)
    return sig(value)


def write_comparison(c: Comparison, out: Path) -> None:
    """The page at `out` and the table of ratios beside it (`out` with .json). cli.cmd_compare prints the outcomes
    (passed on stdout; FAILED and inconclusive on stderr). Each file is replaced only when the profiler wrote it
    (measure/outputs.py: the page's generator marker, the table parsed as compare's; or, as RUN_B/compare.html and
    .json, the default outputs in a run directory): anything else at either path is a UserError before either is
    written. A string that cannot be written as UTF-8 (a lone surrogate the readers missed) is written as its escape."""
    from profiler.errors import UserError
    from profiler.measure.outputs import check_output_file, is_profiler_compare_json, is_profiler_html, mark_html
    from profiler.measure.store import atomic_write_bytes

    table = out.with_suffix(".json")
    if table == out:
        raise UserError(f"-o {out}: the page and its .json table would be the same file; give the page an .html name")
    flag = "" if Path(out) == Path(c.b.path) / "compare.html" else "-o"
    page = mark_html(compare_html(c))
    check_output_file(out, is_profiler_html, flag)
    check_output_file(table, is_profiler_compare_json, flag, page=out)
    atomic_write_bytes(out, page.encode("utf-8", "backslashreplace"))
    atomic_write_bytes(table, cast(str, c.table.to_json(orient="records", indent=1)).encode("utf-8", "backslashreplace"))


def write_compare(a: Run, b: Run, out: Path, conditions: list[Condition]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """build_comparison + write_comparison: (table, notes (differences first), failed conditions)."""
    c = build_comparison(a, b, conditions)
    write_comparison(c, out)
    return c.table, c.differences + c.notes, c.failed
