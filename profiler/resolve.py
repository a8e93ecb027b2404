"""Turn a validated suite into runnable workloads: plugin class plus validated Params, per entry.

This is the second validation step (after `config.py`): each entry's `params:` block goes
through its own plugin's Params model, and errors still point at the YAML line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from .config import (
    SuiteConfig,
    WorkloadEntry,
    load_suite,
    validation_error_line,
    where_from,
)
from .errors import UserError
from .registry import PluginRef, add_plugin_paths, resolve_workload
from .yaml_source import YamlSource


@dataclass(frozen=True)
class ResolvedWorkload:
    index: int
    entry: WorkloadEntry
    plugin: PluginRef
    params: BaseModel


@dataclass(frozen=True)
class ResolvedSuite:
    suite: SuiteConfig
    source: YamlSource
    workloads: list[ResolvedWorkload]
    plugin_paths: list[str]

    def resolved_dict(self) -> dict[str, Any]:
        """The suite with every default filled in: what config.resolved.yaml stores."""
        data = self.suite.model_dump(mode="json")
        for item, w in zip(data["workloads"], self.workloads):
            item["params"] = w.params.model_dump(mode="json")
        return data


def plugin_paths_for(suite_path: str) -> list[str]:
    """'module:Class' plugins are importable from the suite file's folder and the working dir."""
    return [os.path.dirname(os.path.abspath(suite_path)), os.getcwd()]


def resolve_suite(path: str, assignments: list[str] | None = None) -> ResolvedSuite:
    suite, source, overrides = load_suite(path, assignments)
    paths = plugin_paths_for(path)
    add_plugin_paths(paths)
    resolved = []
    for i, entry in enumerate(suite.workloads):
        where = where_from(source, ("workloads", i, "type"), overrides)
        try:
            plugin = resolve_workload(entry.type)
        except UserError as exc:
            raise UserError(f"{where}: workloads[{i}].type: {exc}") from None
        try:
            params = plugin.cls.Params.model_validate(entry.params)
        except ValidationError as exc:
            raise UserError(validation_error_line(exc, plugin.cls.Params, source, ("workloads", i, "params"), overrides)) from None
        resolved.append(ResolvedWorkload(i, entry, plugin, params))
    return ResolvedSuite(suite, source, resolved, paths)
