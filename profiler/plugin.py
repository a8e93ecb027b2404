"""The Workload protocol: the contract every workload plugin implements.

The docstrings here are the specification (pluggy style). The runner calls, in a child process:
`setup(ctx)` once (untimed), then `run_once(mark)` for warmup and measured iterations, then
`teardown()` always, also after an error. Nothing in the core knows which workload it runs: a
workload describes itself through the phases it marks, the facts it declares in setup, and one
`Declaration` (what its phases mean, its units, its traits, the resources it needs), returned by
its `declaration(params)` class method. The report and the differences read the declaration and
never a phase name.

This module imports neither torch nor any model library, so `validate`, `list` and `schema` stay
light. Workload modules must follow the same rule at import time (import torch inside `setup`).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, field_serializer, field_validator, model_validator
from pydantic_core import CoreSchema, core_schema

ITERATION = "iteration"
"""The reserved phase: the runner's span around each `run_once` (one iteration)."""


class Params(BaseModel):
    """Base for a workload's parameters: strict types (no "5" for 5), unknown keys are errors.

    Give every field a default (or make it required) and a `description`: `python -m profiler
    list` shows them as the parameter's help text.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OneOf:
    """A `str` parameter that takes one of a table's names (a preset): `Annotated[str, OneOf(PRESETS)]`.

        preset: Annotated[str, OneOf(LLM_PRESETS)] | None = Field(None, description="...")

    Validated, rejected ("Input should be 'a' or 'b'") and shown in the JSON Schema (`enum`) exactly as
    `Literal[...]` of the names would be, and listed by `python -m profiler list` as that Literal. A type checker
    sees a `str`: a Literal built from a table's keys at import time is not a type it can read.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)

    def literal(self) -> Any:
        """`Literal[names]`, the type this stands for."""
        return Literal[self.names]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.literal_schema(list(self.names))

    def __repr__(self) -> str:
        return f"OneOf({self.names!r})"


class Trait(str, Enum):
    """What kind of workload this is, in the terms the readings of the differences use.

    A reading in reports/rules.yaml that names traits applies only to workloads that declare all
    of them: a reading written for diffusion never lands on a classifier.
    """

    AUTOREGRESSIVE = "autoregressive"
    """Outputs come one step at a time, each step conditioned on the outputs so far (LLM, Mamba, a discrete action head)."""
    KV_CACHE = "kv_cache"
    """Per-request state grows with the context (an attention KV cache)."""
    CONSTANT_STATE = "constant_state"
    """Per-request state does not grow with the context (an SSM or RNN state, a diffusion latent)."""
    ITERATIVE_REFINEMENT = "iterative_refinement"
    """A fixed number of steps refine a whole output at once (diffusion denoising, flow matching)."""
    SINGLE_PASS = "single_pass"
    """One forward pass per request (a classifier, an encoder)."""
    CONTROL_LOOP = "control_loop"
    """Periodic ticks with deadlines drive the work (a robot controller)."""
    MULTIMODAL = "multimodal"
    """Requests combine several input modalities (images and text, audio and video)."""
    STREAMING_INPUT = "streaming_input"
    """Input arrives continuously while outputs are produced (an always-on assistant)."""
    TRAINING = "training"
    """Weights are updated: gradients and optimizer state are held (an RL post-training or fine-tuning step)."""


QoEForm = Literal["step", "andes_code"]
"""How a stream's QoE is integrated (profiler/characterize/serving.py: QOE_FORMS): `step`, the paper's areas under the
step curves of discrete tokens (andes_qoe); `andes_code`, the Andes authors' own QoETracker.get_QoE (andes_qoe_authors)."""


class QoE(BaseModel):
    """Andes' quality of experience: the expected token timeline a reader or listener consumes (a load's
    objective, profiler/loadconfig.py: Objective, or a workload's own declared listener, Declaration.qoe),
    and the form the QoE is computed in."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    expected_ttft_s: float = Field(
        default=1.0, ge=1e-4, le=3600, allow_inf_nan=False, description="When the reader expects the first token, from arrival, 0.0001 to 3,600 s."
    )
    tokens_per_s: float = Field(
        default=4.8, ge=0.01, le=100_000, allow_inf_nan=False, description="Reader's speed, 0.01 to 100,000 tokens/s: reading about 4.8, listening about 3.3."
    )

    form: QoEForm = Field(
        default="step",
        description=(
            "How QoE is integrated. step (default): Andes' definition (arXiv 2404.16283, section 3), the area under the delivered"
            " cumulative-token curve over the area under the expected one up to the last token shown, computed exactly for tokens"
            " that arrive one at a time (step curves): a late first token counts against the stream, and a one-token answer on time scores 1."
            " andes_code: the Andes authors' own code (github.com/AmberLJC/vllm, vllm/core/andes_utils/qoe_tracker.py,"
            " QoETracker.get_QoE, commit de95ef3), to reproduce their figures: trapezoids between token displays without the"
            " first token's rise (an on-time one-token answer scores 0), blind to a late start when the last token is on time,"
            " and higher on late streams (their own example: 17.5/66 = 0.265 where step gives 0.217)."
        ),
    )

    def stated(self) -> str:
        return f"expected TTFT {self.expected_ttft_s:g} s, {self.tokens_per_s:g} tokens/s, {self.form} form"


class Resources(BaseModel):
    """What one run of the workload needs, so an executor can place it without contention.

    Points of a suite never share these unless the suite asks for it; a cluster executor places
    each run by them.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    cpu_cores: int = Field(default=1, ge=1, le=4096, description="CPU cores the workload keeps busy (threads that run at the same time).")
    gpus: int = Field(default=1, ge=0, le=64, description="GPUs it needs when the suite runs on CUDA (0: it never uses one). Ignored on the CPU.")
    memory_bytes: int | None = Field(default=None, ge=0, description="Host memory it needs at its peak, in bytes; None when unknown.")
    gpu_memory_bytes: int | None = Field(default=None, ge=0, description="Device memory it needs at its peak, in bytes; None when unknown.")


class Declaration(BaseModel):
    """What a workload's phases mean, for the comparisons against the baseline.

    Phase roles name phases the workload marks with `mark(phase, ...)`:
    - `request`: the span that is one request, the unit a user waits for. Its latency runs from
      the span's `obs_ns` attribute when it has one (an observation captured before the span),
      else from its start. Default: the whole iteration.
    - `step`: the repeated phase compared with one decode step of the baseline (a denoising step,
      an action-head call). Its spans may carry `position` (what it counts is `position_unit`)
      and `state_bytes` (the per-request state alive after the step, whole batch); state growth
      and latency growth with position are fitted on them. None: the workload has no repeated step.
    - `deliveries`: the phases whose spans hand output units to the user (`units > 0`): TTFT,
      TPOT and ITL are computed from them. Empty: every span with units > 0 except the iteration.
    - `inference`: the phase that turns an observation into outputs in a control loop (its
      share of the iteration is the inference duty cycle). None: no such phase.
    - `breakdown`: the phases that split one iteration into its stages, in order (an RL step:
      rollout, scoring, training, weight sync): each is a top-level span of the iteration; the
      summary gives each one's share of the iteration and its tokens per second (from the spans'
      `tokens` attribute). Empty: no breakdown.
    - `objective`: what the workload is judged by, in words, where it is not a request's latency
      (an RL step: the throughput of whole steps). None: read from the traits and the load.
    - `presentation`: the phase that turns a request's first delivered units into what the user
      perceives (speech synthesis of the first sentence): its first span per request ends the
      time to first output (time to first audio). None: the first delivery is what is perceived.
    - `qoe`: the reader or listener a request's stream is judged by outside a `load:` block
      (Andes' QoE: when the first unit is expected, how fast they are consumed): a voice
      assistant's listener expects the answer within a turn gap. None: no QoE is computed.
    - `streams`: the workload's own concurrent input streams (camera frames and voice queries).
      It runs them alone and together within one run, each iteration in one condition, and
      marks every span with `condition` (the streams running, joined by '+': 'frames',
      'queries', 'frames+queries'); the summary compares each phase across conditions
      (interference). Declared concurrency is the workload's own, not contention.

    Work, intensity, MFU, MBU, bound class and operator mix are read from the step phase, or from
    the request phase when there is no step.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    output_unit: str = Field(default="unit", min_length=1, max_length=40, description="What one output unit is: 'token', 'image', 'action'.")
    request: str = Field(default=ITERATION, min_length=1, max_length=200, description="The phase whose span is one request.")
    step: str | None = Field(default=None, min_length=1, max_length=200, description="The repeated phase compared with one decode step.")
    deliveries: tuple[str, ...] = Field(default=(), description="Phases whose spans deliver output units; empty: any span with units > 0.")
    inference: str | None = Field(default=None, min_length=1, max_length=200, description="The observation-to-output phase of a control loop.")
    breakdown: tuple[str, ...] = Field(default=(), description="Phases that split an iteration into its stages, in order (top-level spans).")
    objective: str | None = Field(
        default=None, min_length=1, max_length=200, description="What the workload is judged by, where it is not a request's latency."
    )
    presentation: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The phase whose first span per request ends the time to first output as perceived (speech synthesis).",
    )
    qoe: QoE | None = Field(default=None, description="The reader or listener a request's stream is judged by (Andes QoE), outside a load: block.")
    streams: tuple[str, ...] = Field(default=(), description="The workload's own concurrent streams, run alone and together (span attribute `condition`).")
    position_unit: str | None = Field(
        default=None, min_length=1, max_length=60, description="What `position` on step spans counts: 'token of context', 'denoising step'."
    )
    state: str | None = Field(default=None, max_length=300, description="What the per-request state is: 'KV cache', 'SSM conv + ssm state', 'latent'.")
    traits: frozenset[Trait] = Field(default=frozenset(), description="What kind of workload this is (see Trait).")
    resources: Resources = Field(default_factory=Resources, description="What one run needs (see Resources).")

    @field_validator("traits", mode="before")
    @classmethod
    def _traits_from_names(cls, value: Any) -> Any:
        """Accept trait names as strings (YAML, JSON) as well as Trait members."""
        if isinstance(value, (list, tuple, set, frozenset)):
            try:
                return frozenset(Trait(v) if isinstance(v, str) else v for v in value)
            except TypeError:  # an unhashable item (a list in a damaged summary.json): pydantic states it as invalid
                raise ValueError("traits must be a list of trait names (strings); an item is a list or a mapping") from None
        return value

    @field_serializer("traits")
    def _traits_sorted(self, traits: frozenset[Trait]) -> list[str]:
        """Written in a stable order (a set's order changes between processes)."""
        return sorted(t.value for t in traits)

    @field_validator("deliveries", "breakdown", "streams", mode="before")
    @classmethod
    def _phases_as_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _roles_are_phases(self) -> Declaration:
        for role in ("step", "inference"):
            if getattr(self, role) == ITERATION:
                raise ValueError(f"{role}: '{ITERATION}' is the runner's span around each run_once; name a phase the workload marks")
        if ITERATION in self.deliveries:
            raise ValueError(f"deliveries: '{ITERATION}' delivers nothing itself; name the phases whose spans carry units > 0")
        if ITERATION in self.breakdown:
            raise ValueError(f"breakdown: '{ITERATION}' is the whole; name the phases that split it")
        if len(set(self.breakdown)) != len(self.breakdown):
            raise ValueError(f"breakdown: a phase is named twice in {list(self.breakdown)}")
        if self.presentation == ITERATION:
            raise ValueError(f"presentation: '{ITERATION}' is the runner's span around each run_once; name a phase the workload marks")
        for name in self.streams:
            if not name or "+" in name or len(name) > 40:
                raise ValueError(f"streams: '{name}' must be a short name without '+' (conditions join stream names with '+')")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams: a stream is named twice in {list(self.streams)}")
        if self.position_unit is not None and self.step is None:
            raise ValueError("position_unit is set but step is not: position is read from the step phase's spans")
        return self

    def main_phase(self) -> str:
        """The phase work, intensity, bound class and operator mix are read from: step, else request."""
        return self.step or self.request


class StateLayer(BaseModel):
    """How one layer's (or `count` identical layers') per-request state grows with the context.

    Declared from the model's config in setup (`ctx.declare_state`), checked against the measured
    `state_bytes` of the step spans: growth per token per sequence is `bytes_per_token` until the
    context reaches `bound_tokens` (a sliding window, an attention chunk), then 0.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: str = Field(
        min_length=1,
        max_length=40,
        description="full_attention, latent_attention, sliding_window, chunked_attention, recurrent (SSM, conv, linear attention: constant), none",
    )
    bytes_per_token: int = Field(ge=0, description="Bytes one token adds per sequence while below the bound (0: constant state).")
    bound_tokens: int | None = Field(None, ge=1, description="Context length after which the layer stops growing; None: it never stops.")
    with_recurrent: bool = Field(False, description="The layer also holds a constant recurrent state (a hybrid layer).")
    count: int = Field(1, ge=1, description="Identical consecutive layers this entry stands for.")

    def growth_at(self, tokens: int) -> int:
        """Bytes per sequence this entry adds when the context grows from tokens - 1 to `tokens`."""
        if self.bound_tokens is not None and tokens > self.bound_tokens:
            return 0
        return self.bytes_per_token * self.count


class Span(Protocol):
    """What `mark(...)` yields: set attributes after the timed body, e.g. `span.attrs[...] = x`."""

    attrs: dict[str, Any]


class Mark(Protocol):
    def __call__(self, phase: str, units: float = 0, **attrs: Any) -> Any:
        """Return a context manager that records one span of `phase`.

        - `units`: output units the span makes available to the user (tokens, images, actions),
          over all the sequences it serves; a span with units > 0 is a *delivery*. Per-request
          latency metrics (time to first unit, inter-unit latency, time per output unit) are
          computed from deliveries, per token of each sequence.
        - `sequences=B` (an attribute): how many sequences the delivery serves; each receives
          units / B tokens. A decode step of a batch of 8 is `units=8, sequences=8` (one token
          each); a chunk of 4 tokens of one stream is `units=4, sequences=1` (ITL: four gaps).
          Without it, a delivery is one token to each of `units` sequences.
        - `attrs`: numbers or strings stored with the span. Attributes the profiler reads:
          `sequences` (above), `position` and `state_bytes` (on step spans: growth with context,
          per sequence = state_bytes / sequences), `obs_ns` (on a
          request or inference span: when its observation was captured, time.monotonic_ns),
          `deadline_ns`, `scheduled_ns`, `staleness_s` (control loops: deadlines, ticks, age of
          the observation behind an executed action). Measure state outside the timed body:
          `with mark(...) as s: ...` then `s.attrs["state_bytes"] = n`; attributes set before
          the iteration ends are kept.
          A synchronous batch (an RL rollout: every request starts together, the batch ends with
          its last one) puts on each step span `sequences` (requests in the batch at that step)
          and `finished` (requests that ended at it): the summary's straggler tail is read from
          them. `tokens` on a breakdown phase's spans counts the tokens it processed (tokens per
          second per stage). `memory_<kind>_bytes` (weights, gradients, optimizer_state,
          activations, kv_cache, ...) is memory of that kind measured from the tensors: the
          summary keeps each kind's peak over the measured spans.
          Several requests in one iteration (voice queries during a camera stream): each of their
          spans carries `request_id` (an integer); per-request metrics group the deliveries by it,
          from the request phase's span with the same id (its `obs_ns`, else its start). A
          periodic input that was skipped (a camera frame the workload could not take in time)
          is a span with `deadline_ns` and `dropped=1` (a processed one: `dropped=0`): it counts
          as a missed deadline and in the drop rate. `condition` (a string) names the streams
          running when the span ran (Declaration.streams).

        The span ends when the body exits. The body must make its output available on the host
        (e.g. copy the token to the CPU) before exiting: the host time is what a user or actuator
        experiences. On CUDA the device time of the same region is recorded from CUDA events.
        """


class SetupContext(Protocol):
    """What `setup(ctx)` receives."""

    device: str
    """Resolved torch device string: 'cpu', 'cuda' or 'cuda:N'."""
    seed: int
    """Seed for every random generator the workload uses (the runner has seeded torch already)."""
    workdir: str
    """This workload's directory in the run: a place for files the workload wants to keep."""

    def declare(self, **facts: Any) -> None:
        """Declare static facts (parameter count and bytes, dtype, the state-size formula...).

        Values must be JSON-serialisable. They are stored in summary.json under `facts` and
        shown in the report beside the measurements. What the phases mean is not a fact: it is
        the workload's `declaration(params)`. Facts the profiler reads: `dtype` (torch's name
        without `torch.`: MFU is against this machine's peak for it) and, from a decode workload,
        `step_weight_bytes` (int, bytes: the weights one step reads, each once; with `state_bytes`
        on the step spans it puts the step's MBU on the bytes a step must read,
        profiler/characterize/roofline.py MBU_BASIS_RULE).
        """

    def declare_server(self, pid: int, found_by: str) -> None:
        """Declare a local server (a process on this machine) that does this workload's work, e.g. the inference server
        an endpoint sends its requests to. From then on the profiler samples its process tree (the pid and its
        descendants) as the workload: its CPU and RSS in the samples' `server_*` columns and the summary's
        `local_server`, and never as contention (runmodel.CONTENTION_RULE). `found_by` says how the workload named it
        (stored). Raises ValueError when no process `pid` can be read.
        """

    def declare_state(self, layers: list[StateLayer]) -> None:
        """Declare how the per-request state grows, layer by layer (see StateLayer), computed from
        the model's own config. The summary checks it against the measured `state_bytes` of the
        step spans (per sequence, from one step to the next) and says where they differ; the
        differences' readings use its shape (grows with context, bounded by a window, mostly
        constant, constant)."""

    def warn(self, message: str) -> None:
        """Record a warning a reader must see with the numbers (e.g. a slow fallback kernel ran).

        Shown at the top of the report and in the terminal summary.
        """


@runtime_checkable
class Workload(Protocol):
    """A workload plugin: one class with a `Params` model, a `declaration`, and three methods.

    Register it under the entry-point group `profiler.workloads`, or name it in a suite file as
    `"package.module:Class"`. The class is constructed as `Workload(params)` in the child.
    """

    Params: ClassVar[type[Params]]
    """The pydantic model that validates this workload's `params:` block."""

    @classmethod
    def declaration(cls, params: Params) -> Declaration:
        """What the phases mean, the units, the traits and the resources (see Declaration).

        Called in the parent when the suite is resolved (also by `validate`), without torch: it
        may read the params, never build a model. Optional: a workload without it gets
        `Declaration()` (the iteration is the request; no step), and the report says which
        comparisons that leaves out.
        """
        ...

    def setup(self, ctx: SetupContext) -> None:
        """Untimed: build or load the model, make inputs, compile, declare facts via `ctx.declare`."""

    def run_once(self, mark: Mark) -> None:
        """One iteration = one unit of user-visible work (a generation, an image, an episode).

        Mark every phase that matters with `with mark(phase, units=...)`. Time outside spans is
        still counted in the iteration's end-to-end latency.
        """

    def teardown(self) -> None:
        """Release what setup took. Always called, also after an error in setup or run_once."""

    # Optional: a classmethod `probe(params) -> str`, called by `validate --probe` only (never by `run`, never without
    # the flag): reach what the workload will use outside this process (a server) within a few seconds, without torch,
    # and return what was found in words; raise RuntimeError or ValueError with one line (what, where, what to do),
    # which validate prints as the error (exit status 2).

    # Optional: a class method `local_server(params) -> (pid | None, str)`, the local server (a process on this machine)
    # that would do this workload's work, found from its params alone, and how it was found (or None and why not). The
    # parent calls it once before the run starts (server_of), so that every workload's sampler reads that process tree
    # from its first row: this workload's as its own, the others' as another workload's server. It must be quick and
    # import no model library; the child's `ctx.declare_server` at setup confirms it (or names another, read from then on).


class ServedRequest(BaseModel):
    """One request the load driver hands to an engine (profiler/run/serve.py)."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="Position in send order (0-based); the key of its record.")
    input_tokens: int = Field(ge=1, description="Prompt tokens.")
    output_tokens: int = Field(ge=1, description="Tokens to generate (the engine must not stop earlier by itself: random weights have no EOS).")
    prefix_blocks: list[int] | None = Field(None, description="Prefix-block hashes (Mooncake `hash_ids`): equal hashes mean equal prompt tokens.")
    prefix_block_tokens: int = Field(512, ge=1, description="Tokens per prefix block.")
    measured: bool = Field(True, description="False for warmup and cooldown requests (sent, excluded from statistics).")


ENGINE_METHODS = ("submit", "collect", "engine_stats")


@runtime_checkable
class Engine(Protocol):
    """A workload that serves requests through an engine (continuous batching): put it under a `load:`.

    The load driver calls `submit` from its sending thread at each request's arrival and `collect`
    from the main thread until every request is finished, failed or timed out; `engine_stats` from a
    sampling thread. The interface follows vLLM's per-request statistics (queued, scheduled, first
    token, last token) so that another engine can be added the same way. Times are
    time.monotonic_ns (CLOCK_MONOTONIC, the clock of the spans and the sampler).
    """

    max_positions: int | None
    """Prompt + generated tokens the model can hold; the driver fits longer requests by the load's
    `long_requests` policy. None: no limit."""

    def submit(self, request: ServedRequest) -> None:
        """Hand one request to the engine and return at once (the time it takes delays the next sends)."""

    def collect(self, timeout_s: float) -> list[dict[str, Any]]:
        """Records of requests that reached an end since the last call, waiting up to timeout_s for one.

        Each record: `index`; `status` ("finished" or "failed"); `error` (str or None); `scheduled_ns`
        (the engine took it out of its queue; None if never); `token_ns` (every output token's time,
        as the engine produced it: per token, never per chunk); `finished_ns`. Optional: `input_tokens`
        (the prompt's tokens as the engine knows them, when they may differ from the request's) and
        `input_tokens_by` (how it knows them, a word; both land in requests.parquet). Raises when the
        engine itself died (the driver keeps every record taken so far and marks the rest lost)."""
        ...

    def engine_stats(self) -> dict[str, float | None]:
        """A sample of the engine's scheduler, safe to call from another thread: `running`, `waiting`
        (requests), `kv_bytes_used`, `kv_bytes_total` (pages held x bytes per page), `preempted`
        (requests swapped out or offloaded now, or preempted since the last sample: the engine's facts say which);
        optionally `kv_usage` (the fraction of the KV cache in use, 0 to 1, for an engine that reports no bytes: a
        server's Prometheus gauge); None where the engine does not expose one."""
        ...

    def cancel(self, index: int) -> None:
        """Stop working on a request that timed out (best effort)."""

    # Optional: `work_unavailable: str`, why the untimed passes (FLOPs, bytes, operator mix) cannot count this engine's
    # work, where it is not the default reason (an engine generating on its own thread): e.g. a model that runs in
    # another process. Stated as the work and operator-mix reason in the summary and the report.
    # Optional: `progress(index) -> dict | None`, what the engine has delivered of a request that has not ended:
    # `scheduled_ns` and `token_ns` so far (the types of a record). The driver asks once for each request that timed out,
    # before writing its record, so its tokens and TTFT are kept; None (or no such method): nothing is known.
    # Optional: `measured_window(edge)`, edge "start" (just before the first measured request is sent) or "end" (the last
    # measured request ended, or the driver stopped waiting): the measured window's edges, for an engine that reads
    # counters of its own at both (run/serve.py: LoadDriver.window_edge). Called from the sending or the main thread.
    # Optional: `served_facts() -> dict`, facts known only once the load was served (an HTTP endpoint's stream tally, its
    # server's counter deltas): merged into the workload's facts after the load (run/child.py: serve_load), so they
    # reach child.json and summary.json like the facts declared at setup.


def is_engine(workload: Any) -> bool:
    """True when the workload serves requests through an engine (has every Engine method)."""
    return all(callable(getattr(workload, m, None)) for m in ENGINE_METHODS)


REQUIRED_METHODS = ("setup", "run_once", "teardown")


def declaration_of(cls: type, params: BaseModel) -> Declaration:
    """The workload class's declaration for these params (`Declaration()` when it has none).

    Raises ValueError or TypeError with a one-line reason when the plugin's declaration is
    invalid; the resolver turns that into an error naming the plugin.
    """
    method = getattr(cls, "declaration", None)
    if method is None:
        return Declaration()
    result = method(params)
    if isinstance(result, dict):
        return Declaration.model_validate(result)
    if not isinstance(result, Declaration):
        raise TypeError(f"declaration() returned a {type(result).__name__}, not a profiler.Declaration")
    return result


def server_of(cls: type, params: BaseModel) -> tuple[int | None, str]:
    """The local server the workload class names for these params (its optional `local_server(params)` class method;
    see Workload): (pid, how it was found), or (None, why not). A class without the method: (None, ""). A method that
    raises or returns another shape: (None, the reason in one line); never raises."""
    method = getattr(cls, "local_server", None)
    if method is None:
        return None, ""
    try:
        pid, how = method(params)
    except Exception as exc:  # a plugin's lookup that fails leaves the run as it was: the child may still declare one
        return None, f"its local_server() raised {type(exc).__name__}: {exc}"
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or pid < 1):
        return None, f"its local_server() returned pid {pid!r}, not a positive int"
    return pid, str(how)
