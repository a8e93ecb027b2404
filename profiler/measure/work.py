"""Work per phase: FLOPs and bytes moved, counted in one extra, untimed pass.

After the measured iterations the child runs one more iteration under
`torch.utils.flop_counter.FlopCounterMode` (FLOPs of the ops it knows: matmuls, convolutions,
attention; SDPA counts ignore causal masking) and a byte counter, with a `mark` that attributes
the counters' growth to each span. Nothing here ever runs inside a timed iteration.

Bytes model (stated in the report): unfused op-level traffic. Every aten op is charged the bytes
of its tensor inputs and outputs; views and metadata ops move nothing. For a forward pass this
counts each weight once per use, the state read and written (KV cache in attention, SSM state),
and activations in and out of every op: an upper bound on DRAM traffic for the kernels that
really ran (fused kernels move less).

Workloads add FLOPs the counter cannot see (elementwise recurrences such as the selective scan)
as the span attribute `analytic_flops`, kept separate and labelled analytic.

The counters are torch dispatch modes, which are thread-local: only spans opened on the thread
that runs the pass are counted. A span opened on another thread (an async VLA's inference
worker) is left out rather than charged with whatever the main thread did meanwhile; its phase is
counted from the same phase's spans on the main thread where there are any (an async episode
starts with one inference on the main thread), and listed as uncounted where there are none.
A main-thread span during which another thread's span ran is flagged `misses_other_threads`:
its count holds only its own thread's work.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .progress import note_span_end

NO_TRAFFIC = {
    "view",
    "_unsafe_view",
    "t",
    "transpose",
    "expand",
    "slice",
    "select",
    "reshape",
    "permute",
    "unsqueeze",
    "squeeze",
    "as_strided",
    "detach",
    "alias",
    "lift_fresh",
    "_reshape_alias",
    "unbind",
    "split",
    "split_with_sizes",
    "chunk",
    "empty",
    "empty_like",
    "empty_strided",
    "zeros_like",
    "new_empty",
    "size",
    "stride",
    "sym_size",
    "is_same_size",
}


def _tensor_bytes(value: Any, torch: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v, torch) for v in value)
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, torch) for v in value.values())
    return 0


def make_byte_counter() -> Any:
    """A TorchDispatchMode that sums input + output tensor bytes of every op that moves data."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class ByteCounter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.total = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__ not in NO_TRAFFIC:
                self.total += _tensor_bytes(args, torch) + _tensor_bytes(kwargs or {}, torch) + _tensor_bytes(out, torch)
            return out

    return ByteCounter()


def extra_flop_formulas() -> dict[Any, Any]:
    """FLOP formulas for ops FlopCounterMode leaves at zero: the CPU SDPA kernel gets the same
    formula torch uses for its CUDA flash/efficient kernels (causal masking ignored, as there)."""
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    def sdpa(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(query, key, value)

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {op: sdpa} if op is not None else {}


class CountingSpan:
    """A span of the counting pass: records the counters' growth over its body."""

    def __init__(self, recorder: WorkRecorder, phase: str, units: float, attrs: dict[str, Any]) -> None:
        self.recorder, self.phase, self.units, self.attrs = recorder, phase, units, attrs
        self.counted = threading.get_ident() == recorder.thread  # the modes see only their own thread's ops

    def __enter__(self) -> CountingSpan:
        if not self.counted:
            self.recorder.other_thread_event(opened=True)
            return self
        self.flops0, self.bytes0 = self.recorder.read()
        self.t0 = time.monotonic_ns()
        self.others0 = (self.recorder.others_open, self.recorder.other_events)
        return self

    def __exit__(self, *exc: Any) -> bool:
        note_span_end()
        if not self.counted:
            self.recorder.other_thread_phases.add(self.phase)
            self.recorder.other_thread_event(opened=False)
            return False
        flops, moved = self.recorder.read()
        others_open, other_events = self.others0
        self.recorder.rows.append(
            {
                "phase": self.phase,
                "index": len(self.recorder.rows),
                "units": float(self.units),
                "flops_counted": flops - self.flops0,
                "bytes_moved": moved - self.bytes0,
                "traced_s": (time.monotonic_ns() - self.t0) / 1e9,
                "misses_other_threads": others_open > 0 or other_events != self.recorder.other_events,
                "_attrs": self.attrs,
            }
        )
        return False


class WorkRecorder:
    """Runs one iteration under the counters and returns one row per span."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.flop_mode: Any = None
        self.byte_mode: Any = None
        self.thread = threading.get_ident()
        self.other_thread_phases: set[str] = set()
        self.others_open = 0  # spans open on other threads now
        self.other_events = 0  # spans opened or closed on other threads so far
        self.lock = threading.Lock()

    def other_thread_event(self, opened: bool) -> None:
        with self.lock:
            self.others_open += 1 if opened else -1
            self.other_events += 1

    @property
    def uncounted_phases(self) -> list[str]:
        """Phases whose spans all ran on other threads: no count for them."""
        return sorted(self.other_thread_phases - {r["phase"] for r in self.rows})

    def read(self) -> tuple[int, int]:
        return int(self.flop_mode.get_total_flops()), int(self.byte_mode.total)

    def mark(self, phase: str, units: float = 0, **attrs: Any) -> CountingSpan:
        return CountingSpan(self, phase, units, attrs)

    def count(self, workload: Any) -> list[dict[str, Any]]:
        from torch.utils.flop_counter import FlopCounterMode

        self.flop_mode = FlopCounterMode(display=False, custom_mapping=extra_flop_formulas())
        self.byte_mode = make_byte_counter()
        self.thread = threading.get_ident()
        with self.flop_mode, self.byte_mode:
            with self.mark("iteration"):
                workload.run_once(self.mark)
        rows = []
        for row in self.rows:
            attrs = row.pop("_attrs")  # attributes set after the span closed are here too
            row["analytic_flops"] = float(attrs.get("analytic_flops", 0.0))
            row["position"] = attrs.get("position")
            rows.append(row)
        return rows
