"""What plugins exist and what they accept: `profiler list` and `profiler schema`.

Every discovered entry point is tried on its own; a broken one is listed with its error and
does not hide the others.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from .config import SuiteConfig
from .errors import UserError
from .registry import PluginRef, discover, resolve_workload


def catalog() -> list[tuple[str, PluginRef | None, str | None]]:
    """(name, plugin or None, error or None) for every entry point, sorted by name."""
    out = []
    for name in sorted(discover()):
        try:
            out.append((name, resolve_workload(name), None))
        except UserError as exc:
            out.append((name, None, str(exc)))
    return out


def describe_params(model: type[BaseModel]) -> list[dict[str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        type_text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
        rows.append({
            "name": name,
            "type": type_text or str(annotation).replace("typing.", ""),
            "default": "required" if field.is_required() else repr(field.get_default(call_default_factory=True)),
            "help": field.description or "",
        })
    return rows


def suite_schema() -> dict[str, Any]:
    """JSON Schema of a suite file; each known workload type's params are checked by type."""
    schema = SuiteConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "profiler suite"
    entry = schema.get("$defs", {}).get("WorkloadEntry")
    if entry is None:
        return schema
    branches = []
    for name, plugin, _ in catalog():
        if plugin is None:
            continue
        params = copy.deepcopy(plugin.cls.Params.model_json_schema())
        defs = params.pop("$defs", {})
        schema["$defs"].update({f"{name}__{k}": v for k, v in defs.items()})
        params = _rename_refs(params, name)
        branches.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]}, "then": {"properties": {"params": params}}})
    if branches:
        entry["allOf"] = branches
    return schema


def _rename_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {k: (f"#/$defs/{prefix}__{v.rsplit('/', 1)[-1]}" if k == "$ref" and isinstance(v, str) else _rename_refs(v, prefix)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_refs(v, prefix) for v in node]
    return node
