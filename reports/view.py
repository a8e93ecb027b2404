"""What the report reads about one workload, computed once: the typed summary, the declaration,
and the samples the characteristics, sections and figures share (request and step latencies,
the step's positioned spans, per-request metrics, the per-position table).

Every reader goes through the declaration: the request, step and delivery phases are the
workload's own words, never a phase name known here.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from profiler.characterize.analysis import NS, position_table, request_latencies, request_metrics, sequences_of
from profiler.plugin import Declaration
from profiler.rundir import Run, WorkloadRun
from profiler.runmodel import OperatorMix, PhaseMix, PhaseWork, SweepGroup, Work, WorkloadSummary


class WorkloadView:
    """One workload of a run, as the report sees it."""

    def __init__(self, run: WorkloadRun, sweeps: dict[str, SweepGroup]) -> None:
        self.run = run
        self.name = run.name
        self.sweeps = sweeps
        self._latencies: dict[str | None, np.ndarray] = {}

    @property
    def summary(self) -> WorkloadSummary:
        return self.run.summary

    @property
    def declaration(self) -> Declaration:
        return self.run.summary.declaration

    @property
    def ok(self) -> bool:
        return self.run.status == "ok"

    @property
    def unit(self) -> str:
        return self.declaration.output_unit

    @property
    def main_phase(self) -> str:
        """Where work, bound class and operator mix are read: the declared step, else the request."""
        return self.declaration.main_phase()

    @property
    def measured(self) -> pd.DataFrame:
        return self.run.measured

    @cached_property
    def request_latencies_s(self) -> np.ndarray:
        return request_latencies(self.measured, self.declaration.request)

    @cached_property
    def step_latencies_s(self) -> np.ndarray:
        return self.phase_latencies_s(self.declaration.step)

    def phase_latencies_s(self, phase: str | None) -> np.ndarray:
        """Latency (seconds) of every measured span of `phase`, computed once per phase."""
        if phase not in self._latencies:
            self._latencies[phase] = self._phase_latencies(phase)
        return self._latencies[phase]

    def _phase_latencies(self, phase: str | None) -> np.ndarray:
        m = self.measured
        if phase is None or m.empty:
            return np.array([], dtype=float)
        g = m.loc[m["phase"] == phase, ["start_ns", "end_ns"]]
        return ((g["end_ns"] - g["start_ns"]) / NS).to_numpy(dtype=float)

    @cached_property
    def positioned(self) -> pd.DataFrame:
        """The step's measured spans that carry `position`: position, latency_s, and where spans
        carry it state_bytes_per_sequence (state_bytes / sequences: the comparison is per request)."""
        m, step = self.measured, self.declaration.step
        if step is None or m.empty or "position" not in m:
            return pd.DataFrame()
        rows = ((m["phase"] == step) & m["position"].notna()).to_numpy(dtype=bool)
        latency = m["end_ns"].to_numpy()[rows] - m["start_ns"].to_numpy()[rows]
        out = {"position": m["position"].to_numpy(dtype=float)[rows], "latency_s": latency / NS}
        del latency  # each column is taken as an array of the step's rows: the measured frame is never copied whole
        if "state_bytes" in m:
            per_sequence = m["state_bytes"].to_numpy(dtype=float)[rows]
            per_sequence /= sequences_of(m, rows).to_numpy(dtype=float)
            out["state_bytes_per_sequence"] = per_sequence
        return pd.DataFrame(out, index=m.index[rows], copy=False)

    @cached_property
    def request_metrics(self) -> dict[str, np.ndarray]:
        """Per-iteration samples (e2e, ttft, tpot, itl, units/s) from the declared deliveries."""
        if self.measured.empty:
            return {}
        d = self.declaration
        return request_metrics(self.measured, d.deliveries, d.request, keyed_only=bool(d.streams))

    @cached_property
    def step_position_table(self) -> pd.DataFrame:
        """Median latency and state per position of the step phase (for the figures)."""
        if self.declaration.step is None or self.measured.empty:
            return pd.DataFrame()
        return position_table(self.measured, self.declaration.step)

    @cached_property
    def deadline_spans(self) -> pd.DataFrame:
        """The measured spans that carry a deadline (control-loop ticks), for the lateness figure."""
        m = self.measured
        if m.empty or "deadline_ns" not in m:
            return pd.DataFrame()
        return m.loc[m["deadline_ns"].notna()]

    @property
    def work(self) -> Work | None:
        return self.summary.work

    @property
    def main_work(self) -> PhaseWork | None:
        return self.work.phases.get(self.main_phase) if self.work else None

    @property
    def operator_mix(self) -> OperatorMix | None:
        return self.summary.operator_mix

    @property
    def main_mix(self) -> PhaseMix | None:
        return self.operator_mix.phases.get(self.main_phase) if self.operator_mix else None


def workload_views(run: Run) -> dict[str, WorkloadView]:
    """A view of every workload of a run, in run order."""
    sweeps = run.sweeps
    return {name: WorkloadView(w, sweeps) for name, w in run.workloads.items()}
