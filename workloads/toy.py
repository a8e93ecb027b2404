"""`toy`: a workload whose phases take known times, for tests and for checking timing accuracy.

Each iteration busy-waits `first_s` in a `first` phase, then `steps` times in a `step` phase
whose duration grows linearly with position (`step_s + step_growth_s * k` for the k-th step), and
declares a state that grows by `state_bytes_per_step` per step. Busy-waiting (not sleeping) keeps
the durations exact on a loaded machine and makes the process look busy to the CPU sampler.
"""

from __future__ import annotations

import time

from pydantic import Field, model_validator

from profiler.plugin import Declaration, Mark, SetupContext, StateLayer
from profiler.plugin import Params as BaseParams

from .params import MAX_ITERATION_S


def busy_wait(seconds: float) -> None:
    end = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < end:
        pass


class ToyWorkload:
    """Busy-waits for known durations; phases `first` and `step` (one unit each)."""

    class Params(BaseParams):
        first_s: float = Field(0.005, ge=0, le=60, allow_inf_nan=False, description="Duration of the `first` phase (delivers the first unit), 0 to 60 s.")
        step_s: float = Field(0.001, ge=0, le=60, allow_inf_nan=False, description="Duration of the first `step`, 0 to 60 s.")
        step_growth_s: float = Field(
            0.0, ge=0, le=1, allow_inf_nan=False, description="Added to each later step's duration, per step (a known per-position slope), 0 to 1 s."
        )
        steps: int = Field(10, ge=0, le=1_000_000, description="`step` spans per iteration.")
        state_bytes_per_step: int = Field(0, ge=0, le=2**40, description="Declared state growth per step, stored as state_bytes.")

        @model_validator(mode="after")
        def _iteration_fits_a_day(self) -> ToyWorkload.Params:
            seconds = self.iteration_s
            if seconds > MAX_ITERATION_S:
                raise ValueError(
                    f"one iteration would take first_s + steps x step_s + step_growth_s x steps x (steps - 1) / 2 = {seconds:.4g} s, longer than "
                    f"the longest run (measure.max_seconds <= {MAX_ITERATION_S:,} s); give fewer steps or shorter durations"
                )
            return self

        @property
        def iteration_s(self) -> float:
            """Seconds one iteration busy-waits."""
            return self.first_s + self.steps * self.step_s + self.step_growth_s * self.steps * (self.steps - 1) / 2

    @classmethod
    def declaration(cls, params: ToyWorkload.Params) -> Declaration:
        """One request = one iteration; one step = one `step` span (position counts steps)."""
        return Declaration(step="step", deliveries=("first", "step"), position_unit="step", state="a declared byte count")

    def __init__(self, params: ToyWorkload.Params) -> None:
        self.p = params

    def setup(self, ctx: SetupContext) -> None:
        ctx.declare_state([StateLayer(kind="declared", bytes_per_token=self.p.state_bytes_per_step)])
        ctx.declare(
            state_bytes_per_step=self.p.state_bytes_per_step,
            expected_first_s=self.p.first_s,
            expected_step_s=self.p.step_s,
        )

    def run_once(self, mark: Mark) -> None:
        p = self.p
        with mark("first", units=1, position=0) as span:
            busy_wait(p.first_s)
        span.attrs["state_bytes"] = 0
        for k in range(1, p.steps + 1):
            with mark("step", units=1, position=k) as span:
                busy_wait(p.step_s + p.step_growth_s * (k - 1))
            span.attrs["state_bytes"] = p.state_bytes_per_step * k

    def teardown(self) -> None:
        pass
