"""The characteristics a workload is compared on against the baseline: each a small registered
function with its label, unit, kind and which direction is better (lm-eval's register_metric).

A characteristic reads one workload (reports/view.py: WorkloadView) and returns a Value: the
number or category, the samples its interval is built from, or why it is unavailable. It reads
the declaration's roles (request, step, main phase), never a phase name. Add one by writing a
function and decorating it with `@characteristic(...)`; the differences table, the findings and
the terminal pick it up, and reports/rules.yaml may give it readings.

Kinds say how a workload's value is compared with the baseline's (reports/differences.py):
- samples: ratio of medians with a 95% bootstrap interval;
- derived: fixed work over time samples (MFU, MBU): the time samples' interval, inverted;
- slope: least-squares slope against position, with bootstrap intervals of both slopes;
- exact: a counted value: compared with a +-10% band;
- category: same or differs;
- presence: the baseline may not have it at all (deadlines);
- given: a ratio whose interval was computed already (batching gain across sweep points).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

import numpy as np
import pandas as pd

from profiler.characterize.stats import ols_slope

from .view import WorkloadView


class Kind(str, Enum):
    SAMPLES = "samples"
    DERIVED = "derived"
    SLOPE = "slope"
    EXACT = "exact"
    CATEGORY = "category"
    PRESENCE = "present"
    GIVEN = "given"


class Better(str, Enum):
    """Which direction of a characteristic is better for the workload (neither: it only characterises)."""

    HIGHER = "higher"
    LOWER = "lower"
    NEITHER = "neither"


@dataclass
class Value:
    """One characteristic of one workload."""

    value: Any = None
    unit: str = ""
    samples: Any = None
    """1-D samples (kind samples, derived) or (x, y) arrays (kind slope)."""
    why: str | None = None
    """Why value is None."""
    ci: tuple[float, float] | None = None
    """A given interval (kind given)."""
    basis: str = ""
    """What the value was read from, for the reader (a phase, a basis of measurement)."""
    position_unit: str | None = None
    state_shape: str | None = None
    """How the workload's declared state grows (profiler.runmodel.StateShape), for the readings."""
    family: str | None = None
    """A category's family (kind category): values of different families differ even where one is inconclusive
    within its family (an open arrival process of unclear burstiness is still not a synchronous batch)."""


@dataclass(frozen=True)
class Characteristic:
    key: str
    label: str
    short: str
    """A label that fits a terminal column."""
    kind: Kind
    better: Better
    compute: Callable[[WorkloadView], Value] = field(repr=False)
    timing: bool = True
    """Read from timings (latencies, rates, shares of time): contention can move it. Counted
    values (FLOPs per byte, state bytes) are not timings."""
    axis: str = "architecture"
    """Which baseline it is compared with: "architecture" (the suite's baseline, LLM decode) or
    "serving" (the serving baseline: an LLM engine under a load) for request pattern and objective."""


CHARACTERISTICS: dict[str, Characteristic] = {}


def characteristic(
    key: str, *, label: str, short: str, kind: Kind, better: Better, timing: bool = True, axis: str = "architecture"
) -> Callable[[Callable[[WorkloadView], Value]], Callable[[WorkloadView], Value]]:
    """Register `fn(view) -> Value` as the characteristic `key` (in registration order)."""

    def register(fn: Callable[[WorkloadView], Value]) -> Callable[[WorkloadView], Value]:
        if key in CHARACTERISTICS:
            raise ValueError(f"characteristic '{key}' is registered twice")
        CHARACTERISTICS[key] = Characteristic(key, label, short, kind, better, fn, timing, axis)
        return fn

    return register


def characterize(view: WorkloadView) -> dict[str, Value]:
    """Every registered characteristic of one workload."""
    return {key: c.compute(view) for key, c in CHARACTERISTICS.items()}


def _median_of(samples: np.ndarray, unit: str, why: str, basis: str = "") -> Value:
    if samples.size == 0:
        return Value(None, unit, samples=samples, why=why, basis=basis)
    return Value(float(np.median(samples)), unit, samples=samples, basis=basis)


def _no_step(view: WorkloadView) -> str:
    return "the workload declares no step phase (Declaration.step)"


# ---------------------------------------------------------------- latency


@characteristic("latency_e2e", label="latency per request", short="latency/request", kind=Kind.SAMPLES, better=Better.LOWER)
def latency_per_request(view: WorkloadView) -> Value:
    request = view.declaration.request
    from_obs = "obs_ns" in view.measured and request != "iteration"
    basis = f"'{request}' spans" + (", from the observation's capture (obs_ns)" if from_obs else "")
    return _median_of(view.request_latencies_s, "s", f"no measured span of the request phase '{request}'", basis)


@characteristic("latency_per_step", label="latency per step", short="latency/step", kind=Kind.SAMPLES, better=Better.LOWER)
def latency_per_step(view: WorkloadView) -> Value:
    step = view.declaration.step
    if step is None:
        return Value(None, "s", why=_no_step(view))
    return _median_of(view.step_latencies_s, "s", f"no measured span of the step phase '{step}'", f"'{step}' spans")


# ---------------------------------------------------------------- growth with position


def _position_short(view: WorkloadView) -> str:
    unit = view.declaration.position_unit or "position"
    return "token" if unit.startswith("token") else unit


def _slope(view: WorkloadView, column: str, unit: str, what: str) -> Value:
    position_unit = view.declaration.position_unit
    if view.declaration.step is None:
        return Value(None, unit, why=_no_step(view), position_unit=position_unit)
    g, step = view.positioned, view.declaration.step
    if g.empty:
        return Value(None, unit, why=f"the step phase '{step}' carries no `position`", position_unit=position_unit)
    if column not in g or bool(g[column].isna().all()):
        return Value(None, unit, why=f"the step phase '{step}' carries no `{what}`", position_unit=position_unit)
    if cast(pd.Series, g["position"]).nunique() < 3:
        return Value(None, unit, why=f"{what} at fewer than 3 positions of the step phase '{step}'", position_unit=position_unit)
    x, y = g["position"].to_numpy(dtype=float), g[column].to_numpy(dtype=float)
    known = ~np.isnan(y)
    if not known.all():  # spans without the attribute (a million rows are not copied when none is missing)
        x, y = x[known], y[known]
    return Value(ols_slope(x, y), unit, samples=(x, y), basis=f"'{view.declaration.step}' spans", position_unit=position_unit)


@characteristic("state_per_token", label="state growth per position, per request", short="state growth", kind=Kind.SLOPE, better=Better.LOWER, timing=False)
def state_growth(view: WorkloadView) -> Value:
    value = _slope(view, "state_bytes_per_sequence", f"B/{_position_short(view)}", "state_bytes")
    declared = view.summary.declared_state
    value.state_shape = declared.shape.value if declared else None
    return value


@characteristic("latency_growth_per_token", label="per-step latency growth per position", short="latency growth", kind=Kind.SLOPE, better=Better.LOWER)
def latency_growth(view: WorkloadView) -> Value:
    return _slope(view, "latency_s", f"s/{_position_short(view)}", "per-step latency")


# ---------------------------------------------------------------- work against the ceilings


def _why_work(view: WorkloadView) -> str:
    return view.summary.unavailable.get("work") or f"no counted work for the main phase '{view.main_phase}'"


@characteristic("intensity", label="arithmetic intensity", short="intensity", kind=Kind.EXACT, better=Better.NEITHER, timing=False)
def intensity(view: WorkloadView) -> Value:
    work = view.main_work
    if work is None or work.intensity_flop_per_byte is None:
        return Value(None, "FLOP/B", why=_why_work(view) if work is None else "no counted bytes for the main phase")
    return Value(work.intensity_flop_per_byte, "FLOP/B", basis=f"'{view.main_phase}'")


def _why_no_ceiling(view: WorkloadView, attr: str) -> str:
    """Why the main phase has no MFU or MBU: it beat the calibrated ceiling, no peak applies to its dtype, or no ceilings."""
    work = view.work
    beaten = work.ceiling_exceeded.get(view.main_phase) if work is not None else None
    if beaten:
        return beaten
    if attr == "mfu" and work is not None and work.mfu_unavailable:
        return work.mfu_unavailable
    return "no measured ceilings"


def _utilisation(view: WorkloadView, attr: str, unit: str) -> Value:
    work = view.main_work
    value = getattr(work, attr) if work else None
    if value is None:
        return Value(None, unit, why=_why_work(view) if work is None else _why_no_ceiling(view, attr))
    basis = f"'{view.main_phase}'"
    mbu_basis = work.basis() if attr == "mbu" and work is not None else None
    if mbu_basis is not None:
        basis += f": {mbu_basis.label}"  # a decode step's bytes it must read; counted traffic elsewhere
    return Value(value, unit, samples=view.phase_latencies_s(view.main_phase), basis=basis)


@characteristic("mfu", label="MFU", short="MFU", kind=Kind.DERIVED, better=Better.HIGHER)
def mfu(view: WorkloadView) -> Value:
    return _utilisation(view, "mfu", "of peak")


@characteristic("mbu", label="MBU", short="MBU", kind=Kind.DERIVED, better=Better.HIGHER)
def mbu(view: WorkloadView) -> Value:
    return _utilisation(view, "mbu", "of bandwidth")


@characteristic("bound", label="bound class", short="bound class", kind=Kind.CATEGORY, better=Better.NEITHER, timing=False)
def bound_class(view: WorkloadView) -> Value:
    """The main phase's bound class (profiler/characterize/roofline.py: BOUND_RULE). Not a timing characteristic: the
    class itself turns inconclusive where contention could have moved its overhead share."""
    work = view.main_work
    if work is None or work.bound is None:
        beaten = view.work.ceiling_exceeded.get(view.main_phase) if view.work else None
        fallback = "no counted bytes, so no intensity" if work and work.mfu is not None else _why_no_ceiling(view, "mfu")
        why = _why_work(view) if work is None else (beaten or work.bound_basis or fallback)
        return Value(None, why=why)
    return Value(work.bound.value, basis=f"'{view.main_phase}'" + (f": {work.bound_basis}" if work.bound_basis else ""))


# ---------------------------------------------------------------- operator mix


def _why_mix(view: WorkloadView) -> str:
    return view.summary.unavailable.get("operator_mix") or f"no traced pass for the main phase '{view.main_phase}'"


@characteristic("dominant_op", label="dominant operator category", short="dominant op", kind=Kind.CATEGORY, better=Better.NEITHER)
def dominant_operator(view: WorkloadView) -> Value:
    mix = view.main_mix
    if mix is None or mix.dominant_category is None:
        return Value(None, why=_why_mix(view))
    return Value(mix.dominant_category, basis=f"'{view.main_phase}'")


@characteristic("host_overhead_share", label="host/launch overhead share", short="host overhead", kind=Kind.EXACT, better=Better.LOWER)
def host_overhead(view: WorkloadView) -> Value:
    mix = view.main_mix
    if mix is None:
        return Value(None, "of phase time", why=_why_mix(view))
    if mix.device_idle_fraction is not None:
        return Value(mix.device_idle_fraction, "of phase time", basis="device idle fraction")
    share = mix.share_by_category.get("host/framework")
    if share is None:
        return Value(None, "of phase time", why=_why_mix(view))
    return Value(share, "of phase time", basis="host/framework share of CPU time")


# ---------------------------------------------------------------- across sweep points


@characteristic("batching_gain", label="batching gain (largest batch / smallest)", short="batching gain", kind=Kind.GIVEN, better=Better.HIGHER)
def batching_gain(view: WorkloadView) -> Value:
    sweep = view.summary.sweep
    group = view.sweeps.get(sweep.group) if sweep else None
    rows = [r for r in (group.batch if group else []) if r.throughput_gain.ratio is not None]
    if not rows:
        return Value(None, "x", why="no batch_size sweep")
    best = max(rows, key=lambda r: r.batch_size / r.base_batch_size)
    gain = best.throughput_gain
    return Value(gain.ratio, f"x at batch {best.batch_size} vs {best.base_batch_size}", ci=gain.ci95)


# ---------------------------------------------------------------- deadlines


@characteristic("deadline_miss_rate", label="deadline-miss rate", short="deadline misses", kind=Kind.PRESENCE, better=Better.LOWER)
def deadline_misses(view: WorkloadView) -> Value:
    d = view.summary.deadlines
    if d is None or d.miss_rate is None or not d.miss_rate.count:
        return Value(None, "of ticks", why="no deadlines")
    return Value(d.miss_rate.mean, "of ticks")


@characteristic("jitter", label="tick-interval jitter (p99 - p50)", short="tick jitter", kind=Kind.PRESENCE, better=Better.LOWER)
def tick_jitter(view: WorkloadView) -> Value:
    d = view.summary.deadlines
    if d is None or d.jitter_p99_minus_p50_s is None:
        return Value(None, "s", why="no periodic ticks")
    return Value(d.jitter_p99_minus_p50_s, "s")


# ---------------------------------------------------------------- energy


@characteristic("energy_per_unit", label="energy per output unit", short="energy/unit", kind=Kind.EXACT, better=Better.LOWER)
def energy_per_unit(view: WorkloadView) -> Value:
    energy = view.summary.energy
    unit = f"J/{view.unit}"
    if energy is None or energy.j_per_output_unit is None:
        return Value(None, unit, why=view.summary.unavailable.get("energy", "not measured"))
    return Value(energy.j_per_output_unit, unit)


# ---------------------------------------------------------------- request pattern and objective (against the serving baseline)

NO_LOAD = "no arrival process: the measured loop starts each request when the last one ends (give the workload a load: block)"


@characteristic("objective", label="objective", short="objective", kind=Kind.CATEGORY, better=Better.NEITHER, timing=False, axis="serving")
def objective(view: WorkloadView) -> Value:
    """What a request is judged by: read from the load's objective, else from the declaration's traits and output unit."""
    from profiler.plugin import Trait

    serving = view.summary.serving
    judged = f"; judged by SLO {serving.slo} and QoE ({serving.qoe_stated})" if serving is not None else ""
    if view.declaration.objective:
        return Value(view.declaration.objective, basis="declared by the workload (Declaration.objective)" + judged)
    traits = view.declaration.traits
    if Trait.CONTROL_LOOP in traits or view.summary.deadlines is not None:
        return Value("a deadline per control tick", basis="the workload's ticks carry deadlines" + judged)
    if Trait.AUTOREGRESSIVE in traits:
        return Value(f"a {view.unit} stream: first {view.unit}, then each next", basis="an autoregressive workload's deliveries" + judged)
    return Value(f"time to a whole {view.unit}", basis=f"one {view.unit} per request, delivered at its end" + judged)


@characteristic("concurrency", label="requests in flight", short="concurrency", kind=Kind.SAMPLES, better=Better.NEITHER, axis="serving")
def concurrency(view: WorkloadView) -> Value:
    from profiler.characterize.serving import measured_window_ns, per_request

    tail = view.summary.batch_tail
    if view.summary.serving is None and tail is not None:
        step = view.declaration.step
        m = view.measured
        in_batch = m.loc[(m["phase"] == step) & m["finished"].notna(), "sequences"].dropna().to_numpy(dtype=float)
        return _median_of(in_batch, "requests", "no step span with `sequences`", f"requests in the synchronous batch at each '{step}' span")
    if view.summary.serving is None and view.declaration.streams:
        from profiler.characterize.streams import in_flight_at_arrival

        n = in_flight_at_arrival(view.measured, view.declaration.request)
        return _median_of(n, "requests", "no request spans with a request_id", "requests in flight (arrived, not yet done) at each arrival")
    if view.summary.serving is None:
        # one request in flight during each measured iteration, by construction of the measured loop
        ones = np.ones(view.request_latencies_s.size)
        return _median_of(ones, "requests", "no measured request", "the measured loop: one request at a time (closed loop, concurrency 1)")
    engine, requests, serving = view.run.engine, view.run.requests, view.summary.serving
    if serving.window_start_ns is not None and serving.window_end_ns is not None:
        bounds = (float(serving.window_start_ns), float(serving.window_end_ns))
    else:  # a summary written before the window was kept: from the records (requests that did not end, at their arrival)
        bounds = measured_window_ns(per_request(requests)) if not requests.empty else None
    if engine.empty or "running" not in engine or bounds is None:
        return Value(None, "requests", why="no engine samples or no measured request")
    running = engine.loc[(engine["t_ns"] >= bounds[0]) & (engine["t_ns"] <= bounds[1]), "running"].dropna().to_numpy(dtype=float)
    why = serving.unavailable.get("concurrency", "no engine samples in the measured window")
    return _median_of(running, "requests", why, "engine's running requests, sampled")


@characteristic("arrival_burstiness", label="arrival burstiness", short="burstiness", kind=Kind.CATEGORY, better=Better.NEITHER, timing=False, axis="serving")
def arrival_burstiness(view: WorkloadView) -> Value:
    """Poisson-like, bursty or even by where the 95% interval of the gaps' CV lies against 1 (Poisson's CV)."""
    serving = view.summary.serving
    tail = view.summary.batch_tail
    if serving is None and tail is not None:
        n = tail.requests.median
        basis = f"every request of an iteration starts together ({n:g} per iteration) and the next waits for the last"
        return Value("all at once: synchronous batches", "", basis=basis, family="synchronous batch")
    if serving is None:
        return Value(None, "", why=NO_LOAD)
    if serving.load.pattern == "closed":
        return Value("closed loop", "", basis="each request is sent when one ends", family="closed loop")
    lo, hi = serving.arrival_cv_ci95 or (None, None)
    if lo is None or hi is None or serving.arrival_cv is None:
        return Value(None, "", why="fewer than 3 measured sends")
    basis = f"CV of the achieved gaps {serving.arrival_cv:.2f} [{lo:.2f}, {hi:.2f}] ({serving.load.pattern})"
    if lo > 1:
        return Value("bursty (CV > 1)", "", basis=basis, family=OPEN)
    if hi < 1:
        return Value("more even than Poisson (CV < 1)", "", basis=basis, family=OPEN)
    if lo < 1 / POISSON_CV_BAND or hi > POISSON_CV_BAND:  # straddles 1 but too wide to call it Poisson-like
        return Value(
            "inconclusive", "", basis=f"{basis}: the interval holds 1 but reaches beyond [{1 / POISSON_CV_BAND:.2f}, {POISSON_CV_BAND:.2f}]", family=OPEN
        )
    return Value("Poisson-like (CV 1 within the interval)", "", basis=basis, family=OPEN)


OPEN = "open arrivals"
"""The family of every arrival process that sends requests at their own times (poisson, gamma, constant, trace)."""
POISSON_CV_BAND = 1.25
"""A CV interval that holds 1 and stays within [1/1.25, 1.25] is called Poisson-like; a wider one is inconclusive."""


@characteristic("queueing_share", label="queueing share of latency", short="queueing share", kind=Kind.SAMPLES, better=Better.LOWER, axis="serving")
def queueing_share(view: WorkloadView) -> Value:
    if view.summary.serving is None:
        return Value(None, "of E2E", why=NO_LOAD)
    from profiler.characterize.serving import FINISHED, per_request

    r = view.run.requests
    if r.empty:
        return Value(None, "of E2E", why="no request records (requests.parquet)")
    t = per_request(r)
    t = t.loc[t["measured"] & (t["status"] == FINISHED)]
    share = (t["queue_s"] / t["e2e_s"]).replace([np.inf, -np.inf], np.nan).dropna().to_numpy(dtype=float)
    why = view.summary.serving.unavailable.get("queue_s", "no finished measured request")
    return _median_of(share, "of E2E", why, "queueing delay / E2E per request")


# ---------------------------------------------------------------- synchronous batches and training state


@characteristic(
    "straggler_tail_share", label="straggler tail share of a synchronous batch", short="tail share", kind=Kind.PRESENCE, better=Better.LOWER, axis="serving"
)
def straggler_tail_share(view: WorkloadView) -> Value:
    """Per iteration: (last finish - the median request's finish) / batch time (profiler/characterize/sync_batch.py)."""
    from profiler.characterize.sync_batch import batch_tails

    step = view.declaration.step
    if view.summary.batch_tail is None or step is None:
        return Value(None, "of batch time", why="no synchronous batch (no step span carries `finished`)")
    shares = batch_tails(view.measured, step)["tail_share"].dropna().to_numpy(dtype=float)
    return _median_of(shares, "of batch time", "no batch with more than one step", f"median request's finish to the last, over '{step}' spans")


MODEL_STATE_KINDS = ("weights", "gradients", "optimizer_state")


@characteristic(
    "training_state_per_param",
    label="weights, gradients and optimizer state per parameter",
    short="state/param",
    kind=Kind.PRESENCE,
    better=Better.LOWER,
    timing=False,
)
def training_state_per_param(view: WorkloadView) -> Value:
    """Measured bytes of weights + gradients + optimizer state (memory by kind) over the parameter count; an
    inference workload holds no gradients or optimizer state, so it has none (mixed-precision Adam: 16, ZeRO)."""
    kinds = view.summary.memory.by_kind
    params = view.summary.facts.get("param_count")
    if "optimizer_state" not in kinds and "gradients" not in kinds:
        return Value(None, "B/parameter", why="no gradients or optimizer state measured (inference)")
    if not params:
        return Value(None, "B/parameter", why="no param_count fact")
    held = [k for k in MODEL_STATE_KINDS if k in kinds]
    return Value(sum(kinds[k] for k in held) / params, "B/parameter", basis="measured from the tensors: " + " + ".join(k.replace("_", " ") for k in held))


# ---------------------------------------------------------------- a workload's own concurrent streams (an always-on assistant)


@characteristic(
    "arrival_processes", label="arrival processes at once", short="arrivals", kind=Kind.CATEGORY, better=Better.NEITHER, timing=False, axis="serving"
)
def arrival_processes(view: WorkloadView) -> Value:
    """How many input streams arrive at once, and how: a served load is one process; an always-on assistant
    takes periodic frames and sporadic queries together (Declaration.streams and its facts)."""
    streams = view.declaration.streams
    serving = view.summary.serving
    if len(streams) > 1:
        facts = view.summary.facts
        parts = []
        if facts.get("fps"):
            parts.append(f"periodic frames at {facts['fps']:g} fps")
        if facts.get("query_arrivals"):
            parts.append(f"sporadic queries ({facts['query_arrivals']})")
        detail = " and ".join(parts) or ", ".join(streams)
        return Value(f"{len(streams)} at once: {detail}", basis="the workload's declared streams", family="several streams")
    if serving is not None:
        return Value(f"one: {serving.load.pattern}", basis="the load block's arrival process", family="one stream")
    if view.summary.batch_tail is not None:
        return Value("one: synchronous batches", basis="every request of an iteration starts together", family="one stream")
    return Value(None, "", why=NO_LOAD)


@characteristic(
    "latency_threshold", label="latency threshold of a person", short="threshold", kind=Kind.CATEGORY, better=Better.NEITHER, timing=False, axis="serving"
)
def latency_threshold(view: WorkloadView) -> Value:
    """Whom the stream is timed for: a reader (first token within about a second, then reading speed) or a listener
    in a conversation (first audio within a turn gap), from the load's objective or the declared QoE."""
    declared = view.declaration.qoe
    serving = view.summary.serving
    if declared is not None:
        first = f"the end of its first '{view.declaration.presentation}'" if view.declaration.presentation else "the first output"
        return Value(
            f"{first} within {declared.expected_ttft_s:g} s, then {declared.tokens_per_s:g} tokens/s", basis="declared by the workload (Declaration.qoe)"
        )
    if serving is not None and serving.qoe_values:
        q = serving.qoe_values
        return Value(
            f"first output within {q.get('expected_ttft_s', float('nan')):g} s, then {q.get('tokens_per_s', float('nan')):g} tokens/s",
            basis=f"the load's objective (QoE; SLO {serving.slo})",
        )
    return Value(None, "", why="no objective: neither a load's objective nor a declared listener (Declaration.qoe)")


@characteristic("interference", label="slowdown of each stream by the other", short="interference", kind=Kind.PRESENCE, better=Better.NEITHER)
def interference(view: WorkloadView) -> Value:
    """Each stream's slowdown when the other runs too, both ways: for each condition a phase ran alone in, its outermost
    phase (the longest alone: a frame, a query) together / alone, ratio of medians with its interval and verdict."""
    streams = view.summary.streams
    if streams is None or not streams.interference:
        return Value(None, "", why="one stream: no co-located models to interfere")
    parts = []
    for alone in dict.fromkeys(i.alone for i in streams.interference):
        items = [i for i in streams.interference if i.alone == alone and i.ratio is not None]
        if not items:
            continue
        phases = streams.conditions[alone].phases if alone in streams.conditions else {}
        medians = {i.phase: (phases[i.phase].median or 0.0) if i.phase in phases else 0.0 for i in items}
        outer = max(items, key=lambda i: medians[i.phase])
        lo, hi = outer.ci95 or (outer.ratio, outer.ratio)
        verdict = outer.verdict.partition(":")[0]
        parts.append(f"{alone} ({outer.phase}) {outer.ratio:.2f}x [{lo:.2f}, {hi:.2f}] with {outer.together}: {verdict}")
    if not parts:
        return Value(None, "", why="no phase ran both alone and together")
    return Value("; ".join(parts), "", basis="each stream's outermost phase, latency together / alone (Streams section)")


@characteristic("energy_per_hour", label="energy per hour of use", short="energy/hour", kind=Kind.PRESENCE, better=Better.LOWER)
def energy_per_hour(view: WorkloadView) -> Value:
    """Average GPU power while the workload runs as it is used (W = Wh per hour): for streams, the condition with every
    stream running; else the measured window (NVML energy counter)."""
    streams = view.summary.streams
    if streams is not None and streams.conditions:
        if streams.energy_unavailable:
            return Value(None, "Wh", why=streams.energy_unavailable)
        full = max(streams.conditions, key=lambda c: len(c.split("+")))
        power = streams.conditions[full].average_power_w
        return Value(power, "Wh", basis=f"condition {full}") if power is not None else Value(None, "Wh", why=f"no energy over condition {full}")
    energy = view.summary.energy
    if energy is None:
        return Value(None, "Wh", why=view.summary.unavailable.get("energy", "not measured"))
    return Value(energy.average_power_w, "Wh", basis="average power over the measured window")
