"""Workload-characterization profiler for ML inference.

Public API: the Workload contract (`Params`, `Declaration`, `Trait`, `Resources`, `StateLayer`,
`Mark`, `SetupContext`, `Workload`) for plugin authors, and `load_run` for anyone analysing a run
directory (its summaries are the typed objects of profiler.runmodel). Importing this package does
not import torch.
"""

from __future__ import annotations

from typing import Any

from .plugin import Declaration, Mark, Params, Resources, SetupContext, StateLayer, Trait, Workload

__all__ = ["Declaration", "Mark", "Params", "Resources", "SetupContext", "StateLayer", "Trait", "Workload", "load_run"]


def load_run(path: Any) -> Any:
    """Load a run directory: `profiler.rundir.Run` (typed summaries, spans and samples as DataFrames)."""
    from .rundir import load_run as _load_run

    return _load_run(path)
