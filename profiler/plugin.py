"""The Workload protocol: the contract every workload plugin implements.

The docstrings here are the specification (pluggy style). The runner calls, in a child process:
`setup(ctx)` once (untimed), then `run_once(mark)` for warmup and measured iterations, then
`teardown()` always, also after an error. Nothing in the core knows which workload it runs: a
workload describes itself through the phases it marks and the facts it declares.

This module imports neither torch nor any model library, so `validate`, `list` and `schema` stay
light. Workload modules must follow the same rule at import time (import torch inside `setup`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Base for a workload's parameters: strict types (no "5" for 5), unknown keys are errors.

    Give every field a default (or make it required) and a `description`: `python -m profiler
    list` shows them as the parameter's help text.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Span(Protocol):
    """What `mark(...)` yields: set attributes after the timed body, e.g. `span.attrs[...] = x`."""

    attrs: dict[str, Any]


class Mark(Protocol):
    def __call__(self, phase: str, units: float = 0, **attrs: Any) -> Any:
        """Return a context manager that records one span of `phase`.

        - `units`: output units the span makes available to the user (tokens, images, actions);
          a span with units > 0 is a *delivery*. Per-request latency metrics (time to first
          unit, inter-unit latency, time per output unit) are computed from deliveries.
        - `attrs`: numbers or strings stored with the span (`position=`, `state_bytes=`...).
          Measure state outside the timed body: `with mark(...) as s: ...` then
          `s.attrs["state_bytes"] = n`; attributes set before the iteration ends are kept.

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
        shown in the report beside the measurements.
        """

    def warn(self, message: str) -> None:
        """Record a warning a reader must see with the numbers (e.g. a slow fallback kernel ran).

        Shown at the top of the report and in the terminal summary.
        """


@runtime_checkable
class Workload(Protocol):
    """A workload plugin: one class with a `Params` model and three methods.

    Register it under the entry-point group `profiler.workloads`, or name it in a suite file as
    `"package.module:Class"`. The class is constructed as `Workload(params)` in the child.
    """

    Params: ClassVar[type[Params]]
    """The pydantic model that validates this workload's `params:` block."""

    def setup(self, ctx: SetupContext) -> None:
        """Untimed: build or load the model, make inputs, compile, declare facts via `ctx.declare`."""

    def run_once(self, mark: Mark) -> None:
        """One iteration = one unit of user-visible work (a generation, an image, an episode).

        Mark every phase that matters with `with mark(phase, units=...)`. Time outside spans is
        still counted in the iteration's end-to-end latency.
        """

    def teardown(self) -> None:
        """Release what setup took. Always called, also after an error in setup or run_once."""


REQUIRED_METHODS = ("setup", "run_once", "teardown")
