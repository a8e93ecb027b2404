"""Find workload plugins: the `profiler.workloads` entry-point group, or 'package.module:Class'.

One resolver for both (lm-evaluation-harness style). Entry points are listed without importing
them, so a plugin that fails to import breaks only itself: the error names it when it is used.
Every class is checked against the Workload protocol when it is resolved.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from pydantic import BaseModel

from ..errors import UserError, suggest
from ..plugin import REQUIRED_METHODS

GROUP = "profiler.workloads"


@dataclass(frozen=True)
class PluginRef:
    """A resolved workload class and where it came from."""

    name: str
    source: str  # "entry point pkg.mod:Class (dist x.y)" or "pkg.mod:Class"
    cls: type


def discover() -> dict[str, EntryPoint]:
    """Entry points of the workload group, by name (not imported)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def add_plugin_paths(paths: list[str]) -> None:
    """Make 'module:Class' plugins in these folders importable: each is appended to sys.path, so it is searched
    after the installed packages and the profiler's own and never takes the place of one (docs/plugins.md).

    Raises UserError when a folder holds a module or folder named like a package that only an import hook finds
    (an editable install, `pip install -e`): an appended folder would still hide that one."""
    for p in paths:
        if p and p not in sys.path:
            _refuse_shadowing(p)
            sys.path.append(p)


def _refuse_shadowing(folder: str) -> None:
    """UserError when an entry of `folder` would hide a package served by an import hook once the folder is on sys.path.

    sys.path is searched before such hooks, so even an empty folder named `reports` would be imported in place of the
    profiler's own `reports` under an editable install; a package found on sys.path itself always wins over `folder`."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return  # nothing in it can be imported either
    suffixes = tuple(importlib.machinery.all_suffixes())
    for entry in entries:
        full = os.path.join(folder, entry)
        name = entry if os.path.isdir(full) else entry.partition(".")[0] if entry.endswith(suffixes) else ""
        if not name.isidentifier():  # a package is a folder named like it, a module a file with an importable suffix
            continue
        hidden = _hook_served(name)
        if hidden and os.path.realpath(hidden) != os.path.realpath(full):
            raise UserError(
                f"{full}: would hide the installed '{name}' ({hidden}) once {folder} is importable for a module:Class plugin; "
                "rename or move it, or install the plugin"
            )


def _hook_served(name: str) -> str | None:
    """Where the top-level module `name` comes from when an import hook, not a sys.path entry, provides it; else None."""
    if name in sys.builtin_module_names or importlib.machinery.PathFinder.find_spec(name) is not None:
        return None
    try:
        spec = importlib.util.find_spec(name)  # a top-level name: looked up, never imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    return spec.origin if spec.origin and os.path.isabs(spec.origin) else None


def resolve_workload(type_name: str) -> PluginRef:
    """Resolve an entry-point name or 'package.module:Class' to a checked workload class."""
    if ":" in type_name:
        module_name, _, attr = type_name.partition(":")
        if not module_name or not attr:
            raise UserError(f"workload type '{type_name}': expected 'package.module:Class'")
        cls = _import_attr(type_name, module_name, attr)
        ref = PluginRef(type_name, type_name, cls)
    else:
        known = discover()
        ep = known.get(type_name)
        if ep is None:
            names = sorted(known)
            raise UserError(
                f"unknown workload type '{type_name}'{suggest(type_name, names)}; known: {', '.join(names) or 'none'}"
                " (or use 'package.module:Class'; see `python -m profiler list`)"
            )
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin breaks only itself
            raise UserError(f"workload plugin '{type_name}' ({ep.value}) failed to import: {type(exc).__name__}: {_first_line(exc)}") from None
        dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist else ""
        ref = PluginRef(type_name, f"entry point {ep.value}{dist}", cls)
    check_workload_class(ref)
    return ref


def _import_attr(type_name: str, module_name: str, attr: str) -> type:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UserError(f"workload plugin '{type_name}' failed to import: {type(exc).__name__}: {_first_line(exc)}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n, v in vars(module).items() if inspect.isclass(v)]
        raise UserError(f"workload plugin '{type_name}': module '{module_name}' has no '{attr}'{suggest(attr, names)}") from None


def check_workload_class(ref: PluginRef) -> None:
    """Reject a class that does not implement the Workload protocol, naming plugin and member."""
    cls = ref.cls
    if not inspect.isclass(cls):
        raise UserError(f"workload plugin '{ref.name}': {ref.source} is a {type(cls).__name__}, not a class")
    params = getattr(cls, "Params", None)
    if not (inspect.isclass(params) and issubclass(params, BaseModel)):
        raise UserError(f"workload plugin '{ref.name}': class {cls.__name__} has no 'Params' pydantic model (see docs/plugins.md)")
    for method in REQUIRED_METHODS:
        if not callable(getattr(cls, method, None)):
            raise UserError(f"workload plugin '{ref.name}': class {cls.__name__} does not implement '{method}()' (see docs/plugins.md)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
