"""The report's sections, registered: each is a function `build(ctx) -> dict | None` that
computes what its template shows (None: the section is left out of this report).

    @register_section(anchor="energy", title="Energy", order=80, template="energy.html.j2")
    def build(ctx: ReportContext) -> dict | None: ...

The page builder (reports/html_report.py) renders every registered section in `order`; it never
names one. A new domain adds a section by adding a module here (every module of this package is
imported when the sections are listed) or by registering from its own package with an inline
`template_source`. A build's result may carry `title` to replace the registered title (the
differences name the baseline). Sections with `first_screen=True` form the page's first screen
(the answer); the contents line follows them.

Orders used by the built-in sections: header 0, overview 10, findings 20, differences 30,
warnings 40, latency 50, serving 55, stages 57, control loops 60, work 70, energy 80, operator mix 90, scaling 100,
crossover 105, figures 110, workloads 120, environment 130, definitions 140.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..render import TEMPLATE_SOURCES

if TYPE_CHECKING:
    from ..context import ReportContext

Build = Callable[["ReportContext"], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str | None
    """The heading (None: no heading and no entry in the contents, e.g. the page header)."""
    order: int
    template: str
    build: Build
    first_screen: bool = False


SECTIONS: dict[str, Section] = {}


def register_section(
    *, anchor: str, title: str | None, order: int, template: str | None = None, template_source: str | None = None, first_screen: bool = False
) -> Callable[[Build], Build]:
    """Register `build` as the section `anchor` (its id on the page). `template` names a file in
    reports/templates; `template_source` gives the template's text instead (a plugin's section)."""
    if (template is None) == (template_source is None):
        raise ValueError(f"section '{anchor}': give exactly one of template or template_source")

    def register(build: Build) -> Build:
        if anchor in SECTIONS:
            raise ValueError(f"section '{anchor}' is registered twice ({SECTIONS[anchor].build.__module__} and {build.__module__})")
        name = template or f"section-{anchor}.html.j2"
        if template_source is not None:
            TEMPLATE_SOURCES[name] = template_source
        SECTIONS[anchor] = Section(anchor, title, order, name, build, first_screen)
        return build

    return register


def unregister_section(anchor: str) -> None:
    """Remove a registered section (tests; a plugin replacing a built-in one)."""
    section = SECTIONS.pop(anchor, None)
    if section is not None:
        TEMPLATE_SOURCES.pop(f"section-{anchor}.html.j2", None)


def registered_sections() -> list[Section]:
    """Every section, the built-in modules of this package imported first, in page order."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return sorted(SECTIONS.values(), key=lambda s: (s.order, s.anchor))
