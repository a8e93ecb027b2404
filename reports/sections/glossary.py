"""Definitions: what every number in the report means (reports/definitions.yaml)."""

from __future__ import annotations

from typing import Any

from ..context import ReportContext
from ..definitions import load_definitions
from . import register_section


@register_section(anchor="definitions", title="Definitions", order=140, template="definitions.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    return {"definitions": load_definitions()}
