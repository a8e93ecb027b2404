"""`toy`: a workload whose phases take known times, for tests and for checking timing accuracy.

Each iteration busy-waits `first_s` in a `first` phase, then `steps` times in a `step` phase
whose duration grows linearly with position (`step_s + step_growth_s * k` for the k-th step), and
declares a state that grows by `state_bytes_per_step` per step. Busy-waiting (not sleeping) keeps
the durations exact on a loaded machine and makes the process look busy to the CPU sampler.
"""

from __future__ import annotations

import time

from pydantic import Field

from profiler.plugin import Declaration, Mark, SetupContext, StateLayer
from profiler.plugin import Params as BaseParams


def busy_wait(seconds: float) -> None:
    end = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < end:
        pass


class ToyWorkload:
    """Busy-waits for known durations; phases `first` and `step` (one unit each)."""

    class Params(BaseParams):
        first_s: float = Field(0.005, ge=0, le=60, description="Duration of the `first` phase (delivers the first unit).")
        step_s: float = Field(0.001, ge=0, le=60, description="Duration of the first `step`.")
        step_growth_s: float = Field(0.0, ge=0, le=1, description="Added to each later step's duration, per step (a known per-position slope).")
        steps: int = Field(10, ge=0, le=1_000_000, description="`step` spans per iteration.")
        state_bytes_per_step: int = Field(0, ge=0, le=2**40, description="Declared state growth per step, stored as state_bytes.")

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
