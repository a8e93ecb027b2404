"""Workload-characterization profiler for ML inference.

Public API: the Workload protocol (`Params`, `Mark`, `SetupContext`, `Workload`) for plugin
authors, and `load_run` for anyone analysing a run directory. Importing this package does not
import torch.
"""

from __future__ import annotations

from typing import Any

from .plugin import Mark, Params, SetupContext, Workload

__all__ = ["Mark", "Params", "SetupContext", "Workload", "load_run"]


def load_run(path: Any) -> Any:
    """Load a run directory as pandas DataFrames (see profiler.rundir.Run)."""
    from .rundir import load_run as _load_run

    return _load_run(path)
