"""Environment: where and how the run was made (the run directory, host, versions, the machine,
packages, GPUs), so a number can be traced to the conditions it was measured under."""

from __future__ import annotations

from typing import Any

from profiler.runmodel import SCHEMA_VERSION

from ..context import ReportContext
from ..facts import fact_list
from ..table import Fact
from . import register_section

LABELS = {"cpu_cores_logical": "logical CPU cores", "cpu_cores_physical": "physical CPU cores", "memory_total_bytes": "memory"}


@register_section(anchor="environment", title="Environment", order=130, template="environment.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    info = ctx.run.info
    env = dict(ctx.run.env)
    packages = env.pop("packages", None) or {}
    gpus = env.pop("gpus", None) or []
    command = env.pop("command_line", None)
    run = [
        Fact("run directory", str(ctx.run.path)),
        Fact("suite", info.suite),
        Fact("baseline", ctx.baseline or "none"),
        Fact("device", info.device),
        Fact("status", info.status.value),
        Fact("started (UTC)", info.started_utc or "—"),
        Fact("finished (UTC)", info.finished_utc or "—"),
        Fact("host", info.host or "—"),
        Fact("profiler", f"{info.profiler_version or 'version unknown'}" + (f" (pid {info.profiler_pid})" if info.profiler_pid else "")),
        Fact("schema version", str(info.schema_version) + ("" if info.schema_version == SCHEMA_VERSION else f" (read as version {SCHEMA_VERSION})")),
    ]
    if command:
        run.append(Fact("command line", " ".join(map(str, command)) if isinstance(command, list) else str(command)))
    if info.error:
        run.append(Fact("run error", info.error.reason, lines=[info.error.traceback] if info.error.traceback else []))
    return {
        "run": run,
        "machine": fact_list(env, LABELS),
        "packages": [Fact(str(k), str(v) if v else "not installed") for k, v in packages.items()],
        "gpus": [fact_list(g) for g in gpus if isinstance(g, dict)],
    }
