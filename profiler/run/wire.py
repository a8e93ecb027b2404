"""The messages a child sends its supervisor through the queue: one typed class per kind.

Why: the child and its parent are two processes of one run, and the queue between them carried dicts read through
string keys (`msg["phase"]`, `msg.get("info")`): a renamed key was a silent None. Each message is now a frozen
dataclass (pickled across the queue as one), and the supervisor dispatches on its class; anything else arriving is
counted as a problem, never guessed at (run/supervisor.py: ChildSupervisor._handle). `t` is time.monotonic() in the
child when the message was made (the sampler's clock).

`ChildDone.info` is child.json as the child writes it: the run validates it once, as runmodel.ChildRecord
(run/finish.py: child_record), and reads only that. Still plain dicts (the next step of typing this wire):
`ChildDone.error` (error.json) and the load driver's per-request records (requests.parquet's rows); its facts are
runmodel.LoadFacts (`ChildRecord.serve`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..runmodel import ChildError, ChildRecord


def _now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class StageEntered:
    """The child entered `stage` (import, setup, warmup, measure, count_work, trace_ops, teardown)."""

    stage: str
    total: int | None = None
    """The iterations the stage will run, where known (warmup, the measured loop's min_iters)."""
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class IterationDone:
    """`done` iterations (or, under a load, requests) of the current stage have ended."""

    done: int
    warmup: bool
    total: int | None = None
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class GpuChosen:
    """The child runs on the GPU with this NVML UUID: the sampler starts reading it."""

    uuid: str
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class ServerDeclared:
    """The workload sends its work to the local server `pid` (declared at setup): the sampler reads its process tree as
    the workload's (measure/sampler.py: TreeReader)."""

    pid: int
    found_by: str = ""
    """How the workload named it (plugin.SetupContext.declare_server)."""
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class SpansEnded:
    """Spans have ended since the last such message; the newest ended at `last_end_ns` (time.monotonic_ns)."""

    last_end_ns: int
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class ChildDone:
    """The child's last message: whether it succeeded, its error (error.json's content) and info (child.json's)."""

    ok: bool
    error: ChildError | None
    info: ChildRecord
    t: float = field(default_factory=_now)


Message = StageEntered | IterationDone | GpuChosen | ServerDeclared | SpansEnded | ChildDone
MESSAGES = (StageEntered, IterationDone, GpuChosen, ServerDeclared, SpansEnded, ChildDone)
