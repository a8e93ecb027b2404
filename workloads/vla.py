"""`vla`: a vision-language-action policy driving a robot control loop in real time.

The loop runs at `control_hz` for an episode of `ticks` with real wall-clock pacing (it sleeps
to its next tick, as a robot controller does), so an overloaded configuration shows deadline
misses and a light one shows none. Each tick:
- `perceive`: captures the cameras' frames (synthetic uint8 frames at camera resolution) and
  preprocesses them (resize to the encoder's size, normalise);
- executes the next action of the current chunk, if one is ready;
- every `replan_every` ticks (and whenever the chunk ran out) triggers inference (`infer`, with sub-phases `vision`, `prefix`,
  `action`). In `sync` mode the loop waits for it; in `async` mode (LeRobot's async inference)
  it runs on a second thread while the loop keeps executing the current chunk, and the new chunk
  replaces the rest of the old one when it arrives, skipping the actions whose time has passed.
The episode starts with one inference before the first tick, so both modes begin with a chunk
in hand (LeRobot's client waits for its first chunk too). The `tick` span ends when the tick's
action is sent; it carries the tick's schedule
(`scheduled_ns`), its deadline (`deadline_ns` = the next tick's start) and the age of the
observation behind the executed action (`staleness_s`). An action not ready by its deadline is a
miss (units = 0). The profiler derives lateness, miss rate, achieved rate, jitter and duty cycle
from these attributes (profiler/characterize/analysis.py).
`compile: true` compiles the action head's step over a StaticCache (vla_policy.py, `compile_head`; vision and
prefix stay eager) and runs one inference in setup, so no measured iteration includes the compilation.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from profiler.plugin import Declaration, Mark, OneOf, Resources, SetupContext, Trait
from profiler.plugin import Params as BaseParams

from .decode_loop import compile_mode, parameter_facts, resolve_dtype
from .params import DTYPE_HELP, MAX_ITERATION_S, DTypeName, Pixels
from .vla_presets import VLA_PRESETS


def sleep_until(deadline_ns: int) -> None:
    """Sleep to ~0.5 ms before the deadline, then spin: sub-millisecond tick starts."""
    remaining = deadline_ns - time.monotonic_ns()
    if remaining > 600_000:
        time.sleep((remaining - 500_000) / 1e9)
    while time.monotonic_ns() < deadline_ns:
        pass


def no_mark(phase: str, units: float = 0, **attrs: Any) -> Any:
    """A `mark` that records nothing (the inference run in setup)."""
    return contextlib.nullcontext(SimpleNamespace(attrs=dict(attrs), units=units))


def siglip_pixels(frames: Any, device: str, size: int, dtype: Any) -> Any:
    """Captured frames, uint8 [N, h, w, 3], -> SigLIP's input, float [N, 3, size, size] on `device` in `dtype`: bilinear
    resize with antialiasing, then normalised with mean 0.5 and std 0.5 (SigLIP's image processor)."""
    import torch.nn.functional as F

    x = frames.to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return ((x - 0.5) / 0.5).to(dtype)


class VLA:
    """VLA control loop: perceive every tick, infer an action chunk every replan_every ticks (sync or async)."""

    class Params(BaseParams):
        preset: Annotated[str, OneOf(VLA_PRESETS)] = Field("vla-tiny", description=f"Policy shapes: {', '.join(VLA_PRESETS)}.")
        head: Literal["discrete", "flow"] | None = Field(None, description="Action head; default: the preset's (openvla-7b discrete, pi0/smolvla flow).")
        cameras: int | None = Field(None, ge=1, le=3, description="Camera images per observation; default: the preset's.")
        camera_resolution: list[Pixels] = Field(
            [240, 320], min_length=2, max_length=2, description="Captured frame [height, width] before preprocessing, each 1 to 8192 pixels (8K)."
        )
        instruction_len: int = Field(16, ge=1, le=512, description="Instruction tokens in the prefix.")
        chunk_len: int | None = Field(None, ge=1, le=1000, description="Actions per inference call; default: the preset's (1 for discrete).")
        flow_steps: int = Field(10, ge=1, le=1000, description="Euler steps of the flow-matching head (pi0 uses 10).")
        control_hz: float = Field(
            20.0, ge=0.1, le=10_000, allow_inf_nan=False, description="Control rate: one action per tick, 0.1 to 10,000 Hz (robot arms run 5 to 1000)."
        )
        ticks: int = Field(60, ge=1, le=1_000_000, description="Ticks per episode (one iteration).")
        replan_every: int | None = Field(
            None, ge=1, le=1_000_000, description="Ticks between inference calls; default: chunk_len (sync) or chunk_len // 2 (async)."
        )
        mode: Literal["sync", "async"] = Field("sync", description="sync: the loop waits for inference; async: inference runs beside the loop.")
        dtype: DTypeName = Field("auto", description=DTYPE_HELP)
        compile: bool = Field(
            False,
            description="torch.compile the action head's step (fullgraph; CUDA graphs on CUDA in sync mode) over a StaticCache of the "
            "prefix + the tokens one call writes; vision and prefix stay eager; compiled in setup.",
        )

        @model_validator(mode="after")
        def _check(self) -> VLA.Params:
            chunk = self.chunk
            if chunk > self.ticks:
                raise ValueError(f"chunk_len {chunk} is longer than the episode horizon (ticks = {self.ticks})")
            if self.replan_every is not None and self.replan_every > chunk:
                raise ValueError(f"replan_every {self.replan_every} exceeds chunk_len {chunk}: the loop would run out of actions between calls")
            if self.head_name == "discrete" and self.chunk_len not in (None, 1):
                raise ValueError("the discrete head produces one action per call: chunk_len must be 1")
            episode = self.ticks / self.control_hz
            if episode > MAX_ITERATION_S:
                raise ValueError(
                    f"ticks / control_hz = {self.ticks} / {self.control_hz:g} Hz = {episode:.4g} s per episode (one iteration), longer than the "
                    f"longest run (measure.max_seconds <= {MAX_ITERATION_S:,} s); give fewer ticks or a higher control_hz"
                )
            return self

        @property
        def head_name(self) -> str:
            return self.head or VLA_PRESETS[self.preset]["head"]

        @property
        def chunk(self) -> int:
            if self.head_name == "discrete":
                return 1
            return self.chunk_len or VLA_PRESETS[self.preset].get("chunk_len", 1)

        @property
        def replan(self) -> int:
            if self.replan_every is not None:
                return self.replan_every
            return self.chunk if self.mode == "sync" else max(1, self.chunk // 2)

    @classmethod
    def declaration(cls, params: VLA.Params) -> Declaration:
        """One request = one inference (observation to action chunk, from its capture); one step =
        one call of the action head; ticks deliver actions. Async inference runs on a second thread."""
        head = Trait.AUTOREGRESSIVE if params.head_name == "discrete" else Trait.ITERATIVE_REFINEMENT
        return Declaration(
            output_unit="action",
            request="infer",
            step="action",
            deliveries=("tick",),
            inference="infer",
            state="prefix KV cache, rebuilt every inference call",
            traits=frozenset({Trait.CONTROL_LOOP, Trait.MULTIMODAL, head}),
            resources=Resources(cpu_cores=2 if params.mode == "async" else 1),
        )

    def __init__(self, params: VLA.Params) -> None:
        self.p = params
        self.policy: Any = None

    def setup(self, ctx: SetupContext) -> None:
        import torch

        from .vla_policy import VLAPolicy

        p = self.p
        preset = dict(VLA_PRESETS[p.preset])
        if p.head_name == "flow" and "expert" not in preset:
            raise ValueError(f"preset {p.preset} has no action expert; use head: discrete")
        self.device = ctx.device
        self.dtype = resolve_dtype(p.dtype, ctx.device)
        self.cameras = p.cameras or preset["cameras"]
        action_dim = preset["action_dim"]
        with torch.device(ctx.device):
            self.policy = VLAPolicy(preset, p.head_name, action_dim, p.chunk, p.flow_steps, p.instruction_len).to(self.dtype).eval()
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        h, w = p.camera_resolution
        self.frames = torch.randint(0, 256, (8, self.cameras, h, w, 3), generator=gen, dtype=torch.uint8)  # a pool of captured frames
        self.instruction = torch.randint(0, self.policy.backbone.config.vocab_size, (1, p.instruction_len), generator=gen).to(ctx.device)
        self.noise = torch.randn(1, p.chunk, action_dim, generator=gen).to(ctx.device, self.dtype)
        prefix_tokens = self.cameras * preset["tokens_per_image"] + p.instruction_len
        counts = {k: parameter_facts(getattr(self.policy, k))["param_count"] for k in ("vision", "projector", "backbone", "expert") if hasattr(self.policy, k)}
        ctx.declare(
            head=p.head_name,
            mode=p.mode,
            cameras=self.cameras,
            action_dim=action_dim,
            chunk_len=p.chunk,
            flow_steps=p.flow_steps if p.head_name == "flow" else None,
            replan_every=p.replan,
            control_hz=p.control_hz,
            period_s=1.0 / p.control_hz,
            ticks=p.ticks,
            image_tokens=self.cameras * preset["tokens_per_image"],
            prefix_tokens=prefix_tokens,
            dtype=str(self.dtype).removeprefix("torch."),
            **parameter_facts(self.policy),
            param_count_by_part=counts,
            published_param_count=preset.get("published_params"),
            weights=f"random, from preset {p.preset}",
            state_kind="prefix KV cache, rebuilt every inference call (no growth across calls)",
            compiled=None,
        )
        if p.compile:
            self._compile_head(ctx, prefix_tokens)

    def _compile_head(self, ctx: SetupContext, prefix_tokens: int) -> None:
        """Compile the action head's step (VLAPolicy.compile_head) and run one inference, so torch.compile
        compiles (and on CUDA records its graphs) here in setup, not in a measured iteration."""
        p = self.p
        # async runs each inference on a new thread, and torch keeps CUDA graph trees per thread: with CUDA graphs
        # every async call would warm up and record its graphs again. Async compiles without them.
        mode = compile_mode(ctx.device) if p.mode == "sync" else "default"
        self.policy.compile_head(mode, prefix_tokens)
        step = "each flow step (action_in, time MLP, expert forward, action_out)" if p.head_name == "flow" else "each action-token decode step"
        graphs = "; async on CUDA compiles without CUDA graphs (torch keeps them per thread; async infers on a new thread each call)"
        ctx.declare(
            compiled=f"torch.compile(mode={mode!r}, fullgraph=True) of {step} over a StaticCache of {self.policy.cache_tokens} tokens; "
            "vision and prefix run eager; compiled in setup by one inference before the first iteration"
            + (graphs if p.mode == "async" and ctx.device.startswith("cuda") else "")
            + "; the untimed counting and tracing passes run the step eager (torch.compile does not run under their dispatch modes)",
            cache="static",
            state_bytes_source="formula: the static cache is allocated in full up front; state_bytes on the infer spans is its filled part "
            "(prefix + the tokens the head wrote) from the per-layer formula, state_allocated_bytes the measured allocation",
        )
        self.policy.infer(self._preprocess(self.frames[0]), self.instruction, self.noise, no_mark)

    # ------------------------------------------------------------------ one episode

    def run_once(self, mark: Mark) -> None:
        p = self.p
        period_ns = int(1e9 / p.control_hz)
        buffer: deque[tuple[Any, int]] = deque()  # (action, capture time of its observation)
        pending: dict[str, Any] = {}
        worker: threading.Thread | None = None
        # The episode starts with a chunk in hand (LeRobot's client waits for its first chunk):
        # misses then measure the steady state, in both modes alike.
        pixels, obs_ns = self._perceive(mark, 0)
        actions, obs = self._infer(pixels, obs_ns, mark)
        buffer.extend((a, obs) for a in actions)
        start_ns = time.monotonic_ns() + period_ns
        for i in range(p.ticks):
            scheduled = start_ns + i * period_ns
            sleep_until(scheduled)
            with mark("tick", tick=i, sequences=1, scheduled_ns=scheduled, deadline_ns=scheduled + period_ns) as tick:
                pixels, obs_ns = self._perceive(mark, i + 1)
                if p.mode == "async" and "chunk" in pending:
                    self._swap_in(buffer, pending.pop("chunk"), period_ns)
                replan = (i > 0 and i % p.replan == 0) or not buffer
                if replan and p.mode == "sync":
                    actions, obs = self._infer(pixels, obs_ns, mark)
                    buffer.clear()
                    buffer.extend((a, obs) for a in actions)
                elif replan and (worker is None or not worker.is_alive()):
                    worker = threading.Thread(target=self._infer_into, args=(pixels, obs_ns, mark, pending), daemon=True)
                    worker.start()
                if buffer:
                    _action, obs = buffer.popleft()  # sent to the actuator here
                    tick.attrs["staleness_s"] = (time.monotonic_ns() - obs) / 1e9
                    tick.units = 1
            tick.attrs["buffered"] = len(buffer)
        if worker is not None:
            worker.join()
        if "error" in pending:
            raise pending["error"]

    def _perceive(self, mark: Mark, index: int) -> tuple[Any, int]:
        with mark("perceive"):
            obs_ns = time.monotonic_ns()
            pixels = self._preprocess(self.frames[index % len(self.frames)])
        return pixels, obs_ns

    def _preprocess(self, frames: Any) -> Any:
        import torch

        x = siglip_pixels(frames, self.device, self.policy.image_size, self.dtype)
        if x.is_cuda:
            torch.cuda.synchronize()
        return x

    def _infer(self, pixels: Any, obs_ns: int, mark: Mark) -> tuple[list[Any], int]:
        with mark("infer", obs_ns=obs_ns) as span:
            actions, state = self.policy.infer(pixels, self.instruction, self.noise, mark)
        span.attrs.update(state)
        return list(actions), obs_ns

    def _infer_into(self, pixels: Any, obs_ns: int, mark: Mark, pending: dict[str, Any]) -> None:
        try:
            pending["chunk"] = self._infer(pixels, obs_ns, mark)
        except BaseException as exc:  # surfaced on the loop thread at the end of the episode
            pending["error"] = exc

    @staticmethod
    def _swap_in(buffer: deque, chunk: tuple[list[Any], int], period_ns: int) -> None:
        """Replace the rest of the old chunk by the new one, minus actions whose time has passed."""
        actions, obs_ns = chunk
        elapsed = max(0, (time.monotonic_ns() - obs_ns) // period_ns)
        buffer.clear()
        buffer.extend((a, obs_ns) for a in actions[elapsed:])

    def teardown(self) -> None:
        self.policy = None
