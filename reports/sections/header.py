"""The page's first lines: the run in one line, the slot for measurement conditions, then one red
line per failure (a workload that failed or never finished, a run that did not complete, a
profiler that may have died)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from profiler.rundir import profiler_process
from profiler.runmodel import CONTENTION_RULE, ChildError, ErrorInfo, RunInfo, RunStatus, Status

from ..context import ReportContext
from . import register_section


@register_section(anchor="top", title=None, order=0, template="header.html.j2", first_screen=True)
def build(ctx: ReportContext) -> dict[str, Any]:
    info, run = ctx.run.info, ctx.run
    failed = sum(1 for w in run.workloads.values() if w.status != Status.OK.value)
    warnings = sum(len(w.summary.warnings) for w in run.workloads.values())
    problems = len(ctx.problems) + sum(len(w.summary.problems) for w in run.workloads.values())
    return {
        "suite": info.suite,
        "baseline": ctx.baseline,
        "device": info.device,
        "status": "cut off" if info.status == RunStatus.RUNNING and profiler_process(info) == "gone" else info.status.value,
        "status_ok": info.status == RunStatus.COMPLETE,
        "date": when(info.started_utc),
        "workloads": len(run.workloads),
        "not_ok": failed,
        "warnings": warnings,
        "problems": problems,
        "run_alert": run_alert(info),
        "failures": failures(ctx),
        "conditions": conditions(ctx),
        "repeats": max((len(w.summary.repeats or []) for w in run.workloads.values()), default=1) or 1,
    }


def conditions(ctx: ReportContext) -> dict[str, Any]:
    """One line on the measurement conditions: which workloads ran contended (their timing verdicts
    are inconclusive), which quiet, which unmeasured (runmodel.Contention; the rule in its docstring), and each local
    server sampled with a workload (runmodel.LocalServer: its own, and the suite's other workloads' servers alive beside it)."""
    contended, quiet, unknown = [], [], []
    servers = [
        {"name": name, "summary": server.summary}
        for name, w in ctx.run.workloads.items()
        for server in (w.summary.local_server, w.summary.other_servers)
        if server is not None
    ]
    for name, w in ctx.run.workloads.items():
        c = w.summary.contention
        if w.status != Status.OK.value:
            continue
        if c is None or c.contended is None:
            unknown.append(name)
        elif c.contended:
            contended.append({"name": name, "why": c.summary.removeprefix("contended: ")})
        else:
            quiet.append(name)
    return {"contended": contended, "quiet": quiet, "unknown": unknown, "servers": servers, "rule": CONTENTION_RULE}


def when(utc: str | None) -> str:
    """'2026-11-29 08:42 UTC' from an ISO timestamp (as stored when it does not parse)."""
    if not utc:
        return "date unknown"
    try:
        return datetime.fromisoformat(utc.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return utc


def run_alert(info: RunInfo) -> dict[str, Any] | None:
    """Why the run is not complete: still running (or its profiler died), or how it ended."""
    if info.status == RunStatus.RUNNING:
        return {"note": running_note(info)}
    if info.status != RunStatus.COMPLETE:
        return {"status": info.status.value, "why": info.error.reason if info.error else None}
    return None


def running_note(info: RunInfo) -> str:
    """What a run.json still saying `running` means: in progress, or a profiler that died (cut off)."""
    state = profiler_process(info)
    if state == "unknown":
        host = info.host
        return f"The run says running: it is in progress{f' on {host}' if host else ''}, or its profiler process died without closing it."
    if state == "alive":
        return f"The run is in progress (profiler pid {info.profiler_pid}): this report shows what was measured so far."
    return (
        f"The run was cut off: its profiler process (pid {info.profiler_pid}) is gone without closing it (killed, e.g. by SIGKILL "
        "or the out-of-memory killer, or the machine stopped). What was measured before is shown."
    )


def failures(ctx: ReportContext) -> list[dict[str, Any]]:
    """One line per workload that is not ok: where it failed and why, or what state it was left in."""
    lines = []
    for name, w in ctx.run.workloads.items():
        if w.status == Status.OK.value:
            continue
        error = w.summary.error or error_from_file(w.error)
        lines.append(
            {
                "name": name,
                "href": ctx.anchor(name),
                "status": w.status,
                "phase": error.phase if error else None,
                "reason": error.reason if error else None,
                "traceback": f"{w.path.name}/error.json" if w.error else None,
            }
        )
    return lines


def error_from_file(error: ChildError | None) -> ErrorInfo | None:
    """error.json as the summary's ErrorInfo."""
    return error.info() if error is not None else None
