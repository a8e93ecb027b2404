"""The run directory's typed model: what run.json and every workload's summary.json hold.

Summaries are built in one module (profiler/characterize/summary.py), run.json by the run
record (profiler/run/record.py); both are written from these models, with their JSON Schema
beside them (summary.schema.json in every run directory), and read back as these objects by the
report, `compare` and `load_run` (profiler/rundir.py). Nothing reads them with `.get()` chains.

Units are SI and in the field names (`_s`, `_bytes`, `_j`, `_w`, `_hz`). A value that could not
be measured is None here and its reason is in `unavailable`; never a zero standing for unknown.

Versions: run.json carries `schema_version`. This profiler writes SCHEMA_VERSION and reads
READABLE_VERSIONS; version 1 (the 0.1 release, which wrote no version) is migrated on read
(profiler/migrate.py).
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .format import si
from .loadconfig import LoadConfig, Objective
from .plugin import Declaration, QoEForm, Resources, StateLayer

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
SUMMARY_SCHEMA_JSON = "summary.schema.json"


MAX_NAME_BYTES = 255
"""The longest file or directory name a file system takes (NAME_MAX on Linux, macOS and Windows alike)."""
MAX_DIR_BYTES = 1024
"""The longest `dir` entry of a run read: the runner writes a slug of at most 80 characters (measure/store.py slugify),
a sweep point's below its group's and `repeat-<k>` below that, so a real entry stays under 300 bytes; 1,024 leaves room
for a run directory's own path within the 4,096 bytes an OS takes."""


def inside_dir(value: str) -> str:
    """`value` when it names a directory inside the one that holds it (a relative path going down, as the runner writes
    `llm`, `rate/load.rate-2`, `repeat-1`); ValueError otherwise. A run directory is read wherever it was copied, so
    a `dir` entry must never lead a reader elsewhere: an absolute path, a `..` step or a path that stays in place is
    refused (symlinks are checked where the directory is read, profiler/rundir.py), and so is one no OS can name: a NUL
    byte, a character no file name can hold (a lone surrogate), a name over MAX_NAME_BYTES or a whole over MAX_DIR_BYTES
    (in bytes of the file system's encoding)."""
    shown = repr(value if len(value) <= 60 else value[:60] + "...")
    if "\0" in value:
        raise ValueError(f"{shown} holds a NUL byte; a directory of the run is a relative path")
    try:
        encoded = os.fsencode(value)
    except UnicodeEncodeError:
        raise ValueError(f"{shown} holds a character no file name can (a lone surrogate); a directory of the run is named as the runner writes it") from None
    if len(encoded) > MAX_DIR_BYTES:
        raise ValueError(f"{shown} is {len(encoded):,} bytes long, over the {MAX_DIR_BYTES:,} a directory of the run may take (the runner writes a few dozen)")
    path = PurePosixPath(value)
    longest = max((len(os.fsencode(p)) for p in path.parts), default=0)
    if longest > MAX_NAME_BYTES:
        raise ValueError(f"{shown} holds a name of {longest:,} bytes, over the {MAX_NAME_BYTES} a file system takes")
    if path.is_absolute():
        raise ValueError(f"{shown} is an absolute path; a directory of the run is a path inside it, e.g. 'llm'")
    if ".." in path.parts:
        raise ValueError(f"{shown} steps up ('..') out of the directory that holds it; a directory of the run is a path inside it")
    if not [p for p in path.parts if p != "."]:
        raise ValueError(f"{shown} names no directory below the one that holds it; give the workload's own directory")
    return value


InsideDir = Annotated[str, AfterValidator(inside_dir)]
"""A directory named relative to the one that holds it, never leading out of it (inside_dir)."""


class Model(BaseModel):
    """Strict on write and on read: a misspelt field is an error, not a silent None."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- statistics


class Stats(Model):
    """A sample's summary (profiler/characterize/stats.py: describe). Units are the field's that holds it.

    `count` 0 means no samples: every other field is then None.
    """

    count: int
    median: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    std: float | None = None
    iqr: float | None = None
    min: float | None = None
    max: float | None = None
    ci95_median: tuple[float, float] | None = None
    ci_method: str | None = None


class RequestMetrics(Model):
    """Per-request latency statistics (metrics.md, vLLM's definitions), over measured iterations.

    `request_latency_s` is the declared request phase's latency (from `obs_ns` where its spans
    carry one); for a workload whose request is the iteration it equals `e2e_s`.
    """

    e2e_s: Stats | None = None
    ttft_s: Stats | None = None
    tpot_s: Stats | None = None
    itl_s: Stats | None = None
    output_units_per_s: Stats | None = None
    request_latency_s: Stats | None = None
    first_output_s: Stats | None = None
    """Time to first output as perceived (time to first audio): the declared presentation phase's
    first span per request, end - the request's start."""
    qoe: Stats | None = None
    """Andes QoE per request against the declared listener or reader (Declaration.qoe), in [0, 1], in the form it names
    (Declaration.qoe.form: step by default, or andes_code)."""


class Deadlines(Model):
    """Control-loop metrics (metrics.md), from spans carrying deadline_ns, scheduled_ns, staleness_s, obs_ns."""

    lateness_s: Stats | None = None
    miss_rate: Stats | None = None
    """Fraction of deadlines missed, one sample per iteration (episode)."""
    tick_interval_s: Stats | None = None
    jitter_p99_minus_p50_s: float | None = None
    control_rate_hz: Stats | None = None
    staleness_s: Stats | None = None
    inference_latency_s: Stats | None = None
    """Observation captured (obs_ns) to output on the host."""
    drop_rate: Stats | None = None
    """Fraction of periodic inputs skipped (spans with dropped=1), one sample per iteration."""


class ConditionStats(Model):
    """One condition of a workload's own concurrent streams (Declaration.streams): the iterations that ran it."""

    iterations: int
    seconds: float
    """Measured time in this condition (its iterations' durations summed)."""
    phases: dict[str, Stats] = Field(default_factory=dict)
    """Latency of each phase's spans, seconds."""
    metrics: RequestMetrics | None = None
    deadlines: Deadlines | None = None
    average_power_w: float | None = None
    """GPU power over the condition's iterations (NVML energy counter): also its Wh per hour of use."""
    energy_per_request_j: float | None = None
    """GPU energy over the request spans / requests, where they total at least the counter's minimum window."""


class Interference(Model):
    """How much running the other streams slows one phase: its latency together / alone, ratio of medians."""

    phase: str
    alone: str
    """The condition with the fewest streams in which the phase ran."""
    together: str
    ratio: float | None = None
    ci95: list[float] | None = None
    n: list[int] = Field(default_factory=list)
    """Spans compared: [alone, together]."""
    verdict: str
    """slower, faster, no difference (the interval within [1/1.1, 1.1]) or inconclusive (with the reason)."""
    miss_rate_alone: float | None = None
    miss_rate_together: float | None = None
    """For a phase with deadlines: the share of its deadlines missed in each condition."""


class Streams(Model):
    """A workload's own concurrent streams, run alone and together (Declaration.streams)."""

    streams: list[str]
    conditions: dict[str, ConditionStats] = Field(default_factory=dict)
    interference: list[Interference] = Field(default_factory=list)
    energy_unavailable: str | None = None


class PhaseStats(Model):
    latency_s: Stats
    device_s: Stats | None = None
    units_per_span: float
    share_of_iteration: float | None = None


class Fit(Model):
    """Least-squares line y = slope * x + intercept (profiler/characterize/stats.py: linear_fit)."""

    slope: float
    intercept: float
    r2: float
    points: int


class PositionFits(Model):
    """Growth with `position` within a run, least squares over every measured span of the phase."""

    latency_s_per_position: Fit | None = None
    state_bytes_per_position: Fit | None = None
    """Per sequence (state_bytes / sequences): the state one request adds per position."""


class StateShape(str, Enum):
    """How a request's state grows with its context, from the declared layers (DeclaredState)."""

    GROWS = "grows"
    BOUNDED = "bounded"
    HYBRID = "hybrid"
    CONSTANT = "constant"

    @property
    def label(self) -> str:
        return {"grows": "grows with context", "bounded": "bounded by a window", "hybrid": "mostly constant (hybrid)", "constant": "constant"}[self.value]


class DeclaredState(Model):
    """The per-request state growth a workload declared in setup (ctx.declare_state), summed.

    All figures are per sequence. `growth_bytes_per_token` holds while every layer still grows (a
    short context); `growth_past_bounds_bytes_per_token` once every windowed layer is full (past
    `bound_tokens`, the largest window). Shape: constant when no layer grows; bounded when every
    growing layer has a window; mostly constant (hybrid) when recurrent layers outnumber the
    unbounded attention layers; else grows with context.
    """

    layers: list[StateLayer]
    growth_bytes_per_token: int
    growth_past_bounds_bytes_per_token: int
    bound_tokens: int | None = None
    shape: StateShape

    @classmethod
    def from_layers(cls, layers: list[StateLayer]) -> DeclaredState:
        growing = [layer for layer in layers if layer.bytes_per_token > 0]
        unbounded = [layer for layer in growing if layer.bound_tokens is None]
        recurrent = sum(layer.count for layer in layers if layer.kind == "recurrent" or layer.with_recurrent)
        if not growing:
            shape = StateShape.CONSTANT
        elif not unbounded:
            shape = StateShape.BOUNDED
        elif recurrent > sum(layer.count for layer in unbounded):
            shape = StateShape.HYBRID
        else:
            shape = StateShape.GROWS
        bounds = [layer.bound_tokens for layer in growing if layer.bound_tokens is not None]
        return cls(
            layers=layers,
            growth_bytes_per_token=sum(layer.bytes_per_token * layer.count for layer in growing),
            growth_past_bounds_bytes_per_token=sum(layer.bytes_per_token * layer.count for layer in unbounded),
            bound_tokens=max(bounds) if bounds else None,
            shape=shape,
        )

    def growth_at(self, tokens: int) -> int:
        """Declared bytes per sequence added when the context grows from tokens - 1 to `tokens`."""
        return sum(layer.growth_at(tokens) for layer in self.layers)


class StateCheck(Model):
    """The declared growth against the measured one, step to step on the step phase (per sequence).

    A step is compared when it follows the previous position of the same iteration by one token;
    it matches when the measured growth (state_bytes / sequences) equals the declared to the byte.
    """

    steps_compared: int
    steps_matching: int
    first_mismatch: str | None = None


class DevicePeak(Model):
    peak_allocated_bytes: int
    peak_reserved_bytes: int


class Contention(Model):
    """Whether other work competed with the workload while it was measured (metrics.md,
    "Statistics"), from the sampler rows of its measured window.

    Other processes' CPU on the cores of the workload's affinity mask and the hypervisor's steal
    time are in cores (1.0 = one core's worth), medians and p90s over the window; the workload's
    own threads count as the workload. Contended (the rule, CONTENTION_RULE): other processes'
    median CPU at least CONTENDED_CORES, or median steal at least CONTENDED_STEAL_CORES, or
    another process on its GPU. A timing verdict of a contended workload is inconclusive.
    """

    cores: list[int] = Field(default_factory=list)
    """The CPU affinity mask the workload ran with."""
    torch_threads: int | None = None
    samples: int = 0
    other_cpu_cores_median: float | None = None
    other_cpu_cores_p90: float | None = None
    steal_cores_median: float | None = None
    gpu_other_processes_max: int | None = None
    contended: bool | None = None
    """None: not measured (no sampler rows in the window, or a run of schema 1)."""
    summary: str = ""


CONTENDED_CORES = 0.2
CONTENDED_STEAL_CORES = 0.05
CONTENTION_RULE = (
    f"contended when, over the measured window, other processes used a median of at least {CONTENDED_CORES} of a core on the workload's "
    f"cores, or the hypervisor stole a median of at least {CONTENDED_STEAL_CORES} of a core, or another process ran on its GPU; "
    "a local server the workload declared (its process tree) is the workload: its CPU and its GPU processes are not other processes', and "
    "its cores join the workload's"
)


class ServerDeclaration(Model):
    """A local server a workload sends its work to, as its child declared it at setup (plugin.SetupContext.declare_server)."""

    pid: int
    found_by: str
    """How the workload named it: `server_pid` given, or the process listening on the base URL's port."""
    cores: list[int] = Field(default_factory=list)
    """The union of the CPU affinity masks of its process tree when declared."""


class SuiteServer(ServerDeclaration):
    """A local server the parent found for one workload of the suite before the run started (plugin.server_of: the
    workload's `local_server(params)`; openai_endpoint: `server_pid`, or the process listening on a loopback base_url's
    port), handed to every workload's child spec (run/child.py: ChildSpec.local_server, ChildSpec.other_servers): the
    workload that found it samples it as its own from its first sampler row, every other workload as another
    workload's server (its CPU stays contention: it competes)."""

    workload: str
    """The suite entry whose local server it is."""
    host: str
    """The machine it runs on (socket.gethostname() of the parent that found it): a cluster worker elsewhere does not read it."""


class LocalServer(Model):
    """A local server's process tree as the parent's sampler read it over the measured window (measure/sampler.py:
    TreeReader): `own` when this workload declared it (its CPU is the workload's, never contention: CONTENTION_RULE), else
    another workload's declared server that was alive, idle or not, while this one was measured (its CPU counts as
    another process's). CPU in percent of one core summed over the tree, medians and p90 over the window's sampler rows;
    RSS summed over the tree (pages shared between its processes counted once per process: an upper bound)."""

    pid: int
    own: bool
    declared_by: str
    """The workload that declared it."""
    found_by: str = ""
    cores: list[int] = Field(default_factory=list)
    samples: int = 0
    cpu_percent_median: float | None = None
    cpu_percent_p90: float | None = None
    peak_rss_bytes: int | None = None
    processes_max: int | None = None
    gpu_uuid: str | None = None
    """The GPU its processes run on (NVML's process list), sampled as the workload's: the gpu_* columns and the energy
    per output token are the server's. None: none found, or not its own server (the reason is in `unavailable`)."""
    pids: list[int] = Field(default_factory=list)
    """Other workloads' servers: every root pid read together (their trees summed), `pid` the first; empty for its own."""
    workloads: list[str] = Field(default_factory=list)
    """Other workloads' servers: the workload whose server each of `pids` is, in the same order."""
    confirmed: bool | None = None
    """Its own server only: True when the child's declaration at setup named the pid the parent found before the run,
    False when it named another (the child's is read from then on), None when the child declared none or the parent found
    none."""
    summary: str = ""


class Memory(Model):
    peak_rss_bytes: int | None = None
    device_peak_by_phase: dict[str, DevicePeak] = Field(default_factory=dict)
    by_kind: dict[str, int] = Field(default_factory=dict)
    """Kind -> peak bytes measured from the tensors (the spans' `memory_<kind>_bytes`: weights, gradients,
    optimizer_state, activations, kv_cache...; profiler/characterize/sync_batch.py)."""


class BatchTail(Model):
    """A synchronous batch's stragglers over the measured iterations (profiler/characterize/sync_batch.py):
    one sample per iteration; times in seconds, shares and occupancies 0..1."""

    iterations: int
    requests: Stats
    batch_s: Stats
    tail_s: Stats
    """Median request's finish to the last finish."""
    tail_share: Stats
    """tail_s / batch_s."""
    p90_tail_share: Stats
    """(last finish - finish of request ceil(0.9 N)) / batch_s: the time only the slowest 10% run."""
    occupancy: Stats
    """Time-weighted sequences in the batch / the peak, over the whole batch."""
    tail_occupancy: Stats
    """The same over the steps after the median finish."""
    tail_steps: Stats
    peak_sequences: float | None = None


class StageShare(Model):
    """One stage of the declared breakdown: its share of the iteration (one sample per iteration) and its tokens/s."""

    share: Stats
    tokens_per_s: float | None = None


# ---------------------------------------------------------------- work, energy, operator mix


class BoundClass(str, Enum):
    COMPUTE = "compute-bound"
    MEMORY = "memory-bound"
    OVERHEAD = "overhead-bound"
    INCONCLUSIVE = "inconclusive"
    """The measured overhead share is near the threshold, or high under contention (roofline.BOUND_RULE)."""


class MbuBasis(str, Enum):
    """The bytes an MBU is computed from (profiler/characterize/roofline.py, MBU_BASIS_RULE)."""

    REQUIRED = "required"
    """Decode steps: the bytes a step must read, the weights once + the state read (metrics.md; the usual MBU of serving
    papers: (parameter bytes + KV bytes) / TPOT)."""
    COUNTED = "counted"
    """Every other phase: the counted traffic of the unfused op-level byte model (profiler/measure/work.py), an upper bound."""

    @property
    def label(self) -> str:
        return {"required": "bytes a step must read (weights once + state)", "counted": "counted traffic (upper bound)"}[self.value]


class PhaseWork(Model):
    """One phase's counted work against the measured ceilings (profiler/characterize/roofline.py).

    Two byte figures: `bytes`, the counted traffic (upper bound) of every phase, and for a decode step `required_bytes`,
    the bytes a step must read. `mbu` is on the basis `mbu_basis` names (required for decode steps, counted elsewhere);
    `mbu_counted` is the counted traffic's MBU beside it. A summary written before the basis was recorded (no
    `mbu_basis`) had its MBU on counted traffic: `basis()` and `counted_mbu()` read it as such, and it round-trips as
    written."""

    spans_counted: int
    flops_counted: float
    flops_analytic: float
    flops: float
    bytes: float
    """Counted traffic (upper bound): median bytes per span under the unfused op-level byte model (profiler/measure/work.py:
    each op's inputs and outputs, indexing ops their rows). Intensity and the roofline position use it."""
    intensity_flop_per_byte: float | None = None
    """flops / bytes (counted traffic)."""
    time_s: float | None = None
    time_source: str | None = None
    achieved_flops_per_s: float | None = None
    achieved_bytes_per_s: float | None = None
    """Counted traffic (upper bound) / time_s."""
    required_bytes: float | None = None
    """Decode steps only (a step phase whose workload declares the fact `step_weight_bytes` and whose spans carry
    `state_bytes`): the bytes a step must read = required_weight_bytes + required_state_bytes, in bytes. None: the phase's
    MBU is on counted traffic."""
    required_weight_bytes: float | None = None
    """The weights one step reads, each once (the workload's fact `step_weight_bytes`), in bytes."""
    required_state_bytes: float | None = None
    """The state a step reads (KV cache or recurrent state): the median `state_bytes` of the measured step spans (whole
    batch, after the step: the context the step attended over), in bytes."""
    achieved_required_bytes_per_s: float | None = None
    """required_bytes / time_s."""
    mfu: float | None = None
    mbu: float | None = None
    """Achieved bytes/s on `mbu_basis` / the measured copy bandwidth (0..1): required_bytes / time_s for a decode step,
    counted traffic / time_s for every other phase."""
    mbu_basis: MbuBasis | None = None
    """What `mbu` is computed from (MbuBasis); None where no bandwidth was calibrated, or in a summary written before the
    basis was recorded, whose MBU was on counted traffic (read it through `basis()`)."""
    mbu_counted: float | None = None
    """Counted traffic (upper bound) / time_s / copy bandwidth: the op-level count's MBU, beside `mbu` (equal to it on the
    counted basis). Read it through `counted_mbu()`: an older summary has only `mbu`."""
    ridge_flop_per_byte: float | None = None
    roofline_bound_flops_per_s: float | None = None
    bound: BoundClass | None = None
    bound_basis: str | None = None
    """The evidence behind `bound`: the overhead share measured by the operator mix, and the roofline position."""

    def basis(self) -> MbuBasis | None:
        """What `mbu` is computed from; a summary written before `mbu_basis` existed computed it from counted traffic."""
        if self.mbu_basis is not None:
            return self.mbu_basis
        return MbuBasis.COUNTED if self.mbu is not None else None

    def counted_mbu(self) -> float | None:
        """The counted traffic's MBU (upper bound): `mbu_counted`, or an older summary's `mbu` (it was on counted traffic)."""
        if self.mbu_counted is not None or self.mbu_basis is not None:
            return self.mbu_counted
        return self.mbu

    def mbu_achieved_bytes_per_s(self) -> float | None:
        """The achieved bytes/s `mbu` divides by the bandwidth: on its basis."""
        return self.achieved_required_bytes_per_s if self.basis() == MbuBasis.REQUIRED else self.achieved_bytes_per_s


class Work(Model):
    phases: dict[str, PhaseWork] = Field(default_factory=dict)
    bound_rule: str = ""
    uncounted_phases: dict[str, str] = Field(default_factory=dict)
    """Phase -> why it was not counted (its spans ran only on other threads)."""
    partial_phases: dict[str, str] = Field(default_factory=dict)
    """Phase -> why its count covers one thread only."""
    mfu_unavailable: str | None = None
    """Why MFU (and so the bound class) is missing although work was counted."""
    mbu_basis_rule: str = ""
    """Which bytes each phase's MBU is computed from (roofline.MBU_BASIS_RULE)."""
    required_unavailable: str | None = None
    """Why the main phase's MBU is on counted traffic although it is a decode step (its workload declared
    `step_weight_bytes` but the bytes a step must read could not be computed)."""
    ceiling_exceeded: dict[str, str] = Field(default_factory=dict)
    """Phase -> why its MFU or MBU (and so its bound class) is not shown: its achieved FLOP/s or bytes/s is above the
    calibrated ceiling, so the ceiling is wrong for it (metrics.md: never a utilization above 100%)."""

    @model_validator(mode="before")
    @classmethod
    def _lift_ceiling_reasons(cls, data: Any) -> Any:
        """profiler/characterize/roofline.py: work_by_phase puts a `ceiling_exceeded` reason beside a phase's numbers;
        it is kept here, once per phase, like the other per-phase reasons."""
        if not isinstance(data, dict) or not isinstance(data.get("phases"), dict):
            return data
        reasons = dict(data.get("ceiling_exceeded") or {})
        phases = {}
        for phase, entry in data["phases"].items():
            if isinstance(entry, dict) and "ceiling_exceeded" in entry:
                entry = dict(entry)
                reasons[phase] = entry.pop("ceiling_exceeded")
            phases[phase] = entry
        return {**data, "phases": phases, "ceiling_exceeded": reasons} if reasons else data

    @model_validator(mode="after")
    def _no_utilization_above_one(self) -> Work:
        """A stored MFU or MBU above 1 (a summary written before the roofline checked its ceilings) is withdrawn with
        the reason, so no reader shows a utilization above 100%."""
        for phase, e in self.phases.items():
            required = e.basis() == MbuBasis.REQUIRED
            rates = {
                "mfu": (e.achieved_flops_per_s, "FLOP/s", "matmul peak"),
                "mbu": (e.mbu_achieved_bytes_per_s(), "B/s", "copy bandwidth, bytes a step must read" if required else "copy bandwidth"),
                "mbu_counted": (e.achieved_bytes_per_s, "B/s", "copy bandwidth, counted traffic"),
            }
            over = {name: getattr(e, name) for name in rates if (getattr(e, name) or 0.0) > 1}
            if not over:
                continue
            beaten = []
            for name, value in over.items():
                setattr(e, name, None)
                if name == "mbu_counted" and "mbu" in over and not required:
                    continue  # on the counted basis the two are one figure: said once
                achieved, unit, which = rates[name]
                beaten.append(beaten_ceiling(achieved, achieved / value if achieved else None, unit, which))
            self.ceiling_exceeded.setdefault(phase, ceiling_exceeded_reason(beaten))
            e.bound = None
        return self


RECALIBRATE = "python -m profiler calibrate --force"


def beaten_ceiling(achieved: float | None, ceiling: float | None, unit: str, which: str) -> str:
    """'achieved 1.20 TFLOP/s above the calibrated 1.00 TFLOP/s (float32 matmul peak)'."""
    if achieved is None or ceiling is None:
        return f"achieved {unit} above the calibrated {which}"
    return f"achieved {si(achieved, unit)} above the calibrated {si(ceiling, unit)} ({which})"


def ceiling_exceeded_reason(beaten: list[str]) -> str:
    """Why a phase's MFU or MBU is not shown (Work.ceiling_exceeded): what beat which ceiling, and what to do."""
    ceiling = "the ceiling is" if len(beaten) == 1 else "the ceilings are"
    return f"{' and '.join(beaten)}: {ceiling} too low for this phase (recalibrate: {RECALIBRATE})"


class PhaseEnergy(Model):
    seconds: float | None = None
    energy_j: float | None = None
    average_power_w: float | None = None
    j_per_output_unit: float | None = None
    unavailable: str | None = None


class Energy(Model):
    """NVML total-energy counter over the measured window (profiler/characterize/energy.py)."""

    window_s: float
    energy_j: float
    average_power_w: float
    idle_power_w: float | None = None
    energy_above_idle_j: float | None = None
    j_per_output_unit: float | None = None
    method: str
    phases: dict[str, PhaseEnergy] = Field(default_factory=dict)


class PhaseMix(Model):
    time_us_by_category: dict[str, float] = Field(default_factory=dict)
    share_by_category: dict[str, float] = Field(default_factory=dict)
    dominant_category: str | None = None
    wall_us: float | None = None
    kernel_launches: int | None = None
    device_idle_fraction: float | None = None


class OperatorMix(Model):
    """The traced pass (profiler/measure/opmix.py)."""

    phases: dict[str, PhaseMix] = Field(default_factory=dict)
    traced_iteration_s: float
    trace_file: str
    time_basis: str
    traced_over_timed_e2e: float | None = None
    device_unavailable: str | None = None


# ---------------------------------------------------------------- one workload


class Status(str, Enum):
    """A workload's state. A summary.json holds ok, failed or interrupted; run.json entries also
    pending (not started yet), running (in progress, or its profiler died) and not finished (the
    profiler itself failed while it ran)."""

    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    PENDING = "pending"
    RUNNING = "running"
    NOT_FINISHED = "not finished"


class ErrorInfo(Model):
    phase: str
    reason: str


class Loop(Model):
    warmup_iters: int
    measured_iters: int
    measure_s: float
    stopped_at_max_seconds: bool  # before min_iters (never under a load)
    hit_max_seconds: bool
    timed_out_requests: int = 0  # under a load: requests not finished when max_seconds ended the run


class SweepPoint(Model):
    group: str
    point: dict[str, Any]


class Stage(Model):
    """A stage of the child's life on the host monotonic clock (the sampler's clock): setup,
    warmup, measure, count_work, trace_ops, teardown. `end_ns` None: it never ended."""

    name: str
    start_ns: int
    end_ns: int | None = None


CHILD_SCHEMA_VERSION = 1
ERROR_SCHEMA_VERSION = 1


class ChildError(Model):
    """error.json: why a workload failed, as its child recorded it (run/child.py: describe_error), or as the parent
    settled it (run/finish.py: settle_error: a child killed, hung or gone without a word). Validated once where the run
    reads it; files written before the version field read as version 1."""

    schema_version: int = ERROR_SCHEMA_VERSION
    phase: str
    """The child's stage when it failed (setup, warmup, measure, count_work, trace_ops, teardown, ...)."""
    reason: str
    """One line: the exception's type and message (at most 500 characters), or the parent's reason."""
    type: str | None = None
    """The exception's class name (ChildFailure: the parent's reason, the child recorded none)."""
    traceback: str | None = None
    teardown_error: ChildError | None = None
    """An error in teardown after the first one (the first error wins)."""

    def info(self) -> ErrorInfo:
        """The phase and reason a summary keeps."""
        return ErrorInfo(phase=self.phase, reason=self.reason)


class FittedRequests(Model):
    """How requests longer than the model's positions were made to fit (load/arrivals.py: fit_to_positions)."""

    policy: str
    """clip, scale or reject (the load block's long_requests)."""
    max_positions: int
    """The model's positions: prompt + generated tokens of one request at most."""
    touched: int
    """Requests changed (scale changes every request once one is too long)."""
    factor: float | None = None
    """scale: the factor every size was multiplied by (floored, each >= 1); None for clip."""


class SendAccuracy(Model):
    """The open-loop sender's own error (load/sender.py: SendReport.accuracy): achieved - scheduled send time over every
    send, percentiles by numpy's linear interpolation, in seconds; None when nothing was sent."""

    p50_s: float | None = None
    p99_s: float | None = None
    max_s: float | None = None
    cpu_share: float | None = None
    """The sending thread's CPU time (spinning and submit calls included) / the sender's wall time, 0..1 of a core."""


class GapStats(Model):
    """The gaps between consecutive scheduled send times (load/arrivals.py: gap_stats)."""

    requests: int
    mean_gap_s: float
    cv_gap: float | None = None
    """Sample standard deviation / mean of the gaps (1 for Poisson, 1/sqrt(k) for gamma, 0 for constant); None when
    the mean gap is 0 (every request at once)."""
    achieved_rate: float | None = None
    """(n - 1) / (last - first) requests per second; None when every request is sent at once."""


class LoadFacts(Model):
    """What the load driver (run/serve.py: serve) knows of one load run beyond its request records, in child.json's
    `serve`. Times: `start_ns`, `end_ns` time.monotonic_ns; `wall_s` from the first send to the end of collection."""

    pattern: str = "unknown"
    requests: int = 0
    measured_requests: int = 0
    long_requests: FittedRequests | None = None
    """Requests fitted to the model's positions; None when the engine has no position limit."""
    sizes_capped: dict[str, int] = Field(default_factory=dict)
    """Requests whose drawn sizes were capped, per size (load/arrivals.py: capped_sizes)."""
    prefix_share: float | None = None
    start_ns: int | None = None
    bad_records: list[str] = Field(default_factory=list)
    """Records the engine returned that the driver could not take, in words."""
    trace_failed_rows_skipped: int = 0
    sender: SendAccuracy | None = None
    """The open-loop sender's achieved-vs-scheduled error; None for a closed loop."""
    scheduled_gaps: GapStats | None = None
    wall_s: float | None = None
    end_ns: int | None = None
    status_counts: dict[str, int] = Field(default_factory=dict)
    measured_finished: int = 0
    engine_sampler_error: str | None = None


class ChildRecord(Model):
    """child.json: what a workload's child process reported of itself (run/child.py writes it as it ends; the run
    validates it once, in run/finish.py, and everything after reads these fields). The child builds it as this
    model too; each assignment is validated (a phase_memory of dicts becomes DevicePeak values)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = CHILD_SCHEMA_VERSION
    pid: int | None = None
    seed: int | None = None
    device: str | None = None
    stages: list[Stage] = Field(default_factory=list)
    cpu_affinity: list[int] = Field(default_factory=list)
    """The cores of its CPU affinity mask."""
    torch_threads: int | None = None
    omp_wait_policy: str | None = None
    """OMP_WAIT_POLICY in force and where it came from (run/supervisor.py: OMP_WAIT_POLICY)."""
    setup_s: float | None = None
    facts: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    state_layers: list[StateLayer] | None = None
    loop: Loop | None = None
    serve: LoadFacts | None = None
    """Under a `load:` block, the load driver's facts (run/serve.py: serve)."""
    serve_engine: str | None = None
    work_error: str | None = None
    opmix_error: str | None = None
    work_uncounted_phases: list[str] = Field(default_factory=list)
    work_partial_phases: list[str] = Field(default_factory=list)
    phase_memory: dict[str, DevicePeak] | None = None
    """On CUDA, the allocator's peak bytes per phase."""
    local_server: ServerDeclaration | None = None
    """The local server the workload declared at setup (plugin.SetupContext.declare_server), None: none."""
    gpu_uuid: str | None = None
    gpu_name: str | None = None
    flush_error: str | None = None
    """Why its spans could not be written as a part at the end (the journal then holds them)."""


class RepeatInfo(Model):
    """One repeat of a workload run with measure.repeats > 1 (profiler/run/repeats.py)."""

    repeat: int
    dir: InsideDir
    """Its directory under the workload's: repeat-<k> (a path inside it: inside_dir)."""
    status: Status
    e2e_median_s: float | None = None
    contended: bool | None = None


class ContextBin(Model):
    """The inter-token gaps whose context is in [context_lo, context_hi) tokens (profiler/characterize/serving.py: itl_by_context)."""

    context_lo: int
    context_hi: int
    gaps: int
    itl_p50_s: float
    itl_p90_s: float
    running_p50: float | None = None
    """Median requests running in the engine at these gaps' ends (ITLByContext.running_from says from what)."""


class ITLByContext(Model):
    """ITL against context, to the end of the longest sequence: the i-th gap of a request with P prompt tokens is
    at context P + i (finished measured requests; profiler/characterize/serving.py: context_gaps, itl_by_context)."""

    bin_tokens: int
    bins: list[ContextBin]
    gaps: int
    max_context_tokens: int
    growth: float | None = None
    """p50 ITL of the longest-context bin over that of the shortest, both with at least MIN_BIN_GAPS gaps (None: fewer than 2 such bins)."""
    from_bin: int | None = None
    """Index in `bins` of the shortest-context bin `growth` compares (the longest is `to_bin`)."""
    to_bin: int | None = None
    running_from: str | None = None
    """Where the running batch at each gap comes from: "engine samples" (the engine's count at its last sample
    before the gap ended) or "request records" (requests scheduled and not yet done)."""
    running_min: float | None = None
    """Lowest per-bin median running batch over the compared bins (running_max: the highest)."""
    running_max: float | None = None
    batch_changed: bool = False
    """running_max / running_min >= BATCH_CHANGE: ITL against context then mixes the context's cost with the batch's."""


class KVByContext(Model):
    """KV cache bytes the engine reports against the tokens of context its running requests hold, at each engine
    sample (profiler/characterize/serving.py: kv_tokens_held, fit_kv_growth)."""

    samples: int
    slope_bytes_per_token: float
    """Measured KV bytes per token of context: the slope of a least-squares line of kv_bytes_used on tokens held."""
    intercept_bytes: float
    r2: float
    max_tokens_held: int
    running_mean: float | None = None
    declared_bytes_per_token: float | None = None
    """The workload's declared kv_bytes_per_token (2 x layers x kv_heads x head_dim x dtype bytes for full attention)."""
    slope_over_declared: float | None = None
    page_tokens: int | None = None
    """Tokens per KV page: a request holds whole pages, up to page_tokens - 1 tokens of slack (about half a page on
    average), which lifts the line (intercept) and scatters the points without changing its slope."""


class ServerReported(Model):
    """What a server reported about itself over the measured window: the deltas of its Prometheus counters between a
    scrape at the window's start and one at its end (workloads/endpoint_metrics.py: deltas; an engine's facts
    `server_metrics.window`). The server's own figures are cumulative since it started (or, in its log line, a rolling
    window); these are this run's: what the server did inside the window, of requests in flight at its edges (warmup,
    cooldown) and of other clients' requests too. None: see `unavailable`."""

    source: str = ""
    """Where the names come from (server, version, files) and whether they were checked against a running server."""
    prefix_cache_hit_rate: float | None = None
    """Δ prefix-cache hits / Δ prefix-cache queries (vLLM: tokens found in its prefix cache / tokens looked up)."""
    prefix_hit_tokens: float | None = None
    prefix_query_tokens: float | None = None
    draft_acceptance_rate: float | None = None
    """Δ accepted draft tokens / Δ draft tokens (speculative decoding)."""
    draft_tokens: float | None = None
    accepted_tokens: float | None = None
    queue_s_mean: float | None = None
    """Δ sum / Δ count of the server's queue-time histogram: the mean time the requests that finished in the window
    waited in its queue (s), as the server measured it (vLLM: scheduled - queued)."""
    queue_requests: float | None = None
    preemptions: float | None = None
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    span_s: float | None = None
    """Seconds between the two scrapes."""
    start_lag_s: float | None = None
    end_lag_s: float | None = None
    """How long after each window edge its scrape was taken (s)."""
    unavailable: dict[str, str] = Field(default_factory=dict)
    """figure -> why it is None (the server exposes no such counter, a counter went backwards, nothing happened)."""


class Serving(Model):
    """A workload under a `load:`: its request pattern and how its requests fared against the objective
    (profiler/characterize/serving.py has every definition). Latencies run from each request's arrival."""

    load: LoadConfig
    """The `load:` block as run (pattern, rate or trace, sizes, seed...)."""
    slo: str
    """The SLOs stated, e.g. 'ttft <= 0.25 s, tpot <= 0.1 s'."""
    slo_values: dict[str, float | None]
    attainment_target: float
    qoe_stated: str
    """The reader's timeline and the QoE's form, e.g. 'expected TTFT 1 s, 4.8 tokens/s, step form' (plugin.QoE.stated)."""
    qoe_values: dict[str, float] = Field(default_factory=dict)
    """The reader's timeline the QoE is judged against: expected_ttft_s, tokens_per_s."""
    qoe_form: QoEForm = "step"
    """How each request's QoE is integrated (plugin.QoE.form; characterize/serving.py: QOE_FORMS): step, Andes' definition on
    the step curves of discrete tokens (andes_qoe), or andes_code, the Andes authors' own code (andes_qoe_authors). Summaries
    written before the field have none: they used the step form, the only one there was."""

    @model_validator(mode="after")
    def _stated_with_its_form(self) -> Serving:
        """A summary written before qoe_form states no form: its QoE is the step form's, said wherever qoe_stated is shown."""
        if not self.qoe_stated.endswith(" form"):
            self.qoe_stated = f"{self.qoe_stated}, {self.qoe_form} form"
        return self

    requests: int
    measured_requests: int
    status_counts: dict[str, int]
    """Requests per end state: finished, failed, timed_out (past max_seconds), lost (the engine died), not_sent."""
    measured_status_counts: dict[str, int] = Field(default_factory=dict)
    """Measured requests (warmup and cooldown excluded) per end state."""
    measured_errors: dict[str, int] = Field(default_factory=dict)
    """The most common error texts of measured requests that did not finish (at most 3, most common first) -> how many
    requests had each (characterize/serving.py: top_errors)."""
    window_s: float | None = None
    """The measured window: the first measured arrival to the last measured request's end, where a request that did not
    finish (timed out, lost, interrupted) ends when the driver stopped waiting for it (characterize/serving.py:
    measured_window_ns). Throughput and goodput are per second of it."""
    window_start_ns: int | None = None
    window_end_ns: int | None = None
    """The window's bounds on time.monotonic_ns (the requests' clock); None in summaries written before they were kept."""
    window_ended_at_stop: bool = False
    """True when a measured request had not ended when the driver stopped, so the window runs to the stop."""
    concurrency_held: float | None = None
    """Mean measured requests in flight over the window (Little's law: their summed time in the system / the window);
    for a closed loop, the concurrency the client kept."""
    offered_rate_rps: float | None = None
    """Achieved send rate of an open loop: (sent - 1) / (last send - first send), measured requests. None for a closed
    loop: the engine paces its sends (its rate is throughput_rps, its load concurrency_held)."""
    arrival_cv: float | None = None
    """Burstiness: CV of the achieved gaps between measured sends (1 for Poisson; None for a closed loop)."""
    arrival_cv_ci95: tuple[float, float] | None = None
    """95% bootstrap interval of arrival_cv (resampled gaps)."""
    throughput_rps: float | None = None
    output_tokens_per_s: float | None = None
    """Output tokens every measured request received (a request cut off by max_seconds: those its engine had delivered
    when the run stopped, where the engine says) per second of the window. vLLM counts finished requests' tokens only."""
    queue_s: Stats = Field(default_factory=lambda: Stats(count=0))
    ttft_s: Stats = Field(default_factory=lambda: Stats(count=0))
    tpot_s: Stats = Field(default_factory=lambda: Stats(count=0))
    itl_s: Stats = Field(default_factory=lambda: Stats(count=0))
    e2e_s: Stats = Field(default_factory=lambda: Stats(count=0))
    queue_share: float | None = None
    """Median over finished measured requests of queueing delay / E2E."""
    slo_attainment: float | None = None
    """Share of the measured requests that were sent and meet every SLO (a request never sent, its send time past
    max_seconds, was never offered to the engine and is left out)."""
    queue_trend_s: tuple[float, float] | None = None
    """Median queueing delay of the first and of the last quarter of finished measured requests by arrival (s): queue_s,
    else TTFT at the median prompt length where the engine reports no scheduling; None below 8 finished
    (characterize/serving.py: queue_trend, ttft_at_median_prompt)."""
    goodput_rps: float | None = None
    qoe: Stats = Field(default_factory=lambda: Stats(count=0))
    qoe_at_least_0_9: float | None = None
    """Share of finished measured requests with QoE >= 0.9 (Andes compares capacity at this level)."""
    concurrency: Stats = Field(default_factory=lambda: Stats(count=0))
    """Requests running in the engine, over the engine samples of the measured window."""
    waiting: Stats = Field(default_factory=lambda: Stats(count=0))
    kv_bytes_total: float | None = None
    kv_occupancy_max: float | None = None
    """Peak share of the KV cache's pages held (pages held x bytes per page / capacity), or, for an engine that gives a
    fraction and no bytes (engine.parquet kv_usage: a server's Prometheus gauge), that fraction's peak. With prefix
    caching the engine keeps freed pages for reuse and they count as held (the workload's facts say which)."""
    preempted_max: float | None = None
    prefix_share: float | None = None
    """Share of prompt prefix blocks seen in an earlier request (Mooncake hash_ids): what a prefix cache could serve."""
    sender: SendAccuracy = Field(default_factory=SendAccuracy)
    """The load generator's own accuracy: p50/p99/max send error (s) and its CPU share of a core (all None for a closed
    loop, which has no schedule to miss)."""
    long_requests: FittedRequests | None = None
    """How requests longer than the model's positions were fitted: policy, max_positions, touched, factor."""
    sizes_capped: dict[str, int] = Field(default_factory=dict)
    """Per side (input, output) with a capped lognormal (`max:`): how many requests' draws were above it and set to it."""
    itl_by_context: ITLByContext | None = None
    """ITL against context to the end of the longest sequence (None: see context_unavailable)."""
    kv_by_context: KVByContext | None = None
    """KV cache bytes against tokens of context held (None: see context_unavailable)."""
    context_unavailable: dict[str, str] = Field(default_factory=dict)
    """itl_by_context / kv_by_context -> why it is not available on this run."""
    server_reported: ServerReported | None = None
    """The server's own counters over the measured window (an HTTP endpoint with a Prometheus endpoint); None: the
    engine reads none (the workload's facts `server_metrics` say why)."""
    unavailable: dict[str, str] = Field(default_factory=dict)
    """queue_s (and queue_share), concurrency (and waiting), kv_occupancy_max -> why it is empty on this run, read from the
    records (characterize/serving.py: serving_unavailable): e.g. an engine that reports no scheduling time (a server
    reached over HTTP) has no queueing delay, stated, never estimated."""


class Placement(Model):
    """Where one workload or sweep point ran, and what it held there (profiler/run/executor.py)."""

    executor: str
    """local | ray."""
    host: str | None = None
    node_id: str | None = None
    """The Ray node's id (ray only)."""
    node_ip: str | None = None
    worker_pid: int | None = None
    """The process that spawned and sampled the child (this profiler locally; the Ray worker on a cluster)."""
    cpus: float | None = None
    """CPU cores the point held: Ray's logical CPUs for its task (ray), None locally (the whole machine, one point at a time)."""
    gpus: float | None = None
    """GPUs the point held (ray; a fraction when the suite lets points share one)."""
    gpu_ids: list[str] = Field(default_factory=list)
    """The accelerator ids Ray assigned (its CUDA_VISIBLE_DEVICES)."""
    cores: list[int] = Field(default_factory=list)
    """The CPU cores the child was pinned to (ray: exclusive among the profiler's points on that node); empty: not pinned."""
    policy: str = ""
    """How points were placed, in words."""
    env: dict[str, Any] = Field(default_factory=dict)
    """The worker's environment (python, packages, GPUs: profiler/measure/env.py), ray only (locally it is env.json)."""


class WorkloadSummary(Model):
    """summary.json: everything derived about one workload run (or one sweep point)."""

    name: str
    type: str
    plugin: str
    status: Status
    error: ErrorInfo | None = None
    device: str
    seed: int
    params: dict[str, Any] = Field(default_factory=dict)
    declaration: Declaration = Field(default_factory=Declaration)
    declaration_source: str = "declared by the workload"
    facts: dict[str, Any] = Field(default_factory=dict)
    setup_s: float | None = None
    loop: Loop | None = None
    wall_s: float | None = None
    sweep: SweepPoint | None = None
    span_count: int = 0
    sample_count: int = 0
    sample_hz_achieved: float | None = None
    stages: list[Stage] = Field(default_factory=list)
    metrics: RequestMetrics = Field(default_factory=RequestMetrics)
    deadlines: Deadlines | None = None
    phases: dict[str, PhaseStats] = Field(default_factory=dict)
    memory: Memory = Field(default_factory=Memory)
    contention: Contention | None = None
    local_server: LocalServer | None = None
    """Its own local server's process tree, sampled as the workload (found by the parent before the run, or declared at
    setup; see LocalServer); None: it has none."""
    other_servers: LocalServer | None = None
    """The local servers of the suite's other workloads, alive beside this one (their trees read together, `own` false):
    what they held and used while this workload was measured; their CPU counts as other processes' (contention). None:
    the suite has no other local server."""
    repeats: list[RepeatInfo] | None = None
    """With measure.repeats > 1: each repeat, in order (this summary pools the completed ones); None for one run."""
    declared_state: DeclaredState | None = None
    state_check: StateCheck | None = None
    scaling: dict[str, PositionFits] = Field(default_factory=dict)
    work: Work | None = None
    energy: Energy | None = None
    operator_mix: OperatorMix | None = None
    serving: Serving | None = None
    """Under a `load:` block: the request pattern and the objective's figures."""
    breakdown: dict[str, StageShare] = Field(default_factory=dict)
    """The declared stages (Declaration.breakdown) in order, then `other` (time no stage covers)."""
    batch_tail: BatchTail | None = None
    """A synchronous batch's straggler tail, where the step spans carry `finished`."""
    streams: Streams | None = None
    """The workload's own concurrent streams, per condition, and their interference (Declaration.streams)."""
    placement: Placement | None = None
    """Where it ran (None in runs written before executors)."""
    unavailable: dict[str, str] = Field(default_factory=dict)
    """Metric or analysis -> why it is not available on this run."""
    warnings: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    """Failures of the profiler's own analysis or storage (the measurements on disk stand)."""

    @property
    def output_unit(self) -> str:
        return self.declaration.output_unit


# ---------------------------------------------------------------- the run


class RunStatus(str, Enum):
    RUNNING = "running"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class RunEntry(Model):
    """One workload (or sweep point) of the run, and where its files are."""

    name: str
    dir: InsideDir
    """Its directory under the run directory (a path inside it: inside_dir)."""
    type: str
    status: Status = Status.PENDING
    sweep_group: str | None = None
    sweep_point: dict[str, Any] | None = None
    resources: Resources | None = None
    """What the workload declared it needs (None in runs of schema version 1)."""


class IdlePower(Model):
    idle_power_w: float | None = None
    window_s: float | None = None
    method: str | None = None
    unavailable: str | None = None


class RunError(Model):
    reason: str
    traceback: str | None = None


class RunInfo(Model):
    """run.json: the suite, where each workload's files are, and how the run ended."""

    schema_version: int = SCHEMA_VERSION
    profiler_version: str | None = None
    suite: str
    baseline: str | None = None
    serving_baseline: str | None = None
    """The workload under a load the others are compared to on request pattern and objective (None: no load in the suite)."""
    device: str
    started_utc: str | None = None
    finished_utc: str | None = None
    gpu_idle_power: IdlePower = Field(default_factory=IdlePower)
    status: RunStatus = RunStatus.RUNNING
    profiler_pid: int | None = None
    host: str | None = None
    executor: str | None = None
    """Where the points ran, in words (suite.config.ExecutorConfig.describe; None in runs written before executors)."""
    cluster: dict[str, Any] | None = None
    """ray: the cluster the points ran on (address, nodes, resources), as Ray reported it when the run started."""
    workloads: list[RunEntry] = Field(default_factory=list)
    error: RunError | None = None


class ResolvedEntry(BaseModel):
    """One workload (or sweep point) of config.resolved.yaml, as a report reads it: its name, type, validated params,
    and under a load its `load:` and `objective:` blocks. Other keys (sweep, ...) are not read and are ignored."""

    model_config = ConfigDict(extra="ignore")

    name: str
    type: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    load: LoadConfig | None = None
    objective: Objective | None = None


class ResolvedSuite(BaseModel):
    """config.resolved.yaml (run/record.py writes the suite as validated, with the device it resolved to): what a
    report reads of it, typed. `measure`, `executor` and the rest are in run.json and the summaries and are ignored
    here. A run directory without the file (or with one that is damaged) reads as the defaults, with a problem."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    seed: int = 0
    """The suite's seed (torch, every generator, and the bootstrap intervals of the differences)."""
    device_resolved: str | None = None
    workloads: list[ResolvedEntry] = Field(default_factory=list)

    def entry(self, name: str) -> ResolvedEntry | None:
        """The entry named `name` (a sweep point is an entry of its own); None when there is none."""
        return next((e for e in self.workloads if e.name == name), None)


def summary_json_schema() -> dict[str, Any]:
    """The JSON Schema of summary.json (written beside the summaries in every run directory)."""
    schema = WorkloadSummary.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"profiler workload summary (schema version {SCHEMA_VERSION})"
    return schema


# ---------------------------------------------------------------- run-level files


class Verdict(str, Enum):
    """A workload's characteristic against the baseline's (reports/differences.py: compare), as
    written to differences.csv/json."""

    HIGHER = "higher"
    LOWER = "lower"
    NO_DIFFERENCE = "no difference"
    SAME = "same"
    DIFFERS = "differs"
    PRESENT = "present"
    UNAVAILABLE = "unavailable"
    BASELINE_UNAVAILABLE = "baseline unavailable"
    NOT_COMPARABLE = "not comparable"
    NO_RATIO = "no ratio (baseline is zero)"
    NO_INTERVAL = "no interval"
    INCONCLUSIVE = "inconclusive"
    """A direction that would not survive a rerun: contention, too few samples, a weak fit or an
    interval too wide to mean "no difference" (reports/differences.py states the rules)."""

    @property
    def is_finding(self) -> bool:
        """A claim about the workload (shown among the findings), not a statement that none can be made."""
        return self in (Verdict.HIGHER, Verdict.LOWER, Verdict.DIFFERS, Verdict.PRESENT)


class CeilingSpread(BaseModel):
    """The repeated trials behind one ceiling (profiler/measure/calibrate.py: repeat_until_stable), in the ceiling's unit."""

    model_config = ConfigDict(extra="ignore")

    best: float
    median: float | None = None
    trials: int
    stable: bool
    """The best was reached again and stopped rising within the time budget (calibrate.is_stable)."""
    n: int | None = None
    """The matrix size of a matmul ceiling."""


class Calibration(BaseModel):
    """calibration.json: this machine's measured ceilings (profiler/measure/calibrate.py), or why not.

    Each ceiling is the best of repeated trials, its spread beside it; `from_cache` and `age_s`
    say whether the run took them from the per-machine cache and how old they were then."""

    model_config = ConfigDict(extra="ignore")

    matmul_flops_per_s: dict[str, float] = Field(default_factory=dict)
    """Peak matmul FLOP/s per dtype name."""
    copy_bytes_per_s: float | None = None
    measured_utc: str | None = None
    node: str | None = None
    """On a cluster: the host of the node these ceilings are from (the first to return; each point's node.json has its own)."""
    method: dict[str, str] = Field(default_factory=dict)
    matmul_spread: dict[str, CeilingSpread] = Field(default_factory=dict)
    copy_spread: CeilingSpread | None = None
    from_cache: bool | None = None
    age_s: float | None = None
    """Seconds between the measurement and its use (0 when measured for this run)."""
    cache_note: str | None = None
    """Why a cached calibration was not used (stale, for another machine or setup, another method)."""
    unavailable: str | None = None
    contention: str | None = None
    """Set when other processes competed with the calibration (so it was not cached): how much, on its cores."""

    @property
    def ok(self) -> bool:
        return bool(self.matmul_flops_per_s) and self.copy_bytes_per_s is not None

    @property
    def provenance(self) -> str:
        """Where the ceilings came from, for people: the cache and its age, or measured for this run and why."""
        if self.from_cache is None:
            return ""
        if self.from_cache:
            where = f"taken from the per-machine cache, {age_text(self.age_s)} old"
        else:
            where = "measured afresh" + (f": {self.cache_note}" if self.cache_note else "")
        if self.contention:
            where += f"; measured under contention: {self.contention}; the ceilings may be too low (not cached; measure again when quiet: {RECALIBRATE})"
        return where


def age_text(seconds: float | None) -> str:
    """'3.2 days', '5.0 h', '12 min', '40 s'."""
    if seconds is None:
        return "an unknown time"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


class RatioCI(Model):
    """A ratio of medians with its 95% bootstrap interval (profiler/characterize/stats.py: ratio_ci)."""

    ratio: float | None = None
    ci95: tuple[float, float] | None = None
    n: tuple[int, int] | None = None


class BatchFit(Model):
    """One sweep point against the smallest batch of its family (profiler/characterize/scaling.py)."""

    base: str
    point: str
    batch_size: int
    base_batch_size: int
    throughput_gain: RatioCI
    e2e_growth: RatioCI


class CrossoverSide(Model):
    """One side's sweep point at one context length (profiler/characterize/crossover.py: LatencyPoint)."""

    name: str | None = None
    median_s: float | None = None
    """Median TPOT (per-token decode latency) over the point's requests, seconds."""
    ci95: tuple[float, float] | None = None
    count: int = 0
    """Requests behind the median."""
    unreachable: str | None = None
    """Why this length has no measurement (the point failed, e.g. beyond the model's positions, or ran out of time)."""
    contended: bool | None = None


class CrossoverPoint(Model):
    context: float
    """The swept key's value (tokens of context)."""
    a: CrossoverSide | None = None
    """None: a was not swept at this length."""
    b: CrossoverSide | None = None
    relation: str | None = None
    """below | above | overlap | contended | too few requests (a against b), None when not measured on both sides."""
    ratio: float | None = None
    """median_a / median_b."""


class Crossover(Model):
    """Where a's per-token decode latency (TPOT) drops below b's across a context sweep (the suite's `crossover:`
    block; profiler/characterize/crossover.py: find_crossover has the rule and the formula)."""

    a: str
    b: str
    over: str
    verdict: str
    """crossover | below at every length | above at every reachable length | above at the longest reachable length | inconclusive | unavailable."""
    context: float | None = None
    """The interpolated crossover length (tokens), with verdict crossover only."""
    bracket: tuple[float, float] | None = None
    reason: str
    rule: str
    points: list[CrossoverPoint] = Field(default_factory=list)


class SweepGroup(Model):
    batch: list[BatchFit] = Field(default_factory=list)
    points: list[str] = Field(default_factory=list)
    crossover: Crossover | None = None
    """With a suite's `crossover: {a: this group, b, over}`: where this group's TPOT drops below b's."""
