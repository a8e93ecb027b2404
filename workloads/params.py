"""Parameter types and checks shared by the built-in workloads (no torch at import)."""

from __future__ import annotations

import os
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from profiler.plugin import Params

DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
DTYPE_HELP = "auto = bfloat16 on CUDA, float32 on CPU."

Pixels = Annotated[int, Field(ge=1, le=8192)]
"""One side of a camera frame in pixels: 1 to 8192 (8K cinema, 8192 x 4320; the largest sensor a robot or glasses stream)."""
MAX_ITERATION_S = 86_400
"""The longest one iteration may take: the longest run (measure.max_seconds is at most a day), which it must fit in."""


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


class ModelParams(Params):
    """Where a model comes from (a preset or a local `pretrained` directory) and its dtype; subclasses add
    `preset` (a Literal of their presets) and set DEFAULT_PRESET."""

    DEFAULT_PRESET: ClassVar[str] = ""

    pretrained: str | None = Field(None, description="Local directory with config.json and weights (local files only; no download).")
    dtype: DTypeName = Field("auto", description=DTYPE_HELP)

    @field_validator("pretrained")
    @classmethod
    def _directory_exists(cls, path: str | None) -> str | None:
        return check_pretrained_dir(path)

    @model_validator(mode="after")
    def _one_source(self) -> ModelParams:
        check_one_source(getattr(self, "preset", None), self.pretrained)
        return self

    @property
    def preset_name(self) -> str | None:
        return None if self.pretrained else (getattr(self, "preset", None) or self.DEFAULT_PRESET)


class DecodeParams(ModelParams):
    """What every autoregressive decode workload takes (see ModelParams for the model's source)."""

    batch_size: int = Field(1, ge=1, le=4096, description="Sequences decoded together.")
    prompt_len: int = Field(128, ge=1, le=10_000_000, description="Prompt tokens per sequence (random ids), 1 to 10M (Llama 4 Scout's context).")
    gen_len: int = Field(64, ge=1, le=1_000_000, description="Output tokens per sequence, the first from prefill; 1 to 1M (above any model's longest output).")
