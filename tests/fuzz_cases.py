"""Hostile inputs, each with the verdict it must get: hypothesis strategies for the fuzz test and its benchmark.

Each strategy draws a `Case` (tests/fuzz_harness.py): the files to write, the command, and `accept` or `refuse`.
The verdict comes from the stated contract, never from running the code under test:
- numbers: a field's stated bounds (the Field's ge/gt/le/lt, the same ones `python -m profiler schema` publishes)
  and its type in strict mode, plus the cross-field rules written out below by hand from
  profiler/suite/feasibility.py's docstring (M = measure.max_seconds: 1/sample_hz <= M, 1/rate <= M,
  requests/rate <= M, duration_s <= M, rate x duration_s >= warmup + cooldown + 1, a trace's last send <= M);
  every field also meets a fixed set of hostile values (5e-324, 2^63 - 1, 1e18, nan, inf, ...);
- YAML: alias expansion over 20,000 values or nesting over 64 levels is refused; a duplicate key is refused naming
  both lines; YAML 1.2 floats (1e-3) are numbers; anchors and merge keys within bounds work;
- traces: a well-formed trace is accepted, a damaged one refused naming its file and line, and an unknown header is
  never printed back;
- outputs: `-o` onto a FIFO, a directory, a symlink or a file the profiler did not write is refused and the target
  left as it was;
- text: control characters and bidi overrides in names never reach the terminal raw.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types as at
import yaml
from hypothesis import strategies as st
from pydantic import BaseModel

from profiler.loadconfig import SLO, Distribution, LoadConfig, LogNormal, Objective
from profiler.plugin import QoE
from profiler.suite.config import MeasureConfig
from tests.fuzz_harness import Case

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden-run"
SUITE = "suite.yaml"
M = 5.0  # measure.max_seconds of every base suite
MEASURE = {"warmup_iters": 0, "min_iters": 1, "min_seconds": 0, "max_seconds": M, "count_work": False, "trace_ops": False}
SIZES = {"input": {"fixed": 4}, "output": {"fixed": 4}}
MAX_TOKENS = 10_000_000
MAX_ALIAS_VALUES = 20_000
MAX_DEPTH = 64
HOSTILE = (0, -1, 1, 5e-324, -5e-324, 1e-300, 1e308, 1e18, 10**18, 2**63 - 1, 2**63, 2**64, 2**70, -(2**63), float("inf"), float("-inf"), float("nan"))


def toy_suite(**workload: Any) -> dict[str, Any]:
    return {"name": "fz", "measure": dict(MEASURE), "workloads": [{"name": "w", "type": "toy", **workload}]}


def serve_suite(**load: Any) -> dict[str, Any]:
    base = {"pattern": "poisson", "rate": 10.0, "requests": 5, "sizes": copy.deepcopy(SIZES)}
    base.update(load)
    return {"name": "fz", "measure": dict(MEASURE), "workloads": [{"name": "w", "type": "toy_serve", "load": {k: v for k, v in base.items() if v is not None}}]}


# ---------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Bound:
    """A field's stated range and type."""

    lo: float | None
    lo_open: bool
    hi: float | None
    hi_open: bool
    integer: bool

    def holds(self, v: Any) -> bool:
        """Whether strict validation must take `v` (type and range alone)."""
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.integer and not isinstance(v, int):
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))


def bound_of(model: type[BaseModel], name: str) -> Bound:
    """The stated bound of `model.name` (annotated_types Ge/Gt/Le/Lt metadata; an int field, or a float one)."""
    info = model.model_fields[name]
    lo = hi = None
    lo_open = hi_open = False
    for m in info.metadata:
        if isinstance(m, at.Ge):
            lo = m.ge
        elif isinstance(m, at.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, at.Le):
            hi = m.le
        elif isinstance(m, at.Lt):
            hi, hi_open = m.lt, True
    return Bound(lo, lo_open, hi, hi_open, integer="int" in str(info.annotation) and "float" not in str(info.annotation))


def numeric_fields(model: type[BaseModel]) -> list[str]:
    """Fields of `model` whose type is a number (optional or not)."""
    out = []
    for name, info in model.model_fields.items():
        text = str(info.annotation)
        if ("int" in text or "float" in text) and not any(s in text for s in ("list", "dict", "Literal", "bool")):
            out.append(name)
    return out


@dataclass(frozen=True)
class NumberField:
    """Where a number lives in a suite, its stated bound and the cross-field rule the base suite adds."""

    path: tuple[Any, ...]
    base: dict[str, Any]
    bound: Bound
    rule: Callable[[float], bool] = lambda v: True
    files: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return next(str(p) for p in reversed(self.path) if isinstance(p, str))


def _iteration_s(first_s: float = 0.005, step_s: float = 0.001, step_growth_s: float = 0.0, steps: int = 10) -> float:
    """workloads/toy.py: first_s + steps x step_s + step_growth_s x steps x (steps - 1) / 2 must fit in 86,400 s."""
    return first_s + steps * step_s + step_growth_s * steps * (steps - 1) / 2


TRACE_SPAN_S = 2.0
TRACE = "".join(json.dumps({"timestamp": 1000 * i, "input_length": 100, "output_length": 10, "hash_ids": [i]}) + "\n" for i in range(3))
"""A Mooncake trace: three requests over 2 s, 100 input tokens each."""


def _fields() -> list[NumberField]:
    w = ("workloads", 0)
    load = (*w, "load")
    out = []
    measure_rules: dict[str, Callable[[float], bool]] = {
        "min_seconds": lambda v: v <= M,
        "sample_hz": lambda v: 1 / v <= M,
        "max_seconds": lambda v: v >= 1 / 20,
    }
    for name in numeric_fields(MeasureConfig):
        out.append(NumberField(("measure", name), toy_suite(), bound_of(MeasureConfig, name), measure_rules.get(name, lambda v: True)))
    serve = serve_suite()  # poisson, rate 10, requests 5
    out += [
        NumberField((*load, "rate"), serve, bound_of(LoadConfig, "rate"), lambda v: 1 / v <= M and 5 / v <= M),
        NumberField((*load, "requests"), serve, bound_of(LoadConfig, "requests"), lambda v: v / 10 <= M),
        NumberField((*load, "warmup_requests"), serve, bound_of(LoadConfig, "warmup_requests"), lambda v: v + 1 <= 5),
        NumberField((*load, "cooldown_requests"), serve, bound_of(LoadConfig, "cooldown_requests"), lambda v: v + 1 <= 5),
        NumberField((*load, "seed"), serve, bound_of(LoadConfig, "seed")),
        NumberField((*load, "burstiness"), serve_suite(pattern="gamma", burstiness=1.0), bound_of(LoadConfig, "burstiness")),
        NumberField((*load, "duration_s"), serve_suite(requests=None, duration_s=1.0), bound_of(LoadConfig, "duration_s"), lambda v: v <= M and 10 * v >= 1),
        NumberField((*load, "concurrency"), serve_suite(pattern="closed", rate=None, concurrency=2), bound_of(LoadConfig, "concurrency")),
        NumberField((*load, "sizes", "input", "fixed"), serve, bound_of(Distribution, "fixed")),
    ]
    trace = serve_suite(pattern="trace", rate=None, requests=None, sizes=None, trace="trace.jsonl")
    files = (("trace.jsonl", TRACE),)
    out += [
        NumberField((*load, "time_scale"), trace, bound_of(LoadConfig, "time_scale"), lambda v: TRACE_SPAN_S / v <= M, files),
        NumberField((*load, "token_scale"), trace, bound_of(LoadConfig, "token_scale"), lambda v: max(round(100 * v), 1) <= MAX_TOKENS, files),
    ]
    token = Bound(1, False, MAX_TOKENS, False, True)
    uniform = serve_suite(sizes={"input": {"uniform": [4, 8]}, "output": {"fixed": 4}})
    out += [
        NumberField((*load, "sizes", "input", "uniform", 0), uniform, token, lambda v: v <= 8),
        NumberField((*load, "sizes", "input", "uniform", 1), uniform, token, lambda v: v >= 4),
    ]
    capped = serve_suite(sizes={"input": {"lognormal": {"median": 100.0, "sigma": 1.0, "max": 1000}}, "output": {"fixed": 4}})
    uncapped = serve_suite(sizes={"input": {"lognormal": {"median": 100.0, "sigma": 1.0}}, "output": {"fixed": 4}})
    ln = (*load, "sizes", "input", "lognormal")
    out += [
        NumberField((*ln, "median"), capped, bound_of(LogNormal, "median"), lambda v: v <= 1000),
        NumberField((*ln, "sigma"), capped, bound_of(LogNormal, "sigma")),
        NumberField((*ln, "max"), capped, bound_of(LogNormal, "max"), lambda v: v >= 100),
        NumberField((*ln, "median"), uncapped, bound_of(LogNormal, "median"), lambda v: v * math.exp(6) <= MAX_TOKENS),
        NumberField((*ln, "sigma"), uncapped, bound_of(LogNormal, "sigma"), lambda v: 100 * math.exp(6 * v) <= MAX_TOKENS),
    ]
    for name in numeric_fields(SLO):
        out.append(NumberField((*w, "objective", "slo", name), serve, bound_of(SLO, name)))
    out.append(NumberField((*w, "objective", "attainment_target"), serve, bound_of(Objective, "attainment_target")))
    for name in numeric_fields(QoE):
        out.append(NumberField((*w, "objective", "qoe", name), serve, bound_of(QoE, name)))
    toy_rules: dict[str, Callable[[float], bool]] = {
        n: (lambda v, n=n: _iteration_s(**{n: v}) <= 86_400) for n in ("first_s", "step_s", "step_growth_s", "steps")
    }
    from workloads.toy import ToyWorkload
    from workloads.toy_serve import ToyServe

    for name in numeric_fields(ToyWorkload.Params):
        out.append(NumberField((*w, "params", name), toy_suite(), bound_of(ToyWorkload.Params, name), toy_rules.get(name, lambda v: True)))
    for name in numeric_fields(ToyServe.Params):
        out.append(NumberField((*w, "params", name), serve, bound_of(ToyServe.Params, name)))
    return out


def _refuse_only_fields() -> list[NumberField]:
    """Every other built-in workload's numeric params: out of their stated bound they must be refused (inside it, a
    value can still meet a rule of the workload's own, e.g. prompt_len + gen_len within the preset's positions, so only
    the default is expected to pass: see `number_cases`)."""
    from profiler.suite.registry import discover

    out = []
    for name, ep in sorted(discover().items()):
        if name in ("toy", "toy_serve"):
            continue
        cls = ep.load()
        base = serve_suite() if getattr(cls, "requires_load", False) else toy_suite()
        base["workloads"][0]["type"] = name
        required = {k: f.examples[0] for k, f in cls.Params.model_fields.items() if f.is_required() and f.examples}  # e.g. a server's URL
        if required:
            base["workloads"][0]["params"] = required
        for field in numeric_fields(cls.Params):
            out.append(NumberField(("workloads", 0, "params", field), base, bound_of(cls.Params, field), rule=lambda v: False))
    return out


NUMBER_FIELDS = _fields()
REFUSE_ONLY = _refuse_only_fields()


def _render(v: Any, upper: bool) -> str:
    """A YAML scalar for `v` that reads back as the same value (YAML 1.2 floats: 1e-05 is a number)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return ".nan"
    if math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    text = repr(v)
    return text.upper() if upper else text


def _edges(b: Bound) -> list[Any]:
    out: list[Any] = []
    for edge, down in ((b.lo, True), (b.hi, False)):
        if edge is None:
            continue
        if b.integer:
            out += [int(edge), int(edge) + (-1 if down else 1)]
        else:
            out += [
                float(edge),
                math.nextafter(float(edge), -math.inf if down else math.inf),
                edge * (0.5 if down else 2) if edge else (-1e-9 if down else 1e-9),
            ]
    return out


def _inside(b: Bound) -> st.SearchStrategy[Any]:
    lo = b.lo if b.lo is not None else -1e6
    hi = b.hi if b.hi is not None else 1e6
    if b.integer:
        return st.integers(int(math.ceil(lo)), int(math.floor(hi)))
    return st.floats(float(lo), float(hi), exclude_min=b.lo_open, exclude_max=b.hi_open, allow_nan=False)


@st.composite
def number_cases(draw: st.DrawFn) -> Case:
    refuse_only = draw(st.integers(0, 9)) == 0
    field = draw(st.sampled_from(REFUSE_ONLY if refuse_only else NUMBER_FIELDS))
    value = draw(st.one_of(st.sampled_from([*HOSTILE, *_edges(field.bound)]), _inside(field.bound)))
    if refuse_only and field.bound.holds(value):  # only the default is known to pass a workload's own rules
        value = field.bound.lo - 1 if field.bound.lo is not None else float("nan")
    accept = field.bound.holds(value) and field.rule(value)
    suite = copy.deepcopy(field.base)
    text = _render(value, upper=draw(st.booleans()))
    how = draw(st.sampled_from(["file", "set", "sweep"] if field.path[2:3] == ("params",) else ["file", "set"]))
    argv = ["validate", SUITE]
    if how == "set":
        dotted = ".".join(str(p) for p in field.path)
        argv += ["--set", f"{dotted}={text}"]
        _drop(suite, field.path)
    elif how == "sweep":
        _drop(suite, field.path)
        suite["workloads"][0]["sweep"] = {field.path[-1]: ["__V__"]}
    else:
        _put(suite, field.path, "__V__")
    body = yaml.safe_dump(suite, sort_keys=False).replace("'__V__'", text).replace("__V__", text)
    return Case(
        "number",
        argv,
        "accept" if accept else "refuse",
        files={SUITE: body, **dict(field.files)},
        needles=() if accept else (field.key,),
        label=f"{'.'.join(map(str, field.path))} = {text} by {how}",
    )


def _put(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {}) if isinstance(data, dict) else data[key]
    data[path[-1]] = value


def _drop(data: Any, path: tuple[Any, ...]) -> None:
    """Leave the key to `--set` (a list item stays: `--set` replaces it)."""
    for key in path[:-1]:
        if isinstance(data, dict) and key not in data:
            return
        data = data[key]
    if isinstance(data, dict):
        data.pop(path[-1], None)


# ---------------------------------------------------------------- YAML structure


@st.composite
def alias_cases(draw: st.DrawFn) -> Case:
    """Billion laughs of `levels` x `width` under a sweep (in the file or in --set), and anchors used as meant."""
    levels, width = draw(st.integers(1, 9)), draw(st.integers(2, 9))
    lines = [f"x0: &a0 [{', '.join(['1'] * width)}]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    expanded = sum(width**k for k in range(1, levels + 1)) * 1  # the values every level holds, aliases expanded
    flow = "{" + ", ".join(line.replace(": ", ": ", 1) for line in lines) + "}"
    if draw(st.booleans()):
        suite = yaml.safe_dump(toy_suite(), sort_keys=False) + f"  sweep: {{steps: *a{levels - 1}}}\n"
        suite = suite.replace("  type: toy\n", f"  type: toy\n  params: {{x: {flow}}}\n")
        argv = ["validate", SUITE]
    else:
        suite = yaml.safe_dump(toy_suite(), sort_keys=False)
        argv = ["validate", SUITE, "--set", f"workloads.0.params.steps={flow}"]
    needles = ("alias",) if expanded > MAX_ALIAS_VALUES else ()
    return Case("yaml", argv, "refuse", files={SUITE: suite}, needles=needles, label=f"alias bomb {width}^{levels} ({expanded} values)")


@st.composite
def anchor_cases(draw: st.DrawFn) -> Case:
    """Anchors, aliases and merge keys as a suite uses them: shared params and a merged measure block."""
    n = draw(st.integers(1, 20))
    steps = draw(st.integers(0, 50))
    workloads = [f"  - {{name: w{i}, type: toy, params: *p}}" for i in range(1, n)]
    text = "\n".join(
        [
            "name: fz",
            "measure: &m {warmup_iters: 0, min_iters: 1, min_seconds: 0, max_seconds: 5}",
            "workloads:",
            f"  - {{name: w0, type: toy, params: &p {{steps: {steps}, first_s: 1.0e-3}}}}",
            *workloads,
        ]
    )
    return Case("yaml", ["validate", SUITE], "accept", files={SUITE: text + "\n"}, needles=(f"{n} workload",), label=f"{n} workloads sharing an anchor")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _sibling_slots(lines: list[str], i: int) -> list[int]:
    """Where a copy of line i can go and stay in line i's mapping: before a sibling key or where the mapping ends."""
    indent, slots = _indent(lines[i]), []
    for j in range(i + 1, len(lines) + 1):
        if j == len(lines) or _indent(lines[j]) < indent:
            slots.append(j)
            break
        if _indent(lines[j]) == indent and not lines[j].lstrip().startswith("- "):
            slots.append(j)
    return slots


@st.composite
def duplicate_cases(draw: st.DrawFn) -> Case:
    """A key written twice in one mapping: refused, naming the key and both lines."""
    suite = draw(st.sampled_from([serve_suite(), toy_suite(params={"steps": 3, "first_s": 0.001})]))
    lines = yaml.safe_dump(suite, sort_keys=False, default_flow_style=False).splitlines()
    scalar = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("- ")]
    i = draw(st.sampled_from(scalar))
    slot = draw(st.sampled_from(_sibling_slots(lines, i)))
    key = lines[i].split(":", 1)[0].strip()
    out = [*lines[:slot], lines[i], *lines[slot:]]
    return Case(
        "yaml",
        ["validate", SUITE],
        "refuse",
        files={SUITE: "\n".join(out) + "\n"},
        needles=(f"duplicate key '{key}'", f"line {i + 1}", f"{SUITE}:{slot + 1}:"),
        label=f"'{key}' of line {i + 1} again at line {slot + 1}",
    )


@st.composite
def deep_cases(draw: st.DrawFn) -> Case:
    depth = draw(st.integers(1, 3000))
    kind = draw(st.sampled_from(["[", "{a: "]))
    close = "]" if kind == "[" else "}"
    value = kind * depth + "1" + close * depth
    suite = yaml.safe_dump(toy_suite(), sort_keys=False)
    if draw(st.booleans()):
        return Case("yaml", ["validate", SUITE, "--set", f"workloads.0.params.steps={value}"], "refuse", files={SUITE: suite}, label=f"--set nested {depth}")
    suite = suite.replace("  type: toy\n", f"  type: toy\n  params: {{steps: {value}}}\n")
    return Case("yaml", ["validate", SUITE], "refuse", files={SUITE: suite}, needles=("nest",) if depth > MAX_DEPTH else (), label=f"nested {depth}")


HOSTILE_PIECES = ["a", " ", "\x1b[31m", "\n failed: x", "\r", "[red]", "[/red]", "\u202e", "\x07", "\t", "é", ":fire:"]
HOSTILE_TEXT = st.lists(st.sampled_from(HOSTILE_PIECES), min_size=1, max_size=8).map("".join)


@st.composite
def text_cases(draw: st.DrawFn) -> Case:
    """A suite name with control characters validates, and its echo is escaped."""
    name = draw(HOSTILE_TEXT)
    suite = toy_suite()
    suite["name"] = name
    return Case("text", ["validate", SUITE], "accept", files={SUITE: yaml.safe_dump(suite, sort_keys=False)}, label=f"name {name!r}")


# ---------------------------------------------------------------- traces

SECRET = "root:$6$Zq9sECRETpwhash$"


def _azure(rows: list[tuple[str, str, str]]) -> str:
    return "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)


DAMAGE = ("none", "token", "backwards", "date", "header", "deep", "hash", "fraction", "secret")
BAD_TOKENS = ("inf", "nan", "-1", "1e400", str(2**63 - 1), str(2**70), "1e18", "2.5", "x", "")


@st.composite
def trace_cases(draw: st.DrawFn) -> Case:
    """A trace of 2 to 6 requests within 4 s, maybe damaged at one line; read by validate or by run (refused before
    anything runs)."""
    n = draw(st.integers(2, 6))
    fmt = draw(st.sampled_from(["azure", "mooncake"]))
    damage = draw(st.sampled_from(DAMAGE))
    bad = draw(st.integers(0, n - 1))
    if damage == "backwards" and bad == 0 or fmt == "azure" and damage in ("deep", "hash"):
        damage = "none"  # nothing goes backwards from the first line; an Azure CSV has no JSON nor hash ids
    line = bad + (2 if fmt == "azure" else 1)
    times = [0.5 * i for i in range(n)]
    text = _azure_text(draw, times, damage, bad) if fmt == "azure" else _mooncake_text(draw, times, damage, bad)
    needles: tuple[str, ...] = ("trace.txt", f"line {line}")
    secret = None
    if damage == "secret":
        secret = SECRET
    if damage == "header":
        text = SECRET + (",x\n" + text.split("\n", 1)[1] if fmt == "azure" else "\n" + text)
        needles, secret = ("trace.txt", "line 1"), SECRET
    elif damage == "date" and fmt == "mooncake":
        needles = ("trace.txt",)  # a timestamp far from the rest may be named by the line it makes too long a span
    accept = damage == "none"
    suite = serve_suite(pattern="trace", rate=None, requests=None, sizes=None, trace="trace.txt")
    run = not accept and draw(st.booleans())  # `run` only where it must refuse before anything runs
    argv = ["run", SUITE, "-o", "runs", "--no-report"] if run else ["validate", SUITE]
    return Case(
        "trace",
        argv,
        "accept" if accept else "refuse",
        files={SUITE: yaml.safe_dump(suite, sort_keys=False), "trace.txt": text},
        needles=() if accept else needles,
        secret=secret,
        label=f"{fmt} {n} rows, damage {damage} at line {line}",
    )


def _azure_text(draw: st.DrawFn, times: list[float], damage: str, bad: int) -> str:
    rows = [(f"2024-05-10 00:00:{t:09.6f}+00:00", "100", "10") for t in times]
    if damage in ("token", "fraction"):
        value = draw(st.sampled_from(BAD_TOKENS)) if damage == "token" else "2.5"
        rows[bad] = (rows[bad][0], value, rows[bad][2]) if draw(st.booleans()) else (rows[bad][0], rows[bad][1], value)
    elif damage == "backwards":
        rows[bad] = ("2024-05-09 23:59:59+00:00", "100", "10")
    elif damage == "date":
        rows[bad] = (draw(st.sampled_from(["9999-01-01 00:00:00", "0001-01-01 00:00:00", "2024-13-40 99:00:00", "inf", "nan"])), "100", "10")
    elif damage == "secret":  # a recognised trace whose field holds a secret: named by line, never quoted
        column = draw(st.integers(0, 2))
        rows[bad] = tuple(SECRET if k == column else v for k, v in enumerate(rows[bad]))  # type: ignore[assignment]
    return _azure(rows)


def _mooncake_text(draw: st.DrawFn, times: list[float], damage: str, bad: int) -> str:
    objs: list[dict[str, Any]] = [{"timestamp": int(1000 * t), "input_length": 100, "output_length": 10, "hash_ids": [i]} for i, t in enumerate(times)]
    if damage in ("token", "fraction"):
        key = draw(st.sampled_from(["input_length", "output_length"]))
        objs[bad][key] = draw(st.sampled_from([float("inf"), float("nan"), -1, 1e400, 2**63 - 1, 2**70, 1e18, "x", None])) if damage == "token" else 2.5
    elif damage == "backwards":
        objs[bad]["timestamp"] = -5000
    elif damage == "date":
        objs[bad]["timestamp"] = draw(st.sampled_from([float("inf"), 1e300, 2**70, -(2**70), "x"]))
    elif damage == "hash":
        objs[bad]["hash_ids"] = draw(st.sampled_from([[2**70], [1.5], ["x"], 7, [[1]]]))
    elif damage == "secret":
        objs[bad][draw(st.sampled_from(["timestamp", "input_length", "output_length", "hash_ids"]))] = SECRET
    lines = [json.dumps(o) for o in objs]
    if damage == "deep":
        lines[bad] = "{" + '"a":[' * 5000 + "1" + "]" * 5000 + "}"
    return "\n".join(lines) + "\n"


@st.composite
def trace_path_cases(draw: st.DrawFn) -> Case:
    """A trace path that is no trace file: too long, a FIFO, a directory, a device, missing."""
    kind = draw(st.sampled_from(["long", "fifo", "dir", "device", "missing", "nul"]))
    path = {"long": "t" * 5000, "fifo": "fifo", "dir": "folder", "device": os.devnull, "missing": "nope.csv", "nul": "a\x00b"}[kind]
    suite = serve_suite(pattern="trace", rate=None, requests=None, sizes=None, trace=path)

    def setup(folder: Path) -> None:
        if kind == "fifo":
            os.mkfifo(folder / "fifo")
        elif kind == "dir":
            (folder / "folder").mkdir()

    command = draw(st.sampled_from(["validate", "run"]))
    argv = [command, SUITE] + (["-o", "runs"] if command == "run" else [])
    return Case("trace", argv, "refuse", files={SUITE: yaml.safe_dump(suite, sort_keys=False)}, setup=setup, needles=("trace",), label=f"trace path {kind}")


# ---------------------------------------------------------------- outputs


FOREIGN = "a file the profiler did not write\n"


def _check_target(name: str, kind: str) -> Callable[[Path], str]:
    """'' when the target is still what the case made, else what happened to it."""

    def check(folder: Path) -> str:
        target = folder / name
        if kind == "fifo" and not target.is_fifo():
            return "the FIFO was replaced"
        if kind == "dir" and not (target.is_dir() and not target.is_symlink()):
            return "the directory was replaced"
        if kind == "symlink" and not (target.is_symlink() and (folder / "elsewhere.txt").read_text() == FOREIGN):
            return "the symlink or what it points to was replaced"
        if kind == "foreign" and (target.read_text() != FOREIGN):
            return "the foreign file was replaced"
        return ""

    return check


@st.composite
def output_cases(draw: st.DrawFn) -> Case:
    """`report`/`compare`/`run` -o onto something the profiler did not create: refused, the target left as it was."""
    command = draw(st.sampled_from(["report", "compare", "run"]))
    kind = draw(st.sampled_from(["fifo", "dir", "symlink", "foreign"] if command != "run" else ["fifo", "foreign", "symlink"]))
    suffix = draw(st.sampled_from(["", ".html", ".json"])) if command != "run" else ""
    target = "target" + suffix

    def setup(folder: Path) -> None:
        shutil.copytree(GOLDEN, folder / "run", symlinks=True)
        path = folder / target
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "symlink":
            (folder / "elsewhere.txt").write_text(FOREIGN)
            path.symlink_to(folder / "elsewhere.txt")
        else:
            path.write_text(FOREIGN)

    if command == "report":
        argv = ["report", "run", "-o", target]
    elif command == "compare":
        argv = ["compare", "run", "run", "-o", target]
    else:
        argv = ["run", SUITE, "-o", target]
    return Case(
        "output",
        argv,
        "refuse",
        files={SUITE: yaml.safe_dump(toy_suite(), sort_keys=False)},
        setup=setup,
        needles=(target,),
        check=_check_target(target, kind),
        label=f"{command} -o {kind} {target}",
    )


# ---------------------------------------------------------------- damaged run directories

WORKLOAD_FILES = ("summary.json", "error.json", "spans.parquet", "samples.parquet", "requests.parquet", "engine.parquet")


@st.composite
def rundir_cases(draw: st.DrawFn) -> Case:
    """A copy of the golden run with 1 to 3 damages of tests/unit/test_damaged_runs.py (JSON of the wrong type or
    depth, FIFOs, 2 GB files, foreign or broken tables, entries leading outside): `report` exits 0 and names each
    damaged file with the words of its problem. About a second a case (a report is built): the benchmark's class."""
    from tests.unit.test_damaged_runs import DAMAGES, _free_file, apply_batch, copy_run

    chosen = draw(st.lists(st.sampled_from(DAMAGES), min_size=1, max_size=3, unique_by=lambda d: d.id))
    batch: list[tuple[Any, str]] = []
    used: set[str] = set()
    for d in chosen:
        file = _free_file(d, used)
        if file is not None:  # one damage per workload folder: a damage may copy a file another one broke
            folder = file.rpartition("/")[0]
            used |= {file} | ({f"{folder}/{name}" for name in WORKLOAD_FILES} if folder else set())
            batch.append((d, file))

    def setup(folder: Path) -> None:
        apply_batch(copy_run(GOLDEN, folder / "run"), batch)

    return Case(
        "rundir",
        ["report", "run", "-o", "report.html"],
        "accept",
        setup=setup,
        needles=tuple(d.says for d, _ in batch) + tuple(d.named or f for d, f in batch),
        label=", ".join(f"{d.id} at {f}" for d, f in batch),
    )


# ---------------------------------------------------------------- all of them

CLASSES: dict[str, st.SearchStrategy[Case]] = {
    "number": number_cases(),
    "alias": alias_cases(),
    "anchor": anchor_cases(),
    "duplicate": duplicate_cases(),
    "deep": deep_cases(),
    "text": text_cases(),
    "trace": trace_cases(),
    "trace_path": trace_path_cases(),
    "output": output_cases(),
    "rundir": rundir_cases(),
}
WEIGHTS = {"number": 10, "alias": 1, "anchor": 1, "duplicate": 2, "deep": 1, "text": 1, "trace": 5, "trace_path": 1, "output": 2, "rundir": 1}
"""How often each class is drawn (numbers and traces have the most shapes). The fuzz test leaves out `rundir` (a
report a case: tests/unit/test_damaged_runs.py covers every damage there); the benchmark draws them all."""


def any_case(weights: dict[str, int] | None = None) -> st.SearchStrategy[Case]:
    """The classes drawn in proportion to `weights` (default WEIGHTS)."""
    names = [name for name, w in (weights or WEIGHTS).items() for _ in range(w)]
    return st.sampled_from(names).flatmap(lambda name: CLASSES[name])
