"""What plugins exist and what they accept: `profiler list` and `profiler schema`.

Every discovered entry point is tried on its own; a broken one is listed with its error and
does not hide the others.
"""

from __future__ import annotations

import copy
import functools
import operator
import re
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..errors import UserError
from ..plugin import OneOf, declaration_of
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
    """One row per parameter (name, type, default, range, help); a nested block's fields follow it as `block.field`
    rows, with the defaults of the block's own default where it has one. `range` is a numeric parameter's bounds
    ("0 to 1,000,000", "each 1 to 8,192" for a list's items; "" otherwise), and the help ends with it unless it
    already states both bounds."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = _as_literal(field.annotation, field.metadata)
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        type_text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
        bounds = param_range(field)
        help_text = field.description or ""
        if bounds and not _states_bounds(help_text, field):
            help_text = f"{help_text.rstrip()} Range: {bounds}." if help_text else f"Range: {bounds}."
        rows.append(
            {
                "name": prefix + name,
                "type": type_text or str(annotation).replace("typing.", ""),
                "default": "required"
                if field.is_required() and defaults is None
                else (
                    "(the fields below)" if nested else repr(getattr(defaults, name) if defaults is not None else field.get_default(call_default_factory=True))
                ),
                "range": bounds,
                "help": help_text,
            }
        )
        if nested:
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            rows.extend(describe_params(annotation, f"{prefix}{name}.", default if isinstance(default, BaseModel) else None))
    return rows


def _as_literal(annotation: Any, metadata: list[Any]) -> Any:
    """The annotation with each `Annotated[str, OneOf(names)]` in it shown as the `Literal[names]` it validates as."""
    one_of = next((m for m in metadata if isinstance(m, OneOf)), None)
    if one_of is not None:
        return one_of.literal()
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _as_literal(base, extra)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        shown = tuple(_as_literal(a, []) for a in args)
        return functools.reduce(operator.or_, shown) if shown != args else annotation
    return annotation


Bound = tuple[float | None, bool, float | None, bool]
"""(low, low included, high, high included); None: no bound on that side."""


def _bounds(metadata: list[Any]) -> Bound:
    """The Ge/Gt/Le/Lt constraints (annotated_types, as pydantic's Field keeps them) among `metadata`."""
    low: float | None = None
    high: float | None = None
    low_in = high_in = True
    for item in metadata:
        for attr, is_low, inclusive in (("ge", True, True), ("gt", True, False), ("le", False, True), ("lt", False, False)):
            value = getattr(item, attr, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if is_low:
                    low, low_in = value, inclusive
                else:
                    high, high_in = value, inclusive
    return low, low_in, high, high_in


def _numeric(annotation: Any) -> bool:
    """int or float, alone or in a union (`int | None`); never bool."""
    if annotation in (int, float):
        return True
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and any(_numeric(a) for a in typing.get_args(annotation))


def _item_field(annotation: Any) -> tuple[Any, list[Any]] | None:
    """(item type, item metadata) of a list or tuple of constrained numbers (`list[Annotated[int, Field(ge=1)]]`)."""
    if typing.get_origin(annotation) not in (list, tuple):
        return None
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if len(args) != 1:
        return None
    item = args[0]
    if typing.get_origin(item) is typing.Annotated:
        base, *extra = typing.get_args(item)
        metadata = [m for e in extra for m in (getattr(e, "metadata", None) or [e])]
        return base, metadata
    return item, []


def param_range(field: FieldInfo) -> str:
    """A numeric parameter's bounds in words ("0 to 60", ">= 1", "each 1 to 8,192", "any" when it has none); "" for
    a parameter that is not a number or a list of numbers."""
    item = _item_field(field.annotation)
    if item is not None and _numeric(item[0]):
        return "each " + _bounds_text(_bounds(item[1]))
    if _numeric(field.annotation):
        return _bounds_text(_bounds(field.metadata))
    return ""


def _bounds_text(bound: Bound) -> str:
    low, low_in, high, high_in = bound
    if low is not None and high is not None and low_in and high_in:
        return f"{_number(low)} to {_number(high)}"
    parts = [f"{'>=' if low_in else '>'} {_number(low)}"] if low is not None else []
    parts += [f"{'<=' if high_in else '<'} {_number(high)}"] if high is not None else []
    return " and ".join(parts) or "any"


def _number(value: float) -> str:
    """1,000,000; 1,099,511,627,776 (2^40); 0.01; 1e-10."""
    if float(value).is_integer() and abs(value) < 1e18:
        whole = int(value)
        power = f" (2^{whole.bit_length() - 1})" if whole >= 2**20 and whole & (whole - 1) == 0 else ""
        return f"{whole:,}{power}"
    return f"{value:g}"


NUMBER_IN_TEXT = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?)([kKMG]?)(?![\w])|2\^(\d+)")
SCALE = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def _states_bounds(text: str, field: FieldInfo) -> bool:
    """Whether `text` already names every bound of the field (as 60, 86,400, 10M, 1e-10 or 2^40)."""
    item = _item_field(field.annotation)
    low, _, high, _ = _bounds(item[1] if item is not None else field.metadata)
    named = set()
    for digits, scale, power in NUMBER_IN_TEXT.findall(text):
        if power:
            named.add(float(2 ** int(power)))
        else:
            try:
                named.add(float(digits.replace(",", "")) * SCALE[scale])
            except ValueError:
                continue
    return all(bound is None or float(bound) in named for bound in (low, high))


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
