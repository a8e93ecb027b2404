"""The Jinja2 environment every page of the report is rendered with (report.html, compare.html).

Templates live in reports/templates and autoescape is on: a workload name, a parameter, a fact
or a warning is text on the page, never markup. The only HTML that is not a rendered template
is plotly's figure fragment (plotly escapes the strings in its JSON; reports/figures.py escapes
the labels), passed in as Markup. Sections registered with an inline template (a test, a plugin
that adds a domain) are served from TEMPLATE_SOURCES.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import plotly.io as pio
from jinja2 import ChoiceLoader, DictLoader, Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

TEMPLATE_SOURCES: dict[str, str] = {}
"""Template name -> source, for sections registered with `template_source=` (see reports/sections)."""

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


@lru_cache(maxsize=1)
def environment() -> Environment:
    """Autoescaped, strict about undefined names (a typo in a template is an error, not a blank)."""
    loader = ChoiceLoader([PackageLoader("reports", "templates"), DictLoader(TEMPLATE_SOURCES)])
    return Environment(loader=loader, autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **values: Any) -> Markup:
    """A template rendered with autoescape: safe to place in another template as it is."""
    return Markup(environment().get_template(template).render(**values))


def figure_html(fig: Any, div_id: str) -> Markup:
    """A plotly figure as a fragment (plotly.js is inlined once by the page, not here)."""
    return Markup(pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG))
