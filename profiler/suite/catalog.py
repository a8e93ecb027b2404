"""What plugins exist and what they accept: `profiler list` and `profiler schema`.

Every discovered entry point is tried on its own; a broken one is listed with its error and
does not hide the others.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from ..errors import UserError
from ..plugin import declaration_of
from .config import SuiteConfig
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


def describe_params(model: type[BaseModel], prefix: str = "", defaults: BaseModel | None = None) -> list[dict[str, str]]:
    """One row per parameter (name, type, default, help); a nested block's fields follow it as `block.field` rows, with
    the defaults of the block's own default where it has one."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        type_text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
        rows.append(
            {
                "name": prefix + name,
                "type": type_text or str(annotation).replace("typing.", ""),
                "default": "required"
                if field.is_required() and defaults is None
                else (
                    "(the fields below)" if nested else repr(getattr(defaults, name) if defaults is not None else field.get_default(call_default_factory=True))
                ),
                "help": field.description or "",
            }
        )
        if nested:
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            rows.extend(describe_params(annotation, f"{prefix}{name}.", default if isinstance(default, BaseModel) else None))
    return rows


def describe_declaration(plugin: PluginRef) -> str:
    """The plugin's declaration for its default params, in one line (or why it cannot be shown)."""
    try:
        d = declaration_of(plugin.cls, plugin.cls.Params())
    except Exception as exc:  # required params, or a broken declaration: say so, do not hide the plugin
        return f"declaration: not shown for default params ({type(exc).__name__})"
    roles = [f"request {d.request}", f"step {d.step or '(none)'}"]
    if d.inference:
        roles.append(f"inference {d.inference}")
    if d.breakdown:
        roles.append(f"stages {', '.join(d.breakdown)}")
    if d.presentation:
        roles.append(f"first output perceived at the end of {d.presentation}")
    if d.streams:
        roles.append(f"streams {', '.join(d.streams)} (run alone and together)")
    if d.qoe:
        roles.append(f"listener {d.qoe.stated()}")
    traits = ", ".join(sorted(t.value for t in d.traits)) or "none"
    r = d.resources
    held = f"{r.cpu_cores} CPU core(s), {r.gpus} GPU(s) on CUDA" + (f", {r.memory_bytes / 2**30:.1f} GiB" if r.memory_bytes else "")
    return f"declaration: {'; '.join(roles)}; output unit {d.output_unit}; traits {traits}; resources {held}"


def suite_schema() -> dict[str, Any]:
    """JSON Schema of a suite file; each known workload type's params are checked by type."""
    schema = SuiteConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "profiler suite"
    executor = schema.get("properties", {}).get("executor")
    if executor is not None:  # `executor: ray` and `executor: "ray:ADDRESS"` are short for the mapping
        shorthand = {"type": "string", "pattern": "^(local|ray(:.+)?)$"}
        mapping = {k: v for k, v in executor.items() if k != "description"}
        schema["properties"]["executor"] = {"anyOf": [mapping, shorthand], "description": executor.get("description", "")}
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
