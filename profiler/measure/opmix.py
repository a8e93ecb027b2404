"""Operator mix per phase, from one extra traced iteration (torch.profiler), never the timed one.

Each workload span becomes a `record_function("phase::<name>")` range. Every profiler op event
is attributed to every phase that encloses it (a phase's mix includes its nested phases', as its
FLOP count does: `infer` holds `vision`, `prefix` and `action`; the iteration holds everything)
and to the category of its outermost op below the innermost phase (the op the model called: the
bias copy inside `aten::linear` counts as matmul). Self times are summed, so nothing is counted
twice within a phase:
- on CPU, self CPU time of ops; a phase's own self time and its nested phases' (Python,
  framework glue outside any op) is its own category, `host/framework`;
- on CUDA, self device time of the kernels each op launched, the number of kernel launches, and
  the device-idle fraction of the phase: 1 - kernel time / phase wall time (kernels of one stream
  do not overlap; more streams would make this a lower bound).
The trace is exported as Chrome/Perfetto JSON (trace.json.gz, with `distributedInfo.rank` so
Holistic Trace Analysis reads it). The traced iteration's wall time against the timed median is
reported, so nobody mistakes traced timings for real ones.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from .progress import note_span_end

PREFIX = "phase::"
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("attention", re.compile(r"scaled_dot_product|flash_attention|efficient_attention|_attention|softmax")),
    ("matmul/GEMM", re.compile(r"aten::(mm|addmm|bmm|baddbmm|matmul|linear|einsum|_addmm_activation|addbmm)\b")),
    ("convolution", re.compile(r"conv|cudnn_convolution")),
    ("scan/recurrence", re.compile(r"scan|selective|cumsum|cumprod|ssd|state_update|aten::(gru|lstm|rnn_tanh|rnn_relu)")),
    (
        "normalization/elementwise",
        re.compile(
            r"norm|aten::(add|sub|mul|div|silu|gelu|relu|exp|log|sigmoid|tanh|pow|rsqrt|sqrt|neg|clamp|where|softplus|mean|sum|argmax|max|min|sin|cos|erf|lerp|addcmul)"
        ),
    ),
    (
        "memory copy",
        re.compile(
            r"copy|cat|clone|contiguous|aten::to\b|_to_copy|index|gather|scatter|stack|embedding|fill|zero|pad|interpolate|upsample|repeat|roll|flip|narrow"
        ),
    ),
]
HOST = "host/framework"
TRACE_FILE = "trace.json.gz"


def categorize(op: str) -> str:
    for name, pattern in CATEGORIES:
        if pattern.search(op):
            return name
    return "other"


class TraceSpan:
    def __init__(self, phase: str, units: float, attrs: dict[str, Any]) -> None:
        from torch.profiler import record_function

        self.attrs = attrs
        self.units = units
        self._rf = record_function(PREFIX + phase)

    def __enter__(self) -> TraceSpan:
        self._rf.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        self._rf.__exit__(*exc)
        note_span_end()
        return False


def trace_mark(phase: str, units: float = 0, **attrs: Any) -> TraceSpan:
    return TraceSpan(phase, units, attrs)


def trace_iteration(workload: Any, device: str, workdir: Path) -> dict[str, Any]:
    """Run one traced iteration; return the per-phase mix and write trace.json."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    t0 = time.monotonic_ns()
    with profile(activities=activities) as prof:
        with trace_mark("iteration"):
            workload.run_once(trace_mark)
    traced_s = (time.monotonic_ns() - t0) / 1e9
    mix = attribute(prof.events(), cuda)
    raw = workdir / ".trace.raw.json"
    prof.export_chrome_trace(str(raw))
    trace_path = workdir / TRACE_FILE
    _mark_rank_and_compress(raw, trace_path)
    out = {"phases": mix, "traced_iteration_s": traced_s, "trace_file": trace_path.name, "time_basis": "device kernel time" if cuda else "CPU self time"}
    why = no_kernels(mix) if cuda else None
    if why:
        out["device_unavailable"] = why
    return out


def no_kernels(mix: dict[str, Any]) -> str | None:
    """On CUDA, a trace without a single kernel means the device side was not recorded (CUPTI
    unavailable), not an idle device: the device columns become unavailable, with this reason."""
    if any(entry.get("kernel_launches") for entry in mix.values()):
        return None
    for entry in mix.values():
        entry.update(kernel_launches=None, device_idle_fraction=None, time_us_by_category={}, share_by_category={}, dominant_category=None)
    return (
        "the trace recorded no CUDA kernel: the profiler's device side (CUPTI) did not record; "
        "kineto's own messages are silenced in the child, rerun with KINETO_LOG_LEVEL=2 to see them"
    )


def attribute(events: Any, cuda: bool) -> dict[str, Any]:
    """Per phase (inclusive of its nested phases): time by category, shares, and on CUDA launches and idle fraction."""
    out: dict[str, dict[str, Any]] = {}
    walls: dict[str, float] = {}
    for e in events:
        name = e.name
        if name.startswith(PREFIX):
            phase = name[len(PREFIX) :]
            walls[phase] = walls.get(phase, 0.0) + (e.time_range.end - e.time_range.start)
            if not cuda:
                for owner in [phase, *_phases_above(e)]:
                    _add(out, owner, HOST, e.self_cpu_time_total)
            continue
        phases, top = _owners(e)
        if not phases:
            continue
        category = categorize(top)
        micros = getattr(e, "self_device_time_total", 0.0) if cuda else e.self_cpu_time_total
        launches = len(getattr(e, "kernels", []) or []) if cuda else 0
        for phase in dict.fromkeys(phases):  # a phase nested in itself counts once
            _add(out, phase, category, micros)
            if cuda:
                out[phase]["kernel_launches"] = out[phase].get("kernel_launches", 0) + launches
    result = {}
    for phase, entry in out.items():
        times = entry["time_us_by_category"]
        total = sum(times.values())
        result[phase] = {
            "time_us_by_category": times,
            "share_by_category": {k: v / total for k, v in times.items()} if total else {},
            "dominant_category": max(times, key=times.get) if total else None,
            "wall_us": walls.get(phase),
        }
        if cuda:
            result[phase]["kernel_launches"] = entry.get("kernel_launches", 0)
            wall = walls.get(phase)
            result[phase]["device_idle_fraction"] = max(0.0, 1 - total / wall) if wall else None
    return result


def _owners(event: Any) -> tuple[list[str], str]:
    """Every phase above `event`, innermost first, and the outermost op between it and the innermost."""
    top = event.name
    parent = event.cpu_parent
    while parent is not None and not parent.name.startswith(PREFIX):
        top = parent.name
        parent = parent.cpu_parent
    if parent is None:
        return [], top
    return [parent.name[len(PREFIX) :], *_phases_above(parent)], top


def _phases_above(event: Any) -> list[str]:
    """The phases enclosing `event`, innermost first."""
    out = []
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(PREFIX):
            out.append(parent.name[len(PREFIX) :])
        parent = parent.cpu_parent
    return out


def _add(out: dict[str, Any], phase: str, category: str, micros: float) -> None:
    entry = out.setdefault(phase, {"time_us_by_category": {}})
    times = entry["time_us_by_category"]
    times[category] = times.get(category, 0.0) + float(micros or 0.0)


def _mark_rank_and_compress(raw: Path, target: Path) -> None:
    """HTA needs distributedInfo.rank in each trace (a single process is rank 0); HTA and
    Perfetto both read gzipped JSON, a tenth of the size."""
    import gzip

    from .store import atomic_write_bytes

    data = json.loads(raw.read_text())
    data.setdefault("distributedInfo", {"rank": 0})
    atomic_write_bytes(target, gzip.compress(json.dumps(data).encode(), compresslevel=6))
    raw.unlink()
