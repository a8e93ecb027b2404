"""Work per phase: FLOPs and bytes moved, counted in one extra, untimed pass.

After the measured iterations the child runs one more iteration under
`torch.utils.flop_counter.FlopCounterMode` (FLOPs of the ops it knows: matmuls, convolutions,
attention; SDPA counts ignore causal masking) and a byte counter, with a `mark` that attributes
the counters' growth to each span. Nothing here ever runs inside a timed iteration.

Bytes model (stated in the report): unfused op-level traffic, an upper bound ("counted traffic").
Every aten op is charged the bytes of its tensor inputs and outputs; views and metadata ops move
nothing (NO_TRAFFIC). For a forward pass this counts each weight once per use, the state read
and written (KV cache in attention, SSM state), and activations in and out of every op: an upper
bound on DRAM traffic for the kernels that really ran (fused kernels move less).

Indexing, gather and scatter ops are charged for the rows they touch, not the whole tensor they
index (INDEXED_OPS; without it every decode step was charged the whole embedding table, 1.05 GB
for llama-3.2-1b in fp32 for one 8 KB row per sequence, and a static KV cache's one-token write
the whole cache twice):
- gathers (embedding, index_select, index.Tensor, gather, take): read = the indexed rows (the
  output's size: rows x row bytes) + the index tensors; write = the output;
- in-place scatters (index_copy_, index_put_, index_add_, index_fill_, scatter_, scatter_add_,
  scatter_reduce_): read = the source rows used + the index tensors (+ the destination rows, for
  the accumulating ones: index_add_, index_put_ with accumulate, scatter_add_, scatter_reduce_,
  scatter_ with a reduce), write = the rows written (rows x row bytes);
- copy_ (a slice of a preallocated tensor written in place: `cache[:, :, a:b] = x`): read = the
  source, write = the destination view (not the destination twice);
- the out-of-place forms (index_copy, index_put, scatter, ...) return a new copy of the whole
  input and are charged as any other op: they do read and write all of it.
Transformers 5's Llama decode dispatches `embedding` (the token rows), `cat` (DynamicCache: a
real copy of the whole cache each step, charged in full) and `index_copy_` (StaticCache's
one-token write; `index_put_` on devices without index_copy_).

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

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
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
    "detach_",
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


def _index_bytes(indices: Any, torch: Any) -> int:
    """Bytes of the index tensors of an indexing op (a tensor, or a list with None for a full slice)."""
    return _tensor_bytes(indices, torch)


def _gathered(out: Any, indices: Any, torch: Any) -> tuple[int, int]:
    """A gather: (read, written) = (the rows indexed, i.e. the output's bytes, + the index; the output)."""
    rows = _tensor_bytes(out, torch)
    return rows + _index_bytes(indices, torch), rows


def _indexed_count(shape: tuple[int, ...], indices: list[Any], torch: Any) -> int:
    """Elements of a tensor of `shape` selected by advanced `indices` (aten.index_put_'s list: a long or bool tensor,
    or None for a whole dimension): the broadcast index count x the dimensions no index covers. A bool index counts
    its true entries (a host read; the counting pass is untimed)."""
    counts: list[tuple[int, ...]] = []
    rest, dim = 1, 0
    for ix in indices:
        if ix is None:
            rest *= shape[dim]
            dim += 1
        elif ix.dtype in (torch.bool, torch.uint8):
            counts.append((int(ix.count_nonzero()),))
            dim += ix.dim()
        else:
            counts.append(tuple(ix.shape))
            dim += 1
    rest *= math.prod(shape[dim:])
    return (math.prod(torch.broadcast_shapes(*counts)) if counts else 1) * rest


def _rows_along(tensor: Any, dim: int, index: Any) -> int:
    """Elements in `index.numel()` slices of `tensor` along `dim` (index_fill_'s rows)."""
    per_slice = tensor.numel() // max(tensor.shape[dim], 1) if tensor.dim() else 1
    return index.numel() * per_slice


def _scattered(written: int, element: int, source_used: int, index: Any, accumulate: bool, torch: Any) -> tuple[int, int]:
    """An in-place scatter: `written` elements of `element` bytes; `source_used` bytes of the source read; the
    destination rows read too when the op accumulates into them."""
    read = source_used + _index_bytes(index, torch) + (written * element if accumulate else 0)
    return read, written * element


def _charge_index_put(args: Any, kwargs: Any, torch: Any) -> tuple[int, int]:
    self, indices, values = args[0], args[1], args[2]
    accumulate = bool(args[3] if len(args) > 3 else kwargs.get("accumulate", False))
    written = _indexed_count(tuple(self.shape), list(indices), torch)
    return _scattered(written, self.element_size(), _tensor_bytes(values, torch), indices, accumulate, torch)


def _charge_index_source(accumulate: bool) -> Callable[[Any, Any, Any], tuple[int, int]]:
    """index_copy_(self, dim, index, source) and index_add_(self, dim, index, source, alpha): source's rows written."""

    def charge(args: Any, kwargs: Any, torch: Any) -> tuple[int, int]:
        self, index, source = args[0], args[2], args[3]
        return _scattered(source.numel(), self.element_size(), _tensor_bytes(source, torch), index, accumulate, torch)

    return charge


def _charge_index_fill(args: Any, kwargs: Any, torch: Any) -> tuple[int, int]:
    self, dim, index = args[0], args[1], args[2]
    value = args[3] if len(args) > 3 else None
    return _scattered(_rows_along(self, dim, index), self.element_size(), _tensor_bytes(value, torch), index, False, torch)


def _charge_scatter(accumulate: bool) -> Callable[[Any, Any, Any], tuple[int, int]]:
    """scatter_(self, dim, index, src | value[, reduce]), scatter_add_, scatter_reduce_: one element per index entry;
    a source tensor is read only where the index reaches (index.numel() of its elements)."""

    def charge(args: Any, kwargs: Any, torch: Any) -> tuple[int, int]:
        self, index = args[0], args[2]
        src = args[3] if len(args) > 3 else kwargs.get("src", kwargs.get("value"))
        used = index.numel() * src.element_size() if isinstance(src, torch.Tensor) else 0
        reduces = accumulate or len(args) > 4 or "reduce" in kwargs
        return _scattered(index.numel(), self.element_size(), used, index, reduces, torch)

    return charge


def _charge_copy(args: Any, kwargs: Any, torch: Any) -> tuple[int, int]:
    """copy_(dst, src): read the source, write the destination (a view's own elements only)."""
    return _tensor_bytes(args[1], torch), _tensor_bytes(args[0], torch)


_GATHERS: dict[str, Callable[[Any, Any], Any]] = {
    "embedding": lambda args, kwargs: args[1],
    "index_select": lambda args, kwargs: args[2],
    "index": lambda args, kwargs: args[1],
    "gather": lambda args, kwargs: args[2],
    "take": lambda args, kwargs: args[1],
}
_SCATTERS: dict[str, Callable[[Any, Any, Any], tuple[int, int]]] = {
    "index_put_": _charge_index_put,
    "_index_put_impl_": _charge_index_put,
    "index_copy_": _charge_index_source(accumulate=False),
    "index_add_": _charge_index_source(accumulate=True),
    "index_fill_": _charge_index_fill,
    "scatter_": _charge_scatter(accumulate=False),
    "scatter_add_": _charge_scatter(accumulate=True),
    "scatter_reduce_": _charge_scatter(accumulate=True),
    "copy_": _charge_copy,
}
INDEXED_OPS = tuple(_GATHERS) + tuple(_SCATTERS)
"""The ops charged for the rows they touch (the module docstring gives the rule)."""


def op_bytes(name: str, args: Any, kwargs: dict[str, Any], out: Any, torch: Any) -> tuple[int, int]:
    """(bytes read, bytes written) charged to one aten op by the byte model (module docstring). `name`: the op's
    overload packet name ('embedding', 'index_copy_', 'mm'); args, kwargs, out: as dispatched. An indexing op called
    with arguments its rule does not read (an overload it was not written for) gets the whole charge: the upper bound."""
    if name in NO_TRAFFIC:
        return 0, 0
    try:
        if name in _GATHERS:
            return _gathered(out, _GATHERS[name](args, kwargs), torch)
        if name in _SCATTERS:
            return _SCATTERS[name](args, kwargs, torch)
    except (IndexError, KeyError, AttributeError, TypeError):  # an overload whose arguments the rule does not know: the whole charge
        pass
    return _tensor_bytes(args, torch) + _tensor_bytes(kwargs, torch), _tensor_bytes(out, torch)


def make_byte_counter() -> Any:
    """A TorchDispatchMode that sums the bytes each op moves (op_bytes: inputs + outputs; indexing ops their rows).

    `total`: bytes so far; `by_op`: op name -> bytes (read + written), `read_by_op`: op name -> bytes read."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class ByteCounter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.total = 0
            self.by_op: Counter[str] = Counter()
            self.read_by_op: Counter[str] = Counter()

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = func.overloadpacket.__name__
            read, written = op_bytes(name, args, kwargs, out, torch)
            if read or written:
                self.total += read + written
                self.by_op[name] += read + written
                self.read_by_op[name] += read
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
