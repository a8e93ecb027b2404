"""Environment: where and how the run was made (the run directory, host, versions, the machine,
packages, GPUs), and on a cluster which node ran each point with what it held, so a number can be traced to the
conditions it was measured under."""

from __future__ import annotations

from typing import Any

from profiler.runmodel import SCHEMA_VERSION

from ..context import ReportContext
from ..facts import fact_list
from ..table import Cell, Column, Fact, Row, Table
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
        Fact("executor", info.executor or "local (recorded before executors)"),
        Fact("profiler", f"{info.profiler_version or 'version unknown'}" + (f" (pid {info.profiler_pid})" if info.profiler_pid else "")),
        Fact("schema version", str(info.schema_version) + ("" if info.schema_version == SCHEMA_VERSION else f" (read as version {SCHEMA_VERSION})")),
    ]
    if command:
        run.append(Fact("command line", " ".join(map(str, command)) if isinstance(command, list) else str(command)))
    if info.error:
        run.append(Fact("run error", info.error.reason, lines=[info.error.traceback] if info.error.traceback else []))
    return {
        "placement": _placement(ctx),
        "run": run,
        "machine": fact_list(env, LABELS),
        "packages": [Fact(str(k), str(v) if v else "not installed") for k, v in packages.items()],
        "gpus": [fact_list(g) for g in gpus if isinstance(g, dict)],
    }


def _placement(ctx: ReportContext) -> dict[str, Any] | None:
    """On a cluster: the policy, and per point the node, the worker, the cores and GPUs it held and its software where
    it differs from the driver's; None for a local run (every point ran on the machine above, one at a time)."""
    placed = [(name, w.summary.placement) for name, w in ctx.run.workloads.items() if w.summary.placement is not None]
    if not any(p.executor != "local" for _, p in placed):
        return None
    driver = ctx.run.env.get("packages") or {}
    rows = []
    for name, p in placed:
        packages = p.env.get("packages") or {}
        differs = [f"{k} {v}" for k, v in packages.items() if driver.get(k) != v and k != "ml-workload-profiler"]
        gpus = ", ".join(g.get("name", "?") for g in p.env.get("gpus") or [] if isinstance(g, dict))
        rows.append(
            Row(
                [
                    Cell(name, cls="l"),
                    Cell(p.host or "—", sub=(p.node_id or "")[:12] or None, title=f"Ray node {p.node_id}, {p.node_ip}", cls="l"),
                    Cell(str(p.worker_pid) if p.worker_pid else "—"),
                    Cell(f"{p.cpus:g}" if p.cpus is not None else "—", sub=f"cores {', '.join(map(str, p.cores))}" if p.cores else "not pinned"),
                    Cell(f"{p.gpus:g}" if p.gpus else "0", sub=(f"ids {', '.join(p.gpu_ids)}" if p.gpu_ids else None), title=gpus or None),
                    Cell("; ".join(differs) or "as the driver's", cls="l"),
                ]
            )
        )
    columns = [
        Column("point", "l"),
        Column("node", "l", "host and Ray node id"),
        Column("worker pid", title="the process that spawned and sampled the point's child"),
        Column("CPU cores", title="Ray CPUs held, and the cores the child was pinned to"),
        Column("GPUs", title="Ray GPUs held, and the ids Ray assigned"),
        Column("software", "l", "package versions that differ from the driver's environment (env.json)"),
    ]
    policies = sorted({p.policy for _, p in placed if p.policy})
    nodes = (ctx.run.info.cluster or {}).get("nodes") or []
    return {"policies": policies, "nodes": len(nodes), "table": Table(columns, rows)}
