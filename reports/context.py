"""Everything a report section reads, computed once per report: the run, a view per workload,
their characteristics and the differences against the baseline, and the problems met reading
the run's files.

Every file a section may need (measured spans, sampler rows, request records, engine samples,
calibration.json, sweeps.json) is read here, before any section is built, so the problems listed
on the page (and printed by `report`) are complete wherever on the page they appear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from markupsafe import Markup

from profiler.rundir import Run

from .characteristics import Value
from .differences import differences, run_characteristics
from .render import figure_html
from .view import WorkloadView, workload_views


@dataclass
class ReportContext:
    run: Run
    views: dict[str, WorkloadView]
    chars: dict[str, dict[str, Value]]
    """Characteristics of every workload that ran to the end."""
    diffs: pd.DataFrame
    """reports/differences.py: one row per (workload, characteristic) against the baseline."""
    problems: list[str]
    """Files of the run that could not be read (run.all_problems(), after every table was read)."""
    anchors: dict[str, str] = field(default_factory=dict)
    """Workload name -> the id of its details on the page (names are user strings: ids are not)."""
    _figures: int = 0

    @property
    def baseline(self) -> str | None:
        return self.run.baseline

    def anchor(self, name: str) -> str:
        return f"#{self.anchors[name]}" if name in self.anchors else "#workloads"

    @property
    def colours(self) -> dict[str, str]:
        """One colour per workload, in run order, shared by every figure."""
        from .figures import colour_map

        return colour_map(self.views)

    def figure(self, fig: Any, prefix: str = "fig") -> Markup | None:
        """A plotly figure as an HTML fragment with a stable id (None when there is no figure)."""
        if fig is None:
            return None
        self._figures += 1
        return figure_html(fig, f"{prefix}-{self._figures}")


def build_context(run: Run, diffs: pd.DataFrame | None = None, chars: dict[str, dict[str, Value]] | None = None, seed: int | None = None) -> ReportContext:
    """Views, characteristics and differences of `run`, each computed once."""
    views = workload_views(run)
    _ = run.calibration, run.sweeps
    for view in views.values():  # read every table now: the problems list is then complete
        _ = view.measured, view.run.samples, view.run.requests, view.run.engine
    chars = run_characteristics(run, views) if chars is None else chars
    if diffs is None:
        diffs = differences(run, seed=run_seed(run) if seed is None else seed, chars=chars, views=views)
    anchors = {name: f"w-{i}-{_slug(name)}" for i, name in enumerate(run.workloads)}
    return ReportContext(run, views, chars, diffs, run.all_problems(), anchors)


def run_seed(run: Run) -> int:
    """The suite's seed (the bootstrap intervals of the differences are seeded with it)."""
    return run.config.seed


def _slug(name: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in name)[:40].strip("-") or "w"
