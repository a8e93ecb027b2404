"""Find workload plugins: the `profiler.workloads` entry-point group, or 'package.module:Class'.

One resolver for both (lm-evaluation-harness style). Entry points are listed without importing
them, so a plugin that fails to import breaks only itself: the error names it when it is used.
Every class is checked against the Workload protocol when it is resolved. A suite's 'module:Class'
plugins come from its folder (and the working directory) through SuiteModuleFinder, which serves
only the suite's own modules there, after everything installed; nothing is put on sys.path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

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


def add_plugin_paths(folders: list[str], types: list[str]) -> None:
    """Make the 'module:Class' plugins among `types` importable from `folders` (the suite file's folder, then the
    working directory), and nothing else from there: nothing is put on sys.path; one SuiteModuleFinder at the end of
    sys.meta_path serves them (docs/plugins.md, "Registering the plugin"). Calling it again adds to what it serves."""
    named = {t.partition(":")[0].partition(".")[0] for t in types if ":" in t}
    if not folders or not named:
        return
    finder = next((f for f in sys.meta_path if isinstance(f, SuiteModuleFinder)), None)
    if finder is None:
        finder = SuiteModuleFinder()
        sys.meta_path.append(finder)
    finder.add([os.path.abspath(f) for f in folders if f], named)


_IMPORT_MACHINERY = frozenset(
    {"importlib", "importlib.util", "importlib._bootstrap", "importlib._bootstrap_external", "_frozen_importlib", "_frozen_importlib_external"}
)
"""Modules whose frames carry an import out (import_module, util.find_spec, the bootstrap): the importer is below them."""


class SuiteModuleFinder(importlib.abc.MetaPathFinder):
    """Finds top-level modules in a suite's folders for the suite's own code only.

    Last on sys.meta_path, so it is asked only for a name no installed package, PYTHONPATH entry or import hook
    provides: nothing beside a suite can take the place of one. Even then it serves a name only when the suite names
    it (`tiny_gru` of `tiny_gru:TinyGRU`, `my_pkg` of `my_pkg.mod:Class`) or when the code importing it lies in one of
    the folders and belongs to a module this finder served (the plugin's helpers, at module level or in setup()).
    An optional dependency a library probes for (`try: import dill` in torch, pytz in pandas) is never taken from
    there. Submodules of a package it served are found through the package's `__path__`, as usual."""

    def __init__(self) -> None:
        self.folders: list[str] = []
        self.named: set[str] = set()
        self.served: set[str] = set()
        """Top-level modules found in the folders: their code may import more from there."""

    def add(self, folders: list[str], named: set[str]) -> None:
        self.folders.extend(f for f in folders if f not in self.folders)
        self.named |= named

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        """The spec of top-level module `name` from the folders, for the suite's own code; None otherwise (the import
        then fails as it would without the suite). Submodules (`path` given) are never its business."""
        if path is not None or "." in name or not (name in self.named or self._asked_by_suite_code()):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, self.folders)
        if spec is not None:
            self.served.add(name)
        return spec

    def _asked_by_suite_code(self) -> bool:
        """Whether the frame doing this import runs code of a module this finder served, from a file in its folders."""
        frame = sys._getframe(1).f_back  # past this and find_spec
        while frame is not None and (frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_globals.get("__name__") in _IMPORT_MACHINERY):
            frame = frame.f_back
        if frame is None:
            return False
        module, file = frame.f_globals.get("__name__"), frame.f_globals.get("__file__")
        if not (isinstance(module, str) and isinstance(file, str) and module.partition(".")[0] in self.served):
            return False
        file = os.path.abspath(file)
        return any(file.startswith(folder.rstrip(os.sep) + os.sep) for folder in self.folders)


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
