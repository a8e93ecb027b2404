"""The terminal: a rich progress bar per workload and a summary table at the end of a run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table


class ProgressListener:
    """Implements runner.Listener with one rich progress task per workload."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.fields[name]}"),
            TextColumn("{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "ProgressListener":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def workload_started(self, name: str) -> None:
        self.tasks[name] = self.progress.add_task("", total=None, name=_plain(name), phase="starting")

    def phase(self, name: str, phase: str, total: int | None) -> None:
        task = self.tasks[name]
        label = {"measure": "measure (min iters)", "warmup": "warmup"}.get(phase, phase)
        if total is not None:
            self.progress.update(task, phase=label, total=max(total, 1), completed=0)
        else:
            self.progress.update(task, phase=label)

    def iteration(self, name: str, done: int, warmup: bool) -> None:
        task = self.tasks[name]
        total = self.progress.tasks[task].total or done
        self.progress.update(task, completed=done, total=max(total, done))

    def workload_finished(self, name: str, summary: dict[str, Any]) -> None:
        status = summary["status"]
        label = "[green]ok" if status == "ok" else f"[red]{status}: {_plain(summary['error']['reason'])[:60]}" if summary.get("error") else f"[yellow]{status}"
        task = self.tasks[name]
        self.progress.update(task, phase=label)


def _plain(text: str) -> str:
    """User strings must not be read as rich markup."""
    return str(text).replace("[", "\\[")


def _ms(stats: dict[str, Any] | None) -> str:
    return f"{stats['median'] * 1e3:.2f}" if stats and "median" in stats else "—"


def summary_table(summaries: list[dict[str, Any]]) -> Table:
    table = Table(title="Summary (medians of measured iterations)")
    for col in ("workload", "status", "iters", "TTFT ms", "TPOT ms", "E2E ms", "output/s", "deadline misses"):
        table.add_column(col, justify="left" if col in ("workload", "status") else "right")
    for s in summaries:
        m = s.get("metrics", {})
        loop = s.get("loop") or {}
        rate = m.get("output_units_per_s")
        misses = m.get("deadline_miss_rate")
        unit = (s.get("facts") or {}).get("output_unit", "unit")
        table.add_row(
            _plain(s["name"]), s["status"], str(loop.get("measured_iters", "—")),
            _ms(m.get("ttft_s")), _ms(m.get("tpot_s")), _ms(m.get("e2e_s")),
            f"{rate['median']:.1f} {unit}/s" if rate else "—",
            f"{misses['mean']:.1%}" if misses else "—",
        )
    return table


def summary_notes(summaries: list[dict[str, Any]]) -> list[str]:
    """Failures and warnings, one line each, printed under the table."""
    notes = []
    for s in summaries:
        if s.get("error"):
            notes.append(f"[red]{_plain(s['name'])} failed in {s['error']['phase']}[/red]: {_plain(s['error']['reason'])}")
        notes.extend(f"[yellow]{_plain(s['name'])}[/yellow]: {_plain(w)}" for w in s.get("warnings", []))
    return notes


FINDINGS = ("higher", "lower", "differs", "present")


def differences_table(rows: list[dict[str, Any]], baseline: str) -> Table:
    """A short text version of the differences table: findings only (readings are in the report)."""
    table = Table(title=f"Differences from {_plain(baseline)} (findings; all rows and readings in report.html, differences.csv)")
    for col in ("workload", "characteristic", "ratio [95% CI]", "verdict"):
        table.add_column(col, no_wrap=col != "ratio [95% CI]")
    for r in rows:
        if r["verdict"] not in FINDINGS:
            continue
        ratio = r.get("ratio")
        text = "—"
        if isinstance(ratio, float) and ratio == ratio:
            lo, hi = r.get("ci_low"), r.get("ci_high")
            text = "≈0×" if abs(ratio) < 1e-6 else f"{ratio:.3g}×" + (f" [{lo:.3g}, {hi:.3g}]" if isinstance(lo, float) and lo == lo and lo != hi else "")
        if r["verdict"] in ("differs", "present"):
            text = f"{r['value'] if not isinstance(r['value'], float) else round(r['value'], 4)}"
        table.add_row(_plain(r["workload"]), r["characteristic"], text, r["verdict"])
    return table
