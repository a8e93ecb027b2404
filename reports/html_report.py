"""report.html: one self-contained page per run that leads with the answer (plotly.js inlined
once; it opens offline).

The page builder only composes: it loads the run once, builds the views, characteristics and
differences once (reports/context.py), then renders every registered section in order
(reports/sections: each computes its data, its template renders it) into templates/page.html.j2.
The first screen is the header, failures, the overview and the findings; the detail sections
follow. Templates autoescape every string from the run (names, params, facts, warnings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from profiler.measure.outputs import check_output_file, is_profiler_html, mark_html
from profiler.measure.store import atomic_write_bytes
from profiler.rundir import Run, load_run

from .characteristics import Value
from .context import ReportContext, build_context
from .differences import write_differences
from .render import render
from .sections import registered_sections
from .sections.header import running_note

__all__ = ["ReportWritten", "build_html", "render_page", "running_note", "write_report"]


@dataclass(frozen=True)
class ReportWritten:
    """What write_report did: the problems found while reading the run (also shown in the page) and any section or
    file that could not be built or written; and the differences it computed (the rows of differences.csv/json, kept
    even when those files could not be written)."""

    problems: list[str]
    differences: pd.DataFrame
    unwritten: list[str]
    """Why differences.csv/json could not be written (also among `problems`); empty when they were."""


@dataclass
class RenderedSection:
    anchor: str
    title: str | None
    html: Markup
    first_screen: bool


def write_report(run_dir: str | Path, out: str | Path) -> ReportWritten:
    """Build the report and write differences.csv/json into the run directory; return the
    problems found while reading the run (also shown in the report), any section that could
    not be built, and the differences. `out` is replaced only when the profiler wrote it (measure/outputs.py: its generator marker, or, as
    RUN_DIR/report.html, the default output in a run directory): anything else there (a directory, FIFO, device,
    symlink, a file of someone else's) is a UserError before anything is written, and checked again just before the
    page is. A string of the run that cannot be written as UTF-8 (a lone surrogate the readers missed) is written as
    its escape (`\\udc80`), never a traceback."""
    flag = "" if Path(out) == Path(run_dir) / "report.html" else "-o"
    check_output_file(out, is_profiler_html, flag)
    run = load_run(run_dir)
    ctx = build_context(run)
    unwritten = _write_differences(run, ctx)
    page, failed = render_page(ctx)
    check_output_file(out, is_profiler_html, flag)  # nothing else took its place while the report was built
    atomic_write_bytes(out, mark_html(page).encode("utf-8", "backslashreplace"))
    return ReportWritten(ctx.problems + unwritten + failed, ctx.diffs, unwritten)


def _write_differences(run: Run, ctx: ReportContext) -> list[str]:
    return write_differences_quietly(run, ctx.diffs)


def write_differences_quietly(run: Run, diffs: pd.DataFrame) -> list[str]:
    """differences.csv/json into the run directory; a line saying why when they cannot be (a read-only copy of a run,
    a directory or symlink in their place): the page, written elsewhere, has the same rows, and is not lost to them."""
    try:
        write_differences(run.path, diffs)
    except OSError as exc:
        return [f"{run.path / 'differences.csv'} and .json: not written ({exc.strerror or type(exc).__name__}); the report has the same rows"]
    return []


def build_html(run: Run, diffs: pd.DataFrame | None = None, chars: dict[str, dict[str, Value]] | None = None) -> str:
    """The page for a loaded run (differences and characteristics computed here unless given)."""
    return render_page(build_context(run, diffs, chars))[0]


def render_page(ctx: ReportContext) -> tuple[str, list[str]]:
    """(the page, a line per section that could not be built). A section that fails says so in
    its place; the others stand."""
    sections, failed = [], []
    for s in registered_sections():
        try:
            data = s.build(ctx)
            if data is None:
                continue
            title = data.pop("title", s.title)
            html = render(s.template, data=data)
        except Exception as exc:  # a report must not be lost to one section's bug: say which and why
            title, html = s.title, render("section_error.html.j2", error=f"{type(exc).__name__}: {exc}")
            failed.append(f"report section '{s.anchor}' could not be built ({type(exc).__name__}: {exc})")
        sections.append(RenderedSection(s.anchor, title, html, s.first_screen))
    page = render("page.html.j2", title=f"Profiler report — {ctx.run.info.suite}", sections=sections, plotly_js=Markup(get_plotlyjs()))
    return str(page), failed
