"""The terminal: a rich progress bar per workload, and at the end of a run a summary table, one
line per warning, and the findings against the baseline.

Tables fit an 80-column terminal without cutting a header or a value: numbers never wrap, long
names fold onto a second line, and every number carries its unit (profiler/format.py).

Text from a suite or a plugin (names, phases, units, reasons, warnings) reaches the terminal only through `plain`:
control characters escaped (errors.one_line: an escape sequence cannot colour the terminal, a newline cannot forge a
line) and rich markup escaped (`[bold]` in a name prints as written). The progress bar reads no markup at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .errors import one_line
from .format import duration, format_value, percent, rate, ratio

if TYPE_CHECKING:
    import pandas as pd
from .runmodel import Status, Verdict, WorkloadSummary


class ProgressListener:
    """Implements the runner's Listener with one rich progress task per workload."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.fields[name]}", style="bold", markup=False),
            PhaseColumn(),
            BarColumn(bar_width=12),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressListener:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def workload_started(self, name: str) -> None:
        self.tasks[name] = self.progress.add_task("", total=None, name=one_line(name), phase="starting", style="")

    def phase(self, name: str, phase: str, total: int | None) -> None:
        task = self.tasks[name]
        label = {"measure": "measure (min iters)", "warmup": "warmup"}.get(phase, one_line(phase))
        if total is not None:
            self.progress.update(task, phase=label, total=max(total, 1), completed=0)
        else:
            self.progress.update(task, phase=label)

    def iteration(self, name: str, done: int, warmup: bool) -> None:
        task = self.tasks[name]
        total = self.progress.tasks[task].total or done
        self.progress.update(task, completed=done, total=max(total, done))

    def workload_finished(self, name: str, summary: WorkloadSummary) -> None:
        status = summary.status.value
        if status == "ok":
            label, style = "ok", "green"
        elif summary.error:
            label, style = f"{status} in {one_line(summary.error.phase)}", "red"  # the reason follows under the summary table
        else:
            label, style = status, "yellow"
        self.progress.update(self.tasks[name], phase=label, style=style)
        self.progress.stop_task(self.tasks[name])  # its elapsed time stops with it (a failed one never reaches its total)


class PhaseColumn(ProgressColumn):
    """A task's phase as plain text (never read as markup) in the task's `style` field."""

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("phase", "")), style=task.fields.get("style") or "")


def plain(text: object) -> str:
    """Text from a suite or a plugin, safe to print through rich: control characters escaped (one line, no terminal
    escape sequence, no bidi override) and rich markup escaped (printed as written)."""
    return escape(one_line(str(text)))


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)


def summary_table(summaries: list[WorkloadSummary]) -> Table:
    """Medians of measured iterations per workload: TTFT, TPOT, E2E, throughput, deadline misses."""
    table = _table("Summary (medians of measured iterations)")
    table.add_column("workload", overflow="fold", min_width=8)
    for header in ("status", "TTFT", "TPOT", "E2E", "output", "misses"):
        table.add_column(header, justify="left" if header == "status" else "right", no_wrap=True)
    for s in summaries:
        m = s.metrics
        served = s.serving
        iters = f"{measured_iterations(s)} iters" if served is None else f"{served.measured_status_counts.get('finished', measured_iterations(s))} requests"
        misses = s.deadlines.miss_rate if s.deadlines else None
        table.add_row(
            plain(s.name),
            f"{s.status.value}\n{iters}",
            duration(m.ttft_s.median) if m.ttft_s else "—",
            duration(m.tpot_s.median) if m.tpot_s else "—",
            duration(m.e2e_s.median) if m.e2e_s else "—",
            plain(rate(m.output_units_per_s.median, s.output_unit)) if m.output_units_per_s else "—",
            percent(misses.mean) if misses and misses.count else "—",
        )
    return table


def measured_iterations(s: WorkloadSummary) -> int:
    """Measured iterations that completed: the loop's count, or for a workload that failed or was
    interrupted mid-loop (no loop record), the iterations its statistics are over."""
    if s.loop is not None:
        return s.loop.measured_iters
    return s.metrics.e2e_s.count if s.metrics.e2e_s else 0


def stream_lines(s: WorkloadSummary) -> list[str]:
    """One line per condition of a workload's own streams: its deadline misses and drops, and its requests' time to first
    token and to first output (first audio), medians."""
    if s.streams is None:
        return []
    out = []
    for cond, c in s.streams.conditions.items():
        parts = []
        d = c.deadlines
        if d is not None and d.miss_rate is not None and d.miss_rate.count:
            drops = f", dropped {percent(d.drop_rate.mean)}" if d.drop_rate and d.drop_rate.count else ""
            parts.append(f"deadlines missed {percent(d.miss_rate.mean)}{drops}")
        m = c.metrics
        if m is not None and m.ttft_s is not None and m.ttft_s.count:
            first = f", first output {duration(m.first_output_s.median)}" if m.first_output_s and m.first_output_s.count else ""
            parts.append(f"{m.ttft_s.count} requests: TTFT {duration(m.ttft_s.median)}{first}")
        if parts:
            out.append(f"{cond}: " + "; ".join(parts) + " (medians; see Streams in the report)")
    return out


def summary_notes(summaries: list[WorkloadSummary]) -> list[str]:
    """Failures and warnings, one line each, printed under the table."""
    notes = []
    for s in summaries:
        if s.error:
            how = "was interrupted" if s.status == Status.INTERRUPTED else "failed"
            notes.append(f"[red]{plain(s.name)} {how} in {plain(s.error.phase)}[/red]: {plain(s.error.reason)}")
        if s.contention is not None and s.contention.contended:
            notes.append(f"[yellow]{plain(s.name)}[/yellow]: {plain(s.contention.summary)} (its timing verdicts are inconclusive)")
        notes.extend(f"{plain(s.name)}: {plain(server.summary)}" for server in (s.local_server, s.other_servers) if server is not None)
        notes.extend(f"{plain(s.name)}: {plain(line)}" for line in stream_lines(s))
        notes.extend(f"[yellow]{plain(s.name)}[/yellow]: {plain(w)}" for w in s.warnings)
        notes.extend(f"[yellow]{plain(s.name)}[/yellow]: {plain(p)}" for p in s.problems)
    return notes


def differences_table(diffs: pd.DataFrame, baseline: str) -> Table | str:
    """The findings against the baseline (readings and the other rows are in report.html); a
    line saying there are none when no row is a finding. `diffs`: the rows of differences.csv
    (reports/differences.py: differences), as the report computed them."""
    rows = diffs.astype(object).where(diffs.notna(), None).to_dict(orient="records")
    others = sorted({r["baseline"] for r in rows if r.get("baseline") and r["baseline"] != baseline})
    if others:
        baseline = f"{baseline}, and {', '.join(others)} for request pattern and objective"
    inconclusive = sum(1 for r in rows if r["verdict"] == Verdict.INCONCLUSIVE.value)
    note = f"; {inconclusive} inconclusive (contention, too few samples or a weak fit: the reasons are in report.html)" if inconclusive else ""
    if not any(Verdict(r["verdict"]).is_finding for r in rows):
        return f"Differences from {plain(baseline)}: no findings{note} (every row and reading in report.html and differences.csv)"
    table = _table(f"Differences from {plain(baseline)} (findings{note}; every row and reading in report.html and differences.csv)")
    table.add_column("workload", overflow="fold", min_width=8)
    table.add_column("characteristic", overflow="fold")
    table.add_column("value or ratio [95% CI]", justify="right", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    for r in rows:
        verdict = Verdict(r["verdict"])
        if not verdict.is_finding:
            continue
        if verdict in (Verdict.DIFFERS, Verdict.PRESENT):
            text = format_value(r["value"], r["unit"] or "")
        else:
            text = ratio(r.get("ratio"), r.get("ci_low"), r.get("ci_high"))
        table.add_row(plain(r["workload"]), plain(r.get("short") or r["characteristic"]), plain(text), plain(r["verdict"]))
    return table
