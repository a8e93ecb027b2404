"""The definitions section's data: what every number in the report means (from metrics.md),
kept as text in reports/definitions.yaml and validated when read.

Tools in this field disagree mostly because of definitions, so every report carries its own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter

DEFINITIONS_FILE = Path(__file__).with_name("definitions.yaml")


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    term: str
    text: str


@lru_cache(maxsize=1)
def load_definitions(path: Path = DEFINITIONS_FILE) -> tuple[Definition, ...]:
    """Every definition, in the file's order (a malformed entry is an error naming the file)."""
    try:
        return tuple(TypeAdapter(list[Definition]).validate_python(yaml.safe_load(path.read_text(encoding="utf-8"))))
    except Exception as exc:
        raise ValueError(f"{path}: {exc}") from None


DEFINITIONS: list[tuple[str, str]] = [(d.term, d.text) for d in load_definitions()]
"""(term, text) pairs, as before the definitions became data."""
