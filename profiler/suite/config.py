"""The suite file: its schema, strict validation, `--set` overrides, and errors with file:line.

A suite names several workloads and how to measure them. Validation is strict (pydantic v2 in
strict mode, unknown keys forbidden) and happens in two steps: the suite's own keys here, then
each workload's `params:` by that workload's own `Params` model (see `resolve.py`). Every error
becomes one line: file:line, key path, what is wrong, and the closest valid key or value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import UserError, suggest
from ..loadconfig import LoadConfig, Objective
from .yaml_source import YamlBoundError, YamlLoadError, YamlSource, load_yaml, parse_value

DEVICE_PATTERN = r"^(auto|cpu|cuda|cuda:\d+)$"
MAX_SWEEP_POINTS = 1000


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MeasureConfig(StrictModel):
    """How long and how often to measure (MLPerf-style: both min_iters and min_seconds)."""

    warmup_iters: int = Field(default=2, ge=0, le=100_000, description="Iterations run first, stored tagged as warmup, excluded from statistics.")
    min_iters: int = Field(default=5, ge=1, le=10_000_000, description="Measured iterations at least.")
    min_seconds: float = Field(default=2.0, ge=0, le=86_400, allow_inf_nan=False, description="Measured seconds at least, 0 to 86,400.")
    max_seconds: float = Field(
        default=120.0,
        ge=0.1,
        le=86_400,
        allow_inf_nan=False,
        description="Measurement stops here even if min_iters is not reached (a warning is recorded), 0.1 to 86,400 s (a day).",
    )
    sample_hz: float = Field(
        default=20.0,
        ge=0.01,
        le=1000,
        allow_inf_nan=False,
        description="Rate of the parent's psutil/NVML sampler, 0.01 to 1000 Hz (one sample per 1/sample_hz s, which must fit in max_seconds).",
    )
    setup_timeout_s: float = Field(
        default=900.0,
        ge=1,
        le=86_400,
        allow_inf_nan=False,
        description="A setup (model build, load) that takes longer is a failure, 1 to 86,400 s (starting the child alone takes about a second).",
    )
    hang_grace_s: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        allow_inf_nan=False,
        description="A workload still running this long after max_seconds is killed as hung, 1 to 3600 s (a child takes up to a second to stop).",
    )
    count_work: bool = Field(default=True, description="After measuring, run one untimed iteration counting FLOPs and bytes per phase.")
    trace_ops: bool = Field(default=True, description="After measuring, run one traced iteration (torch.profiler) for the operator mix and trace.json.")
    repeats: int = Field(
        default=1,
        ge=1,
        le=50,
        description="Run the whole suite this many times, workloads interleaved; with 2 or more, verdicts use the between-repeat variation.",
    )

    @model_validator(mode="after")
    def _max_covers_min(self) -> MeasureConfig:
        if self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds}) is below min_seconds ({self.min_seconds})")
        return self


class WorkloadEntry(StrictModel):
    name: str = Field(min_length=1, max_length=200, description="Label in the run directory and report.")
    type: str = Field(min_length=1, max_length=500, description="Entry-point name (see `profiler list`) or 'package.module:Class'.")
    params: dict[str, Any] = Field(default_factory=dict, description="Validated by the workload's own Params model.")
    sweep: dict[str, list[Any]] | None = Field(
        None, description="A grid over params (e.g. batch_size: [1, 4]) or load keys (load.rate: [1, 2, 4]); one isolated run per point."
    )
    load: LoadConfig | None = Field(
        None, description="Serve requests arriving by this pattern instead of running iterations (an engine workload, e.g. llm_serve)."
    )
    objective: Objective | None = Field(
        None, description="SLOs and the reader's QoE timeline the requests of a load are judged by (defaults apply under a load)."
    )

    @model_validator(mode="after")
    def _objective_needs_load(self) -> WorkloadEntry:
        if self.objective is not None and self.load is None:
            raise ValueError("objective: judges the requests of a load; add a load: block or remove objective")
        for key in self.sweep or {}:
            if key.startswith("load.") and self.load is None:
                raise ValueError(f"sweep.{key}: sweeps a load key but the workload has no load: block")
            name = key.removeprefix("load.")
            if key.startswith("load.") and name not in LoadConfig.model_fields:
                raise ValueError(f"sweep.{key}: '{name}' is not a key of load:{suggest(name, list(LoadConfig.model_fields))}")
        return self

    @field_validator("sweep")
    @classmethod
    def _sweep_grid(cls, sweep: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if sweep is None:
            return None
        if not sweep:
            raise ValueError("sweep is empty; give at least one parameter with a list of values")
        points = 1
        for key, values in sweep.items():
            if not values:
                raise ValueError(f"sweep.{key} has no values")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"sweep.{key} repeats a value")
            points *= len(values)
        if points > MAX_SWEEP_POINTS:
            raise ValueError(f"the sweep has {points} points; the limit is {MAX_SWEEP_POINTS}")
        return sweep


class CrossoverConfig(StrictModel):
    """Which two context sweeps to compare for the per-token decode latency crossover (profiler/characterize/crossover.py)."""

    a: str = Field(min_length=1, max_length=200, description="The workload whose step latency is expected to drop below b's as the context grows (e.g. mamba).")
    b: str = Field(min_length=1, max_length=200, description="The workload it is compared with (e.g. a Transformer of similar size).")
    over: str = Field(min_length=1, max_length=200, description="The context key both sweep, and only it (e.g. prompt_len).")


class ExecutorConfig(StrictModel):
    """Where the suite's workloads and sweep points run (profiler/run/executor.py).

    `local` (the default) runs them one after another in child processes of this machine. `ray` runs each as a Ray
    task holding the CPU cores and GPUs its workload declares (plugin.Resources), on an existing cluster or on one
    started for the run; the same child, sampler and spans run on the worker, and its files come back to this run
    directory. In YAML, `executor: ray` or `executor: "ray:ADDRESS"` is short for the mapping.
    """

    kind: Literal["local", "ray"] = Field(default="local", description="local: child processes here, one at a time; ray: Ray tasks on a cluster.")
    address: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="ray: the cluster to join (auto: the one `ray start` runs here; host:port; ray://host:10001); none: start a local one for the run.",
    )
    num_cpus: int | None = Field(default=None, ge=1, le=65_536, description="ray, when it starts a local cluster: its CPU count (default: this machine's).")
    cpu_share: int = Field(
        default=1, ge=1, le=64, description="ray: points that may share one CPU core at a time (1: never; more makes their measurements contended)."
    )
    gpu_share: int = Field(default=1, ge=1, le=64, description="ray: points that may share one GPU at a time (1: never; Ray's fractional GPUs).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            kind, colon, address = data.partition(":")
            if kind not in ("local", "ray") or (kind == "local" and colon) or (colon and not address.strip()):
                raise ValueError(f"executor '{data}' is not local, ray or ray:ADDRESS")
            return {"kind": kind, **({"address": address} if address else {})}
        return data

    @model_validator(mode="after")
    def _ray_only(self) -> ExecutorConfig:
        if self.kind == "local" and (self.address or self.num_cpus or self.cpu_share != 1 or self.gpu_share != 1):
            raise ValueError("address, num_cpus, cpu_share and gpu_share apply to the ray executor; set kind: ray")
        if self.address and self.num_cpus:
            raise ValueError("num_cpus sizes a local cluster started for the run; a cluster given by address has its own")
        return self

    def describe(self) -> str:
        """One line: where the points run."""
        if self.kind == "local":
            return "local: child processes on this machine, one at a time"
        return f"ray: {'cluster at ' + self.address if self.address else 'a local cluster started for the run'}"


class SuiteConfig(StrictModel):
    name: str = Field(min_length=1, max_length=200, description="Suite name; part of the run directory's name.")
    baseline: str | None = Field(None, description="Workload the others are compared to on architecture (state, work, bound class); default: the first.")
    serving_baseline: str | None = Field(
        None, description="Workload under a load the others are compared to on request pattern and objective; default: the first with a load: block."
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed for torch and every workload generator.")
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="Where the points run: local (default) or ray (a cluster).")
    workloads: list[WorkloadEntry] = Field(min_length=1, max_length=1000)
    crossover: CrossoverConfig | None = Field(
        None, description="Compare two workloads swept over the same context key: where a's per-token decode latency drops below b's."
    )

    @field_validator("device")
    @classmethod
    def _device_form(cls, device: str) -> str:
        if not re.match(DEVICE_PATTERN, device):
            raise ValueError(f"device '{device}' is not one of auto, cpu, cuda, cuda:N")
        return device

    @field_validator("workloads")
    @classmethod
    def _unique_names(cls, workloads: list[WorkloadEntry]) -> list[WorkloadEntry]:
        seen: set[str] = set()
        for w in workloads:
            if w.name in seen:
                raise ValueError(f"workload name '{w.name}' is used twice; names must be unique")
            seen.add(w.name)
        return workloads

    @model_validator(mode="after")
    def _baseline_exists(self) -> SuiteConfig:
        names = [w.name for w in self.workloads]
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline '{self.baseline}' is not a workload of this suite{suggest(self.baseline, names)}; workloads: {', '.join(names)}")
        if self.serving_baseline is not None:
            loaded = [w.name for w in self.workloads if w.load is not None]
            if self.serving_baseline not in loaded:
                raise ValueError(
                    f"serving_baseline '{self.serving_baseline}' is not a workload with a load: block{suggest(self.serving_baseline, loaded)}; "
                    f"those with one: {', '.join(loaded) or 'none'}"
                )
        return self

    @property
    def serving_baseline_name(self) -> str | None:
        return self.serving_baseline or next((w.name for w in self.workloads if w.load is not None), None)

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.workloads[0].name


# ---------------------------------------------------------------- key paths and error lines


def format_path(key_path: tuple[Any, ...]) -> str:
    out = ""
    for part in key_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields valid at `loc` inside `model` (for 'did you mean')."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _unwrap(field.annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _unwrap(annotation: Any) -> Any:
    """list[X] / X | None -> X, so nested models can be walked."""
    while get_origin(annotation) is not None:
        models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return models[0]
        args = [a for a in get_args(annotation) if a is not type(None)]
        if not args:
            return annotation
        annotation = args[0]
    return annotation


def validation_error_line(
    exc: ValidationError,
    model: type[BaseModel],
    source: YamlSource,
    prefix: tuple[Any, ...] = (),
    overrides: dict[tuple[Any, ...], str] | None = None,
) -> str:
    """One line for the first error of `exc`, with where it came from and a suggestion."""
    errors = _without_union_tags(exc.errors(include_url=False))
    first = errors[0]
    loc = tuple(first["loc"])
    key_path = prefix + loc
    where = where_from(source, key_path, overrides or {})
    etype = first["type"]
    if etype == "extra_forbidden":
        key = loc[-1] if loc else "?"
        valid = _fields_at(model, loc[:-1])
        hint = suggest(str(key), valid) or (f"; valid keys: {', '.join(valid)}" if valid else "")
        message = f"{format_path(key_path[:-1])}: unknown key '{key}'{hint}" if key_path[:-1] else f"unknown top-level key '{key}'{hint}"
    elif etype == "missing":
        message = f"{format_path(key_path)}: required key is missing"
    else:
        message = f"{format_path(key_path)}: {_clean_msg(first)}"
        expected = (first.get("ctx") or {}).get("expected")
        if etype == "literal_error" and isinstance(first.get("input"), str) and expected:
            message += suggest(first["input"], re.findall(r"'([^']*)'", expected))
    more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"


UNION_TAG = re.compile(r"^[\w-]+\[.*\]$")
"""pydantic's name for one branch of a union or a validator wrapper in an error's loc: `function-after[...]`, `literal['x']`."""


def _without_union_tags(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Errors with union-branch tags dropped from their locs, one per place. A value that failed every branch of a
    union (a size given as a mapping that is wrong, where `from_trace` is the other branch) is reported by the branch
    that takes its type, not once per branch."""

    def branch(e: Mapping[str, Any]) -> tuple[tuple[Any, ...], str] | None:
        for i, part in enumerate(e["loc"]):
            if isinstance(part, str) and UNION_TAG.match(part):
                return tuple(e["loc"][:i]), part
        return None

    # per union: a string chose the literal branch (a misspelt keyword); anything else the other branches
    wants_literal = {b[0]: isinstance(e.get("input"), str) for e in errors if (b := branch(e)) and b[1].startswith("literal[")}
    kept = [e for e in errors if not (b := branch(e)) or b[0] not in wants_literal or b[1].startswith("literal[") == wants_literal[b[0]]]
    kept = kept or errors
    out, seen = [], set()
    for e in kept:
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and UNION_TAG.match(p)))
        if loc not in seen:
            seen.add(loc)
            out.append({**e, "loc": loc})
    return out


def _clean_msg(error: dict[str, Any]) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] not in ("value_error",) and not isinstance(value, (dict, list)):
        shown = repr(value)
        msg += f" (got {shown[:60]})"
    if error["type"] == "bool_type" and isinstance(value, str):
        msg += "; write true or false (YAML 1.2: yes, no, on and off are text)"
    elif error["type"] in ("int_type", "float_type") and isinstance(value, str):
        msg += "; write digits, 1.5e-3, 0o octal or 0x hex (YAML 1.2: 1_000, 0b11 and 1:00 are text)"
    return msg


def where_from(source: YamlSource, key_path: tuple[Any, ...], overrides: dict[tuple[Any, ...], str]) -> str:
    for cut in range(len(key_path), 0, -1):
        if key_path[:cut] in overrides:
            return f"--set {overrides[key_path[:cut]]}"
    for path, text in overrides.items():  # a key the flag created on its way (--set measur.min_iters=2)
        if key_path and path[: len(key_path)] == key_path:
            return f"--set {text}"
    line = source.line_of(key_path)
    return f"{source.path}:{line}" if line else source.path


# ---------------------------------------------------------------- --set overrides


def apply_overrides(source: YamlSource, assignments: list[str]) -> dict[tuple[Any, ...], str]:
    """Apply `key.path=value` assignments to `source.data` in place.

    A key missing from a mapping is created (a `measure:` block or a parameter the file leaves at
    its default), and strict validation then checks that it is a real key (a typo is an unknown
    key, with "did you mean"). List indexes must exist. Values are parsed as YAML by the suite
    file's own loader and bounds ('4' -> 4, '1e-3' -> 0.001, 'true' -> True, 'bf16' -> 'bf16'; text
    that is not YAML stays text); an alias bomb, a recursive alias, a repeated key or nesting
    deeper than the file may have is a UserError. Only the named path changes: a mapping or list
    on it that an alias shares with another place is copied first.
    """
    applied: dict[tuple[Any, ...], str] = {}
    for text in assignments:
        if "=" not in text:
            raise UserError(f"--set {text}: expected key.path=value, e.g. --set workloads.0.params.batch_size=4")
        dotted, raw = text.split("=", 1)
        parts = [p for p in dotted.strip().split(".")]
        if not dotted.strip() or any(not p for p in parts):
            raise UserError(f"--set {text}: empty key in path '{dotted}'")
        try:
            value = parse_value(raw) if raw.strip() else ""
        except YamlBoundError as exc:
            raise UserError(f"--set {_cut(text)}: {exc.problem}") from None
        except yaml.YAMLError:
            value = raw
        key_path = _set_path(source.data, parts, value, text)
        applied[key_path] = text
    return applied


def _set_path(data: Any, parts: list[str], value: Any, text: str) -> tuple[Any, ...]:
    node = data
    key_path: list[Any] = []
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"--set {text}: '{format_path(tuple(key_path))}' has {len(node)} entries (0..{len(node) - 1}); '{part}' is not one of them")
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
            if key not in node and not last:
                node[key] = {}
        else:
            raise UserError(f"--set {text}: '{format_path(tuple(key_path))}' is a value, not a mapping or list")
        key_path.append(key)
        if last:
            node[key] = value
        else:
            child = node[key]
            if isinstance(child, (dict, list)):  # an alias may share it with another place: change only this path
                child = child.copy()
                node[key] = child
            node = child
    return tuple(key_path)


def _cut(text: str, limit: int = 80) -> str:
    """A long `--set` argument shortened for an error line."""
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------- loading


def load_suite(path: str, assignments: list[str] | None = None) -> tuple[SuiteConfig, YamlSource, dict[tuple[Any, ...], str]]:
    """Read, override and validate a suite file's own keys (not yet the workloads' params)."""
    try:
        source = load_yaml(path)
    except YamlLoadError as exc:
        raise UserError(str(exc)) from None
    if source.data is None:
        raise UserError(f"{path}: the file is empty; a suite needs at least 'name' and 'workloads'")
    if not isinstance(source.data, dict):
        raise UserError(f"{path}:1: a suite must be a mapping with 'name' and 'workloads', not a {type(source.data).__name__}")
    overrides = apply_overrides(source, assignments or [])
    try:
        suite = SuiteConfig.model_validate(source.data)
    except ValidationError as exc:
        raise UserError(validation_error_line(exc, SuiteConfig, source, overrides=overrides)) from None
    if suite.crossover is not None:
        problem = crossover_problem(suite)
        if problem:
            key, message = problem
            raise UserError(f"{where_from(source, ('crossover', key), overrides)}: crossover.{key}: {message}")
    return suite, source, overrides


def crossover_problem(suite: SuiteConfig) -> tuple[str, str] | None:
    """(key, message) when the `crossover:` block cannot be compared, else None: a and b must be two
    workloads of the suite, each sweeping `over` (and only it) over numbers."""
    c = suite.crossover
    assert c is not None
    entries = {w.name: w for w in suite.workloads}
    names = list(entries)
    for key in ("a", "b"):
        name = getattr(c, key)
        if name not in entries:
            return key, f"'{name}' is not a workload of this suite{suggest(name, names)}; workloads: {', '.join(names)}"
    if c.a == c.b:
        return "b", f"a and b are both '{c.a}'; compare two different workloads"
    for key in ("a", "b"):
        entry = entries[getattr(c, key)]
        swept = list(entry.sweep or {})
        if c.over not in swept:
            has = f"it sweeps {', '.join(swept)}" if swept else "it has no sweep: block"
            return "over", f"workload '{entry.name}' does not sweep '{c.over}' ({has}); a and b must both sweep it{suggest(c.over, swept)}"
        others = [k for k in swept if k != c.over]
        if others:
            return "over", f"workload '{entry.name}' also sweeps {', '.join(others)}; the crossover compares points that differ only in '{c.over}'"
        assert entry.sweep is not None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry.sweep[c.over]):
            return "over", f"workload '{entry.name}' sweeps '{c.over}' over values that are not all numbers; the crossover needs context lengths"
    return None
