"""Workload-characterization profiler for ML inference.

Public API: the Workload contract (`Params`, `OneOf`, `Declaration`, `Trait`, `Resources`, `StateLayer`,
`Mark`, `SetupContext`, `Workload`, `QoE`) for plugin authors, `arrival_schedule` for a workload
that draws its own requests by the load layer's arrival processes, and `load_run` for anyone analysing a run
directory (its summaries are the typed objects of profiler.runmodel). Importing this package does
not import torch.
"""

from __future__ import annotations

import os as _os
import sys as _sys


def _set_aside_working_directory() -> None:
    """Remove the working directory from _sys.path: the entry `-m` put first ('' or its path), and one an empty
    PYTHONPATH component added (`PYTHONPATH=$PYTHONPATH:/x` with PYTHONPATH unset). A PYTHONPATH that names it
    ('.' or its path) keeps it where it put it. The `profiler` console script's own entry (its bin folder) stays.

    In a source checkout that is not installed (the working directory holds this package) it is appended instead,
    so the checkout's `reports` and `workloads` stay importable without hiding anything installed."""
    try:
        cwd = _os.getcwd()
    except OSError:  # the working directory was removed: nothing can be imported from it
        return
    named = not _sys.flags.ignore_environment and any(p and _os.path.abspath(p) == cwd for p in _os.environ.get("PYTHONPATH", "").split(_os.pathsep))
    if _sys.path and _sys.path[0] in ("", cwd) and not getattr(_sys.flags, "safe_path", False):
        del _sys.path[0]  # `-m`'s entry (python -P and PYTHONSAFEPATH add none)
    if not named:
        _sys.path[:] = [p for p in _sys.path if p != "" and _os.path.abspath(p) != cwd]
    checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    if _os.path.realpath(checkout) == _os.path.realpath(cwd) and cwd not in _sys.path:
        _sys.path.append(cwd)


def _run_as_command() -> bool:
    """Whether this process is the profiler itself: `python -m profiler` (argv[0] is "-m" while Python locates
    profiler.__main__; nothing else is imported yet) or the `profiler` console script (its file is __main__ and it
    imports profiler.cli first), not a program that imports the profiler as a library."""
    if _sys.argv[:1] == ["-m"]:
        return True
    script = getattr(_sys.modules.get("__main__"), "__file__", None)
    return bool(script) and script == _sys.argv[0] and _os.path.basename(script).partition(".")[0].removesuffix("-script") == "profiler"


if _run_as_command():
    _set_aside_working_directory()

from typing import Any  # noqa: E402

from .plugin import Declaration, Mark, OneOf, Params, QoE, Resources, SetupContext, StateLayer, Trait, Workload  # noqa: E402

__all__ = [
    "Declaration",
    "Mark",
    "OneOf",
    "Params",
    "QoE",
    "Resources",
    "SetupContext",
    "StateLayer",
    "Trait",
    "Workload",
    "arrival_schedule",
    "check_load",
    "load_run",
]


def check_load(load: dict[str, Any]) -> None:
    """Validate a `load:` mapping as `arrival_schedule` takes it, without drawing it (a workload's Params validator).

    Raises ValueError with one line, "key.path: reason", for the first problem (profiler/loadconfig.py: LoadConfig).
    """
    from pydantic import ValidationError

    from .loadconfig import LoadConfig

    try:
        LoadConfig.model_validate(load)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if "[" not in str(part))  # union-branch tags left out
        raise ValueError(f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}") from None


def arrival_schedule(load: dict[str, Any]) -> list[Any]:
    """The requests a `load:` block draws (profiler/loadconfig.py: LoadConfig; profiler/load/arrivals.py: `schedule`), in send order.

    For a workload that generates its own requests inside an iteration (voice queries during a
    camera stream) by the same arrival processes and size distributions as a served load. `load`:
    a generated pattern (poisson, gamma, constant) with `rate` (per second), `duration_s` or
    `requests`, `sizes` and `seed`. Returns the requests (each with `send_s` in seconds from the
    start, `input_tokens`, `output_tokens`); [] when no arrival falls within duration_s.
    Raises pydantic.ValidationError for an invalid block, ValueError for pattern trace or closed.
    """
    from .load.arrivals import schedule
    from .loadconfig import LoadConfig

    config = LoadConfig.model_validate(load)
    if config.pattern in ("trace", "closed"):
        raise ValueError(f"arrival_schedule draws generated arrivals only (poisson, gamma, constant), not {config.pattern}")
    return schedule(config, allow_empty=True)


def load_run(path: Any) -> Any:
    """Load a run directory: `profiler.rundir.Run` (typed summaries, spans and samples as DataFrames)."""
    from .rundir import load_run as _load_run

    return _load_run(path)
