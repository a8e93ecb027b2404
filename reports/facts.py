"""Facts, settings and environment dictionaries as readable key-value lists, never JSON blobs.

Each value is formatted by the unit its key names (profiler/format.py: by_key); a nested dict
becomes a list of pairs, a list of long texts one line each, a short list one line.
"""

from __future__ import annotations

from typing import Any

from profiler.format import DASH, by_key

from .table import Fact

LONG_TEXT = 60


def fact(key: str, value: Any, label: str | None = None) -> Fact:
    """One key and its value, formatted by the key's unit."""
    name = label or key
    if isinstance(value, dict):
        if not value:
            return Fact(name, DASH)
        unit_of = key.partition("_by_")[0] if "_by_" in key else None
        return Fact(name, items=[(str(k), by_key(unit_of or str(k), v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list)) or (isinstance(v, str) and len(v) > LONG_TEXT) for v in value):
        return Fact(name, lines=[by_key(key, v) if not isinstance(v, dict) else by_key("", v) for v in value])
    return Fact(name, by_key(key, value))


def fact_list(values: dict[str, Any], labels: dict[str, str] | None = None) -> list[Fact]:
    """Every key of `values`, in order; `labels` renames keys for the reader."""
    labels = labels or {}
    return [fact(str(k), v, labels.get(str(k))) for k, v in values.items()]
