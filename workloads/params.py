"""Parameter types and checks shared by the built-in workloads (no torch at import)."""

from __future__ import annotations

import os
from typing import Literal

DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
DTYPE_HELP = "auto = bfloat16 on CUDA, float32 on CPU."


def check_pretrained_dir(path: str | None, marker: str = "config.json") -> str | None:
    """A local model directory that exists and holds `marker`; returned as an absolute path."""
    if path is None:
        return None
    if not os.path.isdir(path):
        raise ValueError(f"pretrained directory '{path}' does not exist; give a local model directory")
    if not os.path.exists(os.path.join(path, marker)):
        raise ValueError(f"pretrained directory '{path}' has no {marker}")
    return os.path.abspath(path)


def check_one_source(preset: str | None, pretrained: str | None) -> None:
    if preset is not None and pretrained is not None:
        raise ValueError("give either preset or pretrained, not both")
