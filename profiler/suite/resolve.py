"""Turn a validated suite into runnable workloads: plugin class plus validated Params, per entry.

This is the second validation step (after `config.py`): each entry's `params:` block goes
through its own plugin's Params model, and errors still point at the YAML line.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import UserError
from ..loadconfig import LoadConfig, Objective
from ..plugin import Declaration, declaration_of
from .config import (
    SuiteConfig,
    WorkloadEntry,
    load_suite,
    validation_error_line,
    where_from,
)
from .feasibility import check_feasible
from .registry import PluginRef, add_plugin_paths, resolve_workload
from .yaml_source import YamlSource


@dataclass(frozen=True)
class ResolvedWorkload:
    index: int
    entry: WorkloadEntry
    plugin: PluginRef
    params: BaseModel
    declaration: Declaration
    sweep_group: str | None = None
    sweep_point: dict[str, Any] | None = None

    @property
    def directory(self) -> str:
        """Where its files go: sweep points are stored together under their group."""
        from ..measure.store import slugify

        if self.sweep_group is None:
            return slugify(self.entry.name)
        point = "_".join(f"{k}-{v}" for k, v in (self.sweep_point or {}).items())
        return f"{slugify(self.sweep_group)}/{slugify(point)}"


@dataclass(frozen=True)
class ResolvedSuite:
    suite: SuiteConfig
    source: YamlSource
    workloads: list[ResolvedWorkload]
    plugin_paths: list[str]

    def resolved_dict(self) -> dict[str, Any]:
        """The suite with every default filled in and sweeps expanded: config.resolved.yaml."""
        data = self.suite.model_dump(mode="json")
        data["workloads"] = [
            {
                "name": w.entry.name,
                "type": w.entry.type,
                "params": w.params.model_dump(mode="json"),
                **(
                    {"load": w.entry.load.model_dump(mode="json"), "objective": (w.entry.objective or Objective()).model_dump(mode="json")}
                    if w.entry.load
                    else {}
                ),
                **({"sweep_group": w.sweep_group, "sweep_point": w.sweep_point} if w.sweep_group else {}),
            }
            for w in self.workloads
        ]
        return data


def _load_dict(entry: WorkloadEntry) -> dict[str, Any]:
    assert entry.load is not None
    return {"load": entry.load.model_dump(mode="json"), "objective": (entry.objective or Objective()).model_dump(mode="json")}


def plugin_paths_for(suite_path: str, suite: SuiteConfig) -> list[str]:
    """The folders this suite's 'module:Class' plugins are found in: the suite file's folder, then the working
    directory; none when every entry names an installed (entry-point) workload. Only the modules the suite names, and
    the modules their code imports, are found there, after everything installed (registry.add_plugin_paths)."""
    if not any(":" in entry.type for entry in suite.workloads):
        return []
    folders = [os.path.dirname(os.path.abspath(suite_path)), os.getcwd()]
    return list(dict.fromkeys(folders))


def resolve_suite(path: str, assignments: list[str] | None = None) -> ResolvedSuite:
    suite, source, overrides = load_suite(path, assignments)
    paths = plugin_paths_for(path, suite)
    add_plugin_paths(paths, [entry.type for entry in suite.workloads])
    resolved = []
    for i, entry in enumerate(suite.workloads):
        where = where_from(source, ("workloads", i, "type"), overrides)
        try:
            plugin = resolve_workload(entry.type)
        except UserError as exc:
            raise UserError(f"{where}: workloads[{i}].type: {exc}") from None
        if getattr(plugin.cls, "requires_load", False) and entry.load is None:
            raise UserError(f"{where}: workloads[{i}]: workload type '{entry.type}' serves requests: give it a load: block (see configs/serving.yaml)")
        entry = _with_trace_path(entry, path, source, i, overrides)
        for point in sweep_points(entry):
            load_point = {k.removeprefix("load."): v for k, v in point.items() if k.startswith("load.")}
            param_point = {k: v for k, v in point.items() if not k.startswith("load.")}
            try:
                params = plugin.cls.Params.model_validate({**entry.params, **param_point})
            except ValidationError as exc:
                key = exc.errors()[0]["loc"][:1]
                prefix = ("workloads", i, "sweep") if key and key[0] in point else ("workloads", i, "params")
                raise UserError(validation_error_line(exc, plugin.cls.Params, source, prefix, overrides)) from None
            declaration = _declaration(plugin, params, where)
            if point:
                label = ",".join(f"{k}={v}" for k, v in point.items())
                update: dict[str, Any] = {"name": f"{entry.name}[{label}]", "sweep": None}
                if load_point:
                    assert entry.load is not None
                    try:
                        update["load"] = LoadConfig.model_validate({**entry.load.model_dump(), **load_point})
                    except ValidationError as exc:
                        raise UserError(f"{where_from(source, ('workloads', i, 'sweep'), overrides)}: workloads[{i}].sweep: {label}: {_first(exc)}") from None
                named = entry.model_copy(update=update)
                resolved.append(ResolvedWorkload(i, named, plugin, params, declaration, entry.name, point))
            else:
                resolved.append(ResolvedWorkload(i, entry, plugin, params, declaration))
    _check_crossover_steps(suite, resolved, source, overrides)
    check_feasible(suite, resolved, source, overrides)
    return ResolvedSuite(suite, source, resolved, paths)


def _check_crossover_steps(suite: SuiteConfig, resolved: list[ResolvedWorkload], source: YamlSource, overrides: Any) -> None:
    """The crossover compares the declared step's latency: both sides must declare one (config.py checked the rest)."""
    if suite.crossover is None:
        return
    for key in ("a", "b"):
        name = getattr(suite.crossover, key)
        w = next(w for w in resolved if (w.sweep_group or w.entry.name) == name)
        if w.declaration.step is None:
            where = where_from(source, ("crossover", key), overrides)
            raise UserError(f"{where}: crossover.{key}: workload '{name}' ({w.entry.type}) declares no step phase; the crossover compares per-step latency")


def _first(exc: ValidationError) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(x) for x in e["loc"])
    return f"{loc + ': ' if loc else ''}{e['msg'].removeprefix('Value error, ')}"


def _with_trace_path(entry: WorkloadEntry, suite_path: str, source: YamlSource, i: int, overrides: Any) -> WorkloadEntry:
    """A load's trace path made absolute (relative paths are from the suite file's folder) and read once,
    so a missing or malformed trace is one line at validation, not a failure in the child."""
    if entry.load is None or entry.load.trace is None:
        return entry
    from ..load.arrivals import trace_send_times
    from ..load.traces import read_trace

    trace = entry.load.trace
    if not os.path.isabs(trace):
        trace = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(suite_path)), trace))
    where = where_from(source, ("workloads", i, "load", "trace"), overrides)
    try:
        table = read_trace(trace)
    except UserError as exc:
        raise UserError(f"{where}: workloads[{i}].load.trace: {exc}") from None
    load = entry.load.model_copy(update={"trace": trace})
    try:
        trace_send_times(load, table)  # every check `schedule` makes of the rows, without building the requests
    except ValueError as exc:
        raise UserError(f"{where}: workloads[{i}].load: {exc}") from None
    return entry.model_copy(update={"load": load})


def sweep_points(entry: WorkloadEntry) -> list[dict[str, Any]]:
    """The grid of a `sweep:` block as a list of param overrides ([{}] without a sweep)."""
    if not entry.sweep:
        return [{}]
    keys = list(entry.sweep)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(entry.sweep[k] for k in keys))]


def _declaration(plugin: PluginRef, params: BaseModel, where: str) -> Declaration:
    """The plugin's declaration for these params; a broken one is one line naming the plugin."""
    try:
        return declaration_of(plugin.cls, params)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "declaration"
        raise UserError(f"{where}: workload plugin '{plugin.name}': its declaration() is invalid: {field}: {first['msg']} (see docs/plugins.md)") from None
    except Exception as exc:
        raise UserError(f"{where}: workload plugin '{plugin.name}': its declaration() failed: {type(exc).__name__}: {exc} (see docs/plugins.md)") from None
