"""summary.json, built in one place: from a workload's measured spans, its sampler rows, what the
child reported, its declaration, and the counting and traced passes, to a WorkloadSummary.

Every derived analysis is guarded: a bug in one becomes a stated problem in the summary (the
measurements on disk stand), never a crash that loses the run. The numbers come from
analysis.py (per-request and per-phase statistics), scaling.py (growth with position),
roofline.py (work against the ceilings) and energy.py (the NVML energy counter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from ..loadconfig import LoadConfig, Objective
from ..plugin import ITERATION, Declaration
from ..runmodel import (
    CONTENDED_CORES,
    CONTENDED_STEAL_CORES,
    BatchTail,
    ChildError,
    ChildRecord,
    Contention,
    Deadlines,
    DeclaredState,
    Energy,
    LoadFacts,
    LocalServer,
    Memory,
    OperatorMix,
    PhaseStats,
    PositionFits,
    RequestMetrics,
    ServerDeclaration,
    Serving,
    Stage,
    StageShare,
    StateCheck,
    Stats,
    Status,
    Streams,
    SweepPoint,
    Work,
    WorkloadSummary,
)
from .analysis import (
    DEADLINE_FIELDS,
    UNAVAILABLE_WHY,
    deadline_metrics,
    measured_columns,
    measured_spans,
    phase_noise,
    phase_shares,
    phase_stats,
    request_latencies,
    request_metrics,
    sequences_of,
    timed_spans,
)
from .energy import energy_summary
from .roofline import BOUND_RULE, MBU_BASIS_RULE, STEP_WEIGHT_BYTES, overhead_shares, required_bytes, work_by_phase
from .scaling import position_fits
from .serving import serving_summary, serving_warnings
from .stats import NOISY_IQR_OVER_MEDIAN, describe, noisy
from .streams import first_output_s, qoe_samples, stream_warnings, streams_summary
from .sync_batch import attribute_warnings, batch_tails, memory_by_kind, stage_shares, stage_tokens_per_s


@dataclass
class WorkloadOutcome:
    """What the runner knows about one finished child: the input of `build_summary`."""

    name: str
    type: str
    plugin: str
    params: dict[str, Any]
    declaration: Declaration
    device: str
    seed: int
    status: Status
    error: ChildError | None
    """error.json as settled (run/finish.py: settle_error); None when the workload recorded none."""
    child: ChildRecord
    """child.json (or the info that came through the queue), validated: facts, warnings, loop, stages, pass errors."""
    wall_s: float
    sweep: SweepPoint | None = None
    gpu_unavailable: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    load: LoadConfig | None = None
    """The `load:` block it served (None: the measured loop)."""
    objective: Objective | None = None
    """The `objective:` its requests are judged by (under a load)."""
    placement: Any = None
    """profiler.runmodel.Placement: where it ran."""
    own_server: ServerDeclaration | None = None
    """Its own local server as the parent found it before the run (run/runner.py: suite_servers), read from the first row."""
    server_confirmed: bool | None = None
    """True: the child's declaration at setup named the same pid; False: another (read from then on); None: either named none."""
    other_servers: list[tuple[int, str]] = field(default_factory=list)
    """(pid, workload) of each other workload's local server sampled beside this one as other processes (their CPU
    contention): the samples' other_server_* columns."""
    server_gpu: str | None = None
    """The NVML UUID of the GPU its own local server runs on, sampled as the workload's (run/supervisor.py: server_gpu)."""


@dataclass
class Passes:
    """The untimed passes' outputs and settings, as read from the workload's directory."""

    count_work: bool
    trace_ops: bool
    work: pd.DataFrame | None = None
    opmix: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    idle_power_w: float | None = None


def build_summary(
    outcome: WorkloadOutcome,
    spans: pd.DataFrame,
    samples: pd.DataFrame,
    span_count: int,
    passes: Passes,
    requests: pd.DataFrame | None = None,
    engine: pd.DataFrame | None = None,
) -> WorkloadSummary:
    """The summary of one workload. `spans`: measured spans (rundir.read_measured); `samples`:
    every sampler row. Never raises for a bug in an analysis: see the module docstring."""
    child = outcome.child
    declaration = outcome.declaration
    problems = list(outcome.problems)
    unavailable: dict[str, str] = {}
    warnings: list[str] = list(child.warnings)
    spans = measured_spans(spans, measured_columns(spans.columns)) if not spans.empty else spans
    summary = WorkloadSummary(
        name=outcome.name,
        type=outcome.type,
        plugin=outcome.plugin,
        status=outcome.status,
        error=outcome.error.info() if outcome.error else None,
        device=outcome.device,
        seed=outcome.seed,
        params=outcome.params,
        declaration=outcome.declaration,
        facts=child.facts,
        setup_s=child.setup_s,
        loop=child.loop,
        wall_s=outcome.wall_s,
        placement=outcome.placement,
        sweep=outcome.sweep,
        span_count=span_count,
        sample_count=int(len(samples)),
        sample_hz_achieved=_achieved_rate(samples),
        stages=list(child.stages),
    )
    seed = outcome.seed

    def guarded(what: str, compute: Callable[[], Any]) -> Any:
        try:
            return compute()
        except Exception as exc:  # a profiler bug: stated, never fatal
            problems.append(f"{what} failed ({type(exc).__name__}: {str(exc)[:200]}): a profiler bug; the measurements are on disk")
            return None

    # under a load, in a synchronous batch whose composition is drawn anew each iteration (an RL rollout), or across the
    # conditions of a workload's own streams (alone and together), request sizes, batch composition and co-location vary
    # by design: their spread is measured, not noise
    drawn = outcome.load is not None or ("finished" in spans and bool(spans["finished"].notna().any())) or bool(declaration.streams)
    request_warnings = [] if drawn else warnings
    summary.metrics = guarded("the request metrics", lambda: _request_metrics(spans, declaration, seed, unavailable, request_warnings)) or RequestMetrics()
    summary.deadlines = guarded("the deadline metrics", lambda: _deadlines(spans, seed, declaration.inference))
    # under a load a phase's spread is what is measured (batch composition, queueing), not noise
    summary.phases = guarded("the phase statistics", lambda: _phases(spans, seed, [] if drawn else warnings, unavailable, outcome.device)) or {}
    load, objective = outcome.load, outcome.objective or Objective()
    facts = child.serve or LoadFacts()  # none when the child died during its load: its records were read back
    if load is not None:
        if requests is None or requests.empty:
            unavailable["serving"] = "no request records (requests.parquet): the workload failed before its load started"
        else:
            summary.serving = guarded(
                "the serving metrics",
                lambda: serving_summary(requests, engine, facts, load, objective, seed, child.facts),
            )
            warnings.extend(serving_warnings(summary.serving, facts))
    summary.memory = _memory(samples, child, unavailable)
    summary.memory.by_kind = guarded("the memory by kind", lambda: memory_by_kind(spans)) or {}
    if declaration.breakdown:
        summary.breakdown = guarded("the stage breakdown", lambda: _breakdown(spans, declaration.breakdown, seed)) or {}
    step = declaration.step
    if step is not None:
        summary.batch_tail = guarded("the straggler tail", lambda: _batch_tail(spans, step, seed))
    warnings.extend(guarded("the attribute checks", lambda: attribute_warnings(spans, declaration.breakdown, declaration.step)) or [])
    summary.contention = guarded("the contention summary", lambda: contention(samples, summary.stages, child, own_server(child, outcome)))
    rows = server_rows(samples, summary.stages, summary.serving)
    summary.local_server = guarded("the local server", lambda: local_server(rows, child, outcome))
    summary.other_servers = guarded("the other workloads' local servers", lambda: other_servers(rows, outcome))
    if declaration.streams:
        contended = bool(summary.contention and summary.contention.contended)
        summary.streams = guarded("the streams summary", lambda: _streams(spans, samples, declaration, seed, contended))
        warnings.extend(stream_warnings(summary.streams) if summary.streams else [])
    summary.scaling = guarded("the growth fits", lambda: {p: PositionFits(**f) for p, f in position_fits(spans).items()}) or {}
    layers = child.state_layers
    if layers:
        summary.declared_state = guarded("the declared state", lambda: DeclaredState.from_layers(layers))
    declared = summary.declared_state
    if declared is not None and step is not None:
        summary.state_check = guarded("the state check", lambda: check_state(spans, step, declared))
        if summary.state_check is not None and summary.state_check.first_mismatch:
            c = summary.state_check
            warnings.append(
                f"declared state growth differs from the measured on {c.steps_compared - c.steps_matching} of {c.steps_compared} steps "
                f"(first: {c.first_mismatch})"
            )
    loop = child.loop
    if loop is not None and loop.stopped_at_max_seconds:
        warnings.append(f"stopped at max_seconds after {loop.measured_iters} measured iterations, before min_iters")
    if loop is not None and loop.timed_out_requests and not (outcome.load is not None and outcome.load.pattern == "closed"):  # a closed loop says it itself
        warnings.append(
            f"stopped at max_seconds with {loop.timed_out_requests:,} request(s) not finished (recorded as timed out); "
            "raise measure.max_seconds or send fewer requests to measure them"
        )
    warnings.extend(guarded("the declaration check", lambda: _declaration_warnings(spans, declaration)) or [])
    unavailable.update(outcome.gpu_unavailable)
    if child.flush_error:
        problems.append(
            f"spans could not be written as a part at the end ({child.flush_error}): each iteration's spans went to "
            "spans.journal as it ended, and the run read back what the journal holds (the line on spans.journal says how many)"
        )

    summary.operator_mix, why = guarded("the operator mix analysis", lambda: _opmix(passes, summary, child)) or (None, "its analysis failed (see problems)")
    if why:
        unavailable["operator_mix"] = why
    summary.work, why = guarded("the work analysis", lambda: _work(passes, summary, child, spans, declaration)) or (None, "its analysis failed (see problems)")
    if why:
        unavailable["work"] = why
    summary.energy, why = guarded("the energy analysis", lambda: _energy(spans, samples, passes)) or (None, "its analysis failed (see problems)")
    if why:
        unavailable["energy"] = why
    summary.unavailable = unavailable
    summary.warnings = warnings
    summary.problems = problems
    return summary


def _breakdown(spans: pd.DataFrame, stages: tuple[str, ...], seed: int) -> dict[str, StageShare]:
    shares = stage_shares(spans, stages)
    if shares.empty:
        return {}
    rates = stage_tokens_per_s(spans, stages)
    return {str(k): StageShare(share=Stats(**describe(shares[k], seed)), tokens_per_s=rates.get(str(k))) for k in shares.columns}


def _batch_tail(spans: pd.DataFrame, step: str, seed: int) -> BatchTail | None:
    t = batch_tails(spans, step)
    if t.empty:
        return None
    fields = ("requests", "batch_s", "tail_s", "tail_share", "p90_tail_share", "occupancy", "tail_occupancy", "tail_steps")
    stats = {f: Stats(**describe(t[f].dropna().astype(float), seed)) for f in fields}
    return BatchTail(iterations=len(t), peak_sequences=float(cast(pd.Series, t["peak_sequences"]).max()), **stats)


def _request_metrics(spans: pd.DataFrame, declaration: Declaration, seed: int, unavailable: dict[str, str], warnings: list[str]) -> RequestMetrics:
    samples = request_metrics(spans, declaration.deliveries, declaration.request, keyed_only=bool(declaration.streams))
    samples["request_latency_s"] = request_latencies(spans, declaration.request)
    why = {**UNAVAILABLE_WHY, "request_latency_s": f"no measured span of the request phase '{declaration.request}'"}
    if declaration.presentation is not None:
        samples["first_output_s"] = first_output_s(spans, declaration.request, declaration.presentation)
        why["first_output_s"] = f"no measured span of the presentation phase '{declaration.presentation}' carries a request_id"
    if declaration.qoe is not None:
        samples["qoe"] = qoe_samples(spans, declaration)
        why["qoe"] = "no delivery carries a request_id (QoE outside a load: block is per request of an iteration)"
    out: dict[str, Stats] = {}
    for name, values in samples.items():
        stats = Stats(**describe(values, seed))
        if stats.count == 0:
            unavailable[name] = why[name]
            continue
        out[name] = stats
        ratio = noisy(stats.model_dump())
        if ratio is not None and name in ("e2e_s", "tpot_s"):
            warnings.append(f"noisy: {name} IQR/median = {ratio:.0%} (> 10%); the machine may be busy")
    return RequestMetrics(**out)


def _streams(spans: pd.DataFrame, samples: pd.DataFrame, declaration: Declaration, seed: int, contended: bool) -> Streams:
    def per_condition(part: pd.DataFrame) -> tuple[RequestMetrics, Deadlines | None, dict[str, Stats]]:
        metrics = _request_metrics(part, declaration, seed, {}, [])
        timed = timed_spans(part)
        lat = (timed["end_ns"] - timed["start_ns"]) / 1e9
        phases = {str(p): Stats(**describe(v, seed)) for p, v in lat.groupby(timed["phase"]) if p != ITERATION}
        return metrics, _deadlines(part, seed, declaration.inference), phases

    return streams_summary(spans, samples, declaration, seed, contended, per_condition)


def _deadlines(spans: pd.DataFrame, seed: int, inference: str | None) -> Deadlines | None:
    samples = deadline_metrics(spans, inference)
    if not samples:
        return None
    fields: dict[str, Any] = {DEADLINE_FIELDS[k]: Stats(**describe(v, seed)) for k, v in samples.items()}
    interval: Stats | None = fields.get("tick_interval_s")
    if interval is not None and interval.count and interval.p99 is not None and interval.median is not None:
        fields["jitter_p99_minus_p50_s"] = interval.p99 - interval.median
    return Deadlines(**fields)


def _phases(spans: pd.DataFrame, seed: int, warnings: list[str], unavailable: dict[str, str], device: str) -> dict[str, PhaseStats]:
    phases = phase_stats(spans, seed)
    for phase, share in phase_shares(spans).items():
        phases[phase]["share_of_iteration"] = share
    for phase, ratio in phase_noise(spans).items():
        if ratio > NOISY_IQR_OVER_MEDIAN and phase != ITERATION:
            warnings.append(f"noisy: phase '{phase}' IQR/median = {ratio:.0%} (> 10%) across its measured spans; the machine may be busy")
    if phases and not any("device_s" in e for e in phases.values()):
        unavailable["device_s"] = f"device time needs CUDA events; this run was on {device}"
    return {p: PhaseStats(**e) for p, e in phases.items()}


def _memory(samples: pd.DataFrame, child: ChildRecord, unavailable: dict[str, str]) -> Memory:
    memory = Memory()
    if not samples.empty and "proc_rss_bytes" in samples and bool(samples["proc_rss_bytes"].notna().any()):
        memory.peak_rss_bytes = int(cast(pd.Series, samples["proc_rss_bytes"]).max())
    else:
        unavailable["peak_rss_bytes"] = "no sampler rows (the workload ended before the first sample)"
    if child.phase_memory:
        memory = Memory(peak_rss_bytes=memory.peak_rss_bytes, device_peak_by_phase=child.phase_memory)
    else:
        unavailable["device_peak_by_phase"] = "torch.cuda allocator statistics exist only on CUDA"
    return memory


def measured_rows(samples: pd.DataFrame, stages: list[Stage]) -> pd.DataFrame | None:
    """The sampler rows of the measured window (the `measure` stage; every row when stages are missing); None when the
    workload stopped before that window."""
    window = next((s for s in stages if s.name == "measure"), None)
    if stages and window is None:
        return None
    if window is not None and not samples.empty and "t_ns" in samples:
        end = window.end_ns if window.end_ns is not None else samples["t_ns"].max()  # interrupted while measuring
        return samples.loc[(samples["t_ns"] >= window.start_ns) & (samples["t_ns"] <= end)]
    return samples


def server_rows(samples: pd.DataFrame, stages: list[Stage], serving: Serving | None) -> pd.DataFrame | None:
    """The sampler rows a local server's figures are read over: a load run's measured window (serving.window_start_ns
    to window_end_ns: the first measured arrival to the last measured request's end, where the server works on the
    measured requests), else the `measure` stage (measured_rows)."""
    if serving is not None and serving.window_start_ns is not None and serving.window_end_ns is not None and "t_ns" in samples:
        return samples.loc[(samples["t_ns"] >= serving.window_start_ns) & (samples["t_ns"] <= serving.window_end_ns)]
    return measured_rows(samples, stages)


def own_server(child: ChildRecord, outcome: WorkloadOutcome) -> ServerDeclaration | None:
    """The workload's own local server as it was read last: the child's declaration at setup (it replaces the parent's
    when it names another pid), else the one the parent found before the run; None: neither."""
    return child.local_server or outcome.own_server


def tree_figures(out: LocalServer, rows: pd.DataFrame | None, prefix: str) -> bool:
    """Fill `out`'s CPU, RSS and process figures from the `{prefix}_*` sampler columns over `rows` (the measured window);
    False when there is none to read."""
    column = f"{prefix}_cpu_percent"
    cpu = cast(pd.Series, rows[column]).dropna() if rows is not None and column in rows else pd.Series(dtype=float)
    if rows is None or cpu.empty:
        return False
    rss = cast(pd.Series, rows[f"{prefix}_rss_bytes"]).dropna()
    procs = cast(pd.Series, rows[f"{prefix}_processes"]).dropna()
    out.samples = int(len(cpu))
    out.cpu_percent_median, out.cpu_percent_p90 = float(cpu.median()), float(cpu.quantile(0.9))
    out.peak_rss_bytes = int(rss.max()) if not rss.empty else None
    out.processes_max = int(procs.max()) if not procs.empty else None
    return True


def _usage_words(out: LocalServer) -> str:
    peak = f"{out.peak_rss_bytes / 2**20:,.0f} MiB" if out.peak_rss_bytes is not None else "unknown"
    return (
        f"CPU {out.cpu_percent_median:.0f}% of a core (median; p90 {out.cpu_percent_p90:.0f}%), peak RSS {peak} (summed over its tree), "
        f"{out.processes_max} process(es)"
    )


def local_server(rows: pd.DataFrame | None, child: ChildRecord, outcome: WorkloadOutcome) -> LocalServer | None:
    """The workload's own local server sampled with it over its measured window (runmodel.LocalServer, `own`): the one
    the parent found before the run (outcome.own_server) or the child declared at setup (child.local_server); None when
    it has none. Its figures from the server_* columns of `rows` (server_rows; None: the workload stopped before it)."""
    server = own_server(child, outcome)
    if server is None:
        return None
    out = LocalServer(pid=server.pid, own=True, declared_by=outcome.name, found_by=server.found_by, cores=server.cores, gpu_uuid=outcome.server_gpu)
    out.confirmed = outcome.server_confirmed
    how = {True: "found before the run and confirmed at setup", False: "declared at setup in place of the one found before the run"}
    found = (
        how.get(outcome.server_confirmed)
        if outcome.server_confirmed is not None
        else ("found before the run" if child.local_server is None else "declared at setup")
    )
    role = f"the workload's own server, pid {out.pid} ({out.found_by}; {found})"
    if not tree_figures(out, rows, "server"):
        out.summary = f"{role}: not sampled in the measured window (it could not be read, or the window had no rows)"
        return out
    out.summary = f"{role}: {_usage_words(out)}" + (
        f"; its GPU {out.gpu_uuid} is sampled as the workload's (the gpu_* columns, energy)" if out.gpu_uuid else ""
    )
    return out


def other_servers(rows: pd.DataFrame | None, outcome: WorkloadOutcome) -> LocalServer | None:
    """The suite's other workloads' local servers alive beside this workload over its measured window
    (runmodel.LocalServer, not `own`; their trees together: the other_server_* columns of `rows`, server_rows); None
    when there are none."""
    if not outcome.other_servers:
        return None
    pids, names = [pid for pid, _ in outcome.other_servers], [name for _, name in outcome.other_servers]
    out = LocalServer(pid=pids[0], own=False, declared_by=names[0], pids=pids, workloads=names)
    whose = "; ".join(f"pid {pid}, of workload '{name}'" for pid, name in outcome.other_servers)
    role = f"a local server ({whose}) was alive beside this workload"
    if not tree_figures(out, rows, "other_server"):
        out.summary = f"{role}: not sampled in the measured window (gone, unreadable, or the window had no rows)"
        return out
    out.summary = (
        f"{role} while it was measured: {_usage_words(out)}; it holds that memory and competes for the cores, so its CPU counts as "
        "other processes' (contention)"
    )
    return out


def contention(samples: pd.DataFrame, stages: list[Stage], child: ChildRecord, server: ServerDeclaration | None = None) -> Contention:
    """Contention over the measured window (the `measure` stage; every row when stages are missing):
    see runmodel.Contention for the rule. The workload's own local server (`server`: found before the run or declared at
    setup; summary.own_server) is the workload: its cores join the workload's (the sampler read the union) and its CPU
    was left out of the other processes' (measure/sampler.py). Default: the child's declaration."""
    server = server or child.local_server
    cores = sorted(set(child.cpu_affinity) | set(server.cores)) if server is not None else list(child.cpu_affinity)
    out = Contention(cores=cores, torch_threads=child.torch_threads)
    rows = measured_rows(samples, stages)
    if rows is None:
        out.summary = "not measured: the workload stopped before its measured window"
        return out
    other = cast(pd.Series, rows["other_cpu_cores"]).dropna() if "other_cpu_cores" in rows else pd.Series(dtype=float)
    if other.empty:
        out.summary = "not measured: no sampler rows with per-core CPU counters in the measured window"
        return out
    steal = cast(pd.Series, rows["steal_cores"]).dropna() if "steal_cores" in rows else pd.Series(dtype=float)
    gpu = cast(pd.Series, rows["gpu_other_processes"]).dropna() if "gpu_other_processes" in rows else pd.Series(dtype=float)
    out.samples = int(len(other))
    out.other_cpu_cores_median, out.other_cpu_cores_p90 = float(other.median()), float(other.quantile(0.9))
    out.steal_cores_median = float(steal.median()) if not steal.empty else None
    out.gpu_other_processes_max = int(gpu.max()) if not gpu.empty else None
    reasons = []
    if out.other_cpu_cores_median >= CONTENDED_CORES:
        cores = f"its {len(out.cores)} cores" if out.cores else "the cores it ran on"
        reasons.append(f"other processes used {out.other_cpu_cores_median:.2f} of {cores} (median)")
    if (out.steal_cores_median or 0.0) >= CONTENDED_STEAL_CORES:
        reasons.append(f"the hypervisor stole {out.steal_cores_median:.2f} of a core (median)")
    if out.gpu_other_processes_max:
        reasons.append(f"{out.gpu_other_processes_max} other process(es) ran on its GPU")
    out.contended = bool(reasons)
    cores = f"{len(out.cores)} core{'s' if len(out.cores) != 1 else ''}" if out.cores else "its cores"
    out.summary = (
        "contended: " + "; ".join(reasons)
        if reasons
        else f"quiet: other processes used {out.other_cpu_cores_median:.2f} of a core on its {cores} (median; p90 {out.other_cpu_cores_p90:.2f})"
    ) + (f"; its local server (pid {server.pid}, its process tree) counted as the workload, not as another process" if server is not None else "")
    return out


def check_state(spans: pd.DataFrame, step: str, declared: DeclaredState) -> StateCheck | None:
    """Measured growth per sequence from one step to the next (consecutive positions of one
    iteration) against the declared growth at that position; None when no step carries both."""
    if spans.empty or "position" not in spans or "state_bytes" not in spans:
        return None
    s = spans.loc[(spans["phase"] == step) & spans["position"].notna() & spans["state_bytes"].notna()]
    if s.empty:
        return None
    s = s.assign(per_sequence=s["state_bytes"].astype(float) / sequences_of(s)).sort_values(["iteration", "position"])
    growth = s.groupby("iteration")["per_sequence"].diff()
    step_back = s.groupby("iteration")["position"].diff()
    compared = s.loc[growth.notna() & (step_back == 1)]
    measured = growth.loc[compared.index]
    first = None
    matching = 0
    for position, got in zip(compared["position"].to_numpy(dtype=float), measured.to_numpy(dtype=float), strict=True):
        want = declared.growth_at(int(position))
        if abs(got - want) < 0.5:
            matching += 1
        elif first is None:
            first = f"position {int(position)}: declared {want:,} B/token, measured {got:,.0f} B/token per sequence"
    return StateCheck(steps_compared=len(compared), steps_matching=matching, first_mismatch=first)


def _declaration_warnings(spans: pd.DataFrame, declaration: Declaration) -> list[str]:
    """A declared role whose phase was never marked is a typo or a stale declaration: say so."""
    if spans.empty:
        return []
    marked = set(spans["phase"].unique())
    out = []
    roles = {"request": declaration.request, "step": declaration.step, "inference": declaration.inference, "presentation": declaration.presentation}
    roles.update({f"deliveries[{i}]": p for i, p in enumerate(declaration.deliveries)})
    roles.update({f"breakdown[{i}]": p for i, p in enumerate(declaration.breakdown)})
    for role, phase in roles.items():
        if phase is not None and phase not in marked:
            known = ", ".join(sorted(str(p) for p in marked if p != ITERATION)) or "none"
            out.append(f"the declaration names '{phase}' as its {role} phase, but no measured span has that phase (marked: {known})")
    return out


def _work(passes: Passes, summary: WorkloadSummary, child: ChildRecord, spans: pd.DataFrame, declaration: Declaration) -> tuple[Work | None, str | None]:
    """The counted work against the ceilings; a decode step's MBU on the bytes it must read (roofline.MBU_BASIS_RULE:
    the fact STEP_WEIGHT_BYTES + the measured step spans' state_bytes)."""
    if not passes.count_work:
        return None, "measure.count_work is off"
    if passes.work is None or passes.work.empty:
        return None, child.work_error or "the workload ended before the counting pass"
    phases = {p: e.model_dump() for p, e in summary.phases.items()}
    dtype = summary.facts.get("dtype")
    overhead = overhead_shares(summary.operator_mix.model_dump() if summary.operator_mix else None, summary.device.startswith("cuda"))
    contended = bool(summary.contention and summary.contention.contended)
    required, why_not_required = required_bytes(spans, declaration.step, summary.facts.get(STEP_WEIGHT_BYTES))
    table = work_by_phase(passes.work, phases, passes.calibration, dtype, overhead, contended, required)
    work = Work(
        phases=table,
        bound_rule=BOUND_RULE,
        mbu_basis_rule=MBU_BASIS_RULE,
        required_unavailable=why_not_required,
        mfu_unavailable=_why_no_peak(passes.calibration, dtype),
    )
    why = None if passes.calibration else "MFU, MBU and bound class need the machine's ceilings; calibration failed (see calibration.json)"
    for phase in child.work_uncounted_phases:
        work.uncounted_phases[phase] = "its spans ran only on other threads; the counters (torch dispatch modes) see one thread"
    for phase in child.work_partial_phases:
        work.partial_phases[phase] = "other threads ran spans meanwhile (e.g. async inference); counted here: this thread's work only"
    for phase in summary.phases:
        if phase != ITERATION and phase not in work.phases and phase not in work.uncounted_phases:
            work.uncounted_phases[phase] = "no span of it ran in the counting pass's one iteration (the workload's iterations differ)"
    return work, why


def _why_no_peak(calibration: dict[str, Any] | None, dtype: Any) -> str | None:
    """Why no peak FLOP/s applies to this workload (None when one does)."""
    peaks = (calibration or {}).get("matmul_flops_per_s") or {}
    if not calibration:
        return "calibration failed (see calibration.json)"
    if dtype is None:
        return "the workload declares no dtype fact (ctx.declare(dtype=...)), so no peak FLOP/s applies"
    if str(dtype) not in peaks:
        return f"no calibrated peak for {dtype} (calibrated: {', '.join(peaks) or 'none'})"
    return None


def _energy(spans: pd.DataFrame, samples: pd.DataFrame, passes: Passes) -> tuple[Energy | None, str | None]:
    energy, why = energy_summary(spans, samples, passes.idle_power_w)
    return (Energy(**energy) if energy else None), why


def _opmix(passes: Passes, summary: WorkloadSummary, child: ChildRecord) -> tuple[OperatorMix | None, str | None]:
    if not passes.trace_ops:
        return None, "measure.trace_ops is off"
    if not passes.opmix:
        return None, child.opmix_error or "the workload ended before the traced pass"
    mix = OperatorMix(**passes.opmix)
    e2e = summary.metrics.e2e_s.median if summary.metrics.e2e_s else None
    if e2e:
        mix.traced_over_timed_e2e = mix.traced_iteration_s / e2e  # profiler-on / profiler-off
    return mix, None


def _achieved_rate(samples: pd.DataFrame) -> float | None:
    if samples.empty or "t_ns" not in samples:
        return None
    t = samples["t_ns"].to_numpy()
    if len(t) < 2 or t[-1] == t[0]:
        return None
    return float((len(t) - 1) / ((t[-1] - t[0]) / 1e9))


def summarize(spans: pd.DataFrame, samples: pd.DataFrame, child: dict[str, Any], declaration: Declaration | None = None, seed: int = 0) -> WorkloadSummary:
    """The summary of spans and samples alone (no passes, no plugin): for notebooks, tests and
    benchmarks that have a span table but no child process. `child` as in child.json (keys of ChildRecord; a `name`)."""
    outcome = WorkloadOutcome(
        name=child.get("name", "workload"),
        type="unknown",
        plugin="unknown",
        params={},
        declaration=declaration or Declaration(),
        device=child.get("device", "cpu"),
        seed=seed,
        status=Status.OK,
        error=None,
        child=ChildRecord.model_validate({k: v for k, v in child.items() if k in ChildRecord.model_fields}),
        wall_s=0.0,
    )
    return build_summary(outcome, spans, samples, len(spans), Passes(count_work=False, trace_ops=False))
