"""How much the profiler perturbs what it measures (a benchmark, not a test).

1. Per-token latency of the llama-tiny decode loop, measured bare (a plain loop timed with
   perf_counter) and under the profiler's span recorder with default settings (the workload's
   own code path: spans, attributes, state bytes measured after each step), interleaved round
   by round in one process so machine noise hits both alike. Prints the median ratio
   (target: at most 1.02) and the ratio of whole-iteration wall time (bookkeeping included).
2. The cost of one span on this machine, in microseconds (target: under 2 us on CPU).

The sampler is not part of this: it runs in the parent process, outside the measured one.
Usage: python benchmarks/overhead.py [--rounds 30] [--gen-len 64] [--prompt-len 128]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def bare_iteration(model, input_ids, gen_len, cache_cls, cache_kw):
    """The decode loop with nothing but perf_counter: per-token latencies and wall time (s)."""
    latencies = []
    cache = cache_cls(config=model.config)  # per request, as the workload does
    t0 = time.perf_counter()
    out = model(input_ids=input_ids, **{cache_kw: cache}, use_cache=True, logits_to_keep=1)
    token = out.logits[:, -1].argmax(-1)
    token.cpu()
    for _ in range(1, gen_len):
        t = time.perf_counter()
        out = model(input_ids=token[:, None], **{cache_kw: cache}, use_cache=True)
        token = out.logits[:, -1].argmax(-1)
        token.cpu()
        latencies.append(time.perf_counter() - t)
    return latencies, time.perf_counter() - t0


def span_cost_us(n: int = 200_000) -> tuple[float, float]:
    from profiler.measure.spans import SpanRecorder
    from profiler.measure.store import SPANS, PartWriter

    with tempfile.TemporaryDirectory() as tmp:
        rec = SpanRecorder(PartWriter(tmp, SPANS, max_rows=10**9), flush_every_s=1e9)
        mark = rec.mark
        t = time.perf_counter_ns()
        for _ in range(n):
            pass
        empty = time.perf_counter_ns() - t
        t = time.perf_counter_ns()
        for i in range(n):
            with mark("step", units=1, position=i):
                pass
        spans = time.perf_counter_ns() - t
        t = time.perf_counter_ns()
        rec.end_iteration()  # row building, once per iteration, outside timed regions
        rows = time.perf_counter_ns() - t
    return (spans - empty) / n / 1e3, rows / n / 1e3


class _NoNvtx:
    """Ablation only: NVTX calls that do nothing."""

    def range_push(self, name: str) -> None: ...
    def range_pop(self) -> None: ...


class _NoEvent:
    """Ablation only: CUDA events that are never recorded (device time reads 0)."""

    def record(self) -> None: ...
    def synchronize(self) -> None: ...
    def elapsed_time(self, other: object) -> float:
        return 0.0


def make_recorder(variant: str, writer, torch):
    """The profiler's recorder for the device, or (on CUDA) one with a part switched off."""
    from profiler.measure.spans import CudaSpanRecorder, SpanRecorder

    if variant == "cpu-recorder":
        return SpanRecorder(writer)
    recorder = CudaSpanRecorder(writer, torch)
    if variant == "no-nvtx":
        recorder.nvtx = _NoNvtx()
    elif variant == "no-events":
        recorder.take_events = lambda: (_NoEvent(), _NoEvent())
    return recorder


def measure_variant(variant, args, workload, torch, tmp):
    """Interleaved rounds of bare vs profiled; returns (per-token ratio, wall ratio, bare, prof)."""
    import pandas as pd
    from transformers import DynamicCache

    from profiler.measure.store import SPANS, PartWriter, merge_parts
    from workloads.decode_loop import cache_argument

    model, ids = workload.model, workload.input_ids
    cache_kw = cache_argument(type(model))
    recorder = make_recorder(variant, PartWriter(tmp, SPANS, journal=True), torch)  # as the child writes: journal, batching, flush
    bare_tokens, bare_wall, prof_wall = [], [], []
    with torch.inference_mode():
        for _ in range(3):  # warm both paths
            bare_iteration(model, ids, args.gen_len, DynamicCache, cache_kw)
            recorder.run_iteration(workload, -1, warmup=True)
        for r in range(args.rounds):
            for which in (0, 1) if r % 2 == 0 else (1, 0):  # alternate who goes first
                if which == 0:
                    lat, wall = bare_iteration(model, ids, args.gen_len, DynamicCache, cache_kw)
                    bare_tokens.append(statistics.median(lat))
                    bare_wall.append(wall)
                else:
                    t = time.perf_counter()
                    recorder.run_iteration(workload, r, warmup=False)
                    prof_wall.append(time.perf_counter() - t)
    recorder.flush()
    merge_parts(tmp, SPANS)
    spans = pd.read_parquet(f"{tmp}/spans.parquet").query("phase == 'decode_step' and not warmup")
    per_iteration = ((spans["end_ns"] - spans["start_ns"]) / 1e9).groupby(spans["iteration"]).median()
    prof_tokens = per_iteration.sort_index().to_numpy()
    ratio = float(np.median(prof_tokens / np.array(bare_tokens)))
    wall_ratio = float(np.median(np.array(prof_wall) / np.array(bare_wall)))
    return ratio, wall_ratio, float(np.median(bare_tokens)), float(np.median(prof_tokens))


class _NoMark:
    """The bare VLA path: the policy's own mark calls do nothing."""

    def __call__(self, *args, **kwargs):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def measure_vla(rounds: int, device: str) -> tuple[float, float, float]:
    """Inference latency of the vla-tiny flow policy, bare (perf_counter) vs inside profiler spans."""
    import torch

    from profiler.measure.spans import SpanRecorder
    from profiler.measure.store import SPANS, PartWriter
    from profiler.run.child import SetupContextImpl
    from workloads.vla import VLA

    vla = VLA(VLA.Params(preset="vla-tiny", camera_resolution=[64, 64]))
    vla.setup(SetupContextImpl(device, 0, tempfile.gettempdir()))
    pixels = vla._preprocess(vla.frames[0])
    bare, profiled = [], []
    with tempfile.TemporaryDirectory() as tmp:
        recorder = SpanRecorder(PartWriter(tmp, SPANS, max_rows=10**9), flush_every_s=1e9)  # rows stay readable here

        class OneCall:
            def run_once(self, mark):
                with mark("infer"):
                    vla.policy.infer(pixels, vla.instruction, vla.noise, mark)

        for r in range(rounds + 3):
            t = time.perf_counter()
            vla.policy.infer(pixels, vla.instruction, vla.noise, _NoMark())
            b = time.perf_counter() - t
            recorder.run_iteration(OneCall(), r, warmup=r < 3)
            span = [row for row in recorder.writer.rows if row["phase"] == "infer" and row["iteration"] == r][-1]
            if r >= 3:
                bare.append(b)
                profiled.append((span["end_ns"] - span["start_ns"]) / 1e9)
    del torch
    ratios = np.array(profiled) / np.array(bare)
    return float(np.median(bare)), float(np.median(profiled)), float(np.median(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--gen-len", type=int, default=64)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (CUDA adds events, NVTX and allocator peaks per span)")
    parser.add_argument("--ablate", action="store_true", help="on CUDA, also measure with NVTX off, events off, and the plain CPU recorder")
    args = parser.parse_args()
    # First, before torch runs anything: its OpenMP workers spin after each op and would bill
    # their spinning to whatever runs next on a 2-core machine.
    span_us, row_us = span_cost_us()

    import torch

    from profiler.run.child import SetupContextImpl
    from workloads.llm_decode import LLMDecode

    torch.manual_seed(0)
    workload = LLMDecode(LLMDecode.Params(preset="llama-tiny", prompt_len=args.prompt_len, gen_len=args.gen_len))
    workload.setup(SetupContextImpl(args.device, 0, tempfile.gettempdir()))
    on_cuda = args.device.startswith("cuda")
    variants = ["default"] + (["no-nvtx", "no-events", "cpu-recorder"] if on_cuda and args.ablate else [])
    print(f"llama-tiny decode on {args.device}, prompt {args.prompt_len}, gen {args.gen_len}, {args.rounds} interleaved rounds")
    for variant in variants:
        with tempfile.TemporaryDirectory() as tmp:
            ratio, wall_ratio, bare, prof = measure_variant(variant if on_cuda else "cpu-recorder", args, workload, torch, tmp)
        print(
            f"  [{variant}] per-token latency bare {bare * 1e3:.3f} ms, profiled {prof * 1e3:.3f} ms; "
            f"median ratio per token {ratio:.4f} (target <= 1.02); whole-iteration wall ratio {wall_ratio:.4f}"
        )
    bare, prof, ratio = measure_vla(args.rounds * 3, args.device)
    print(f"  [vla-tiny inference] bare {bare * 1e3:.3f} ms, profiled {prof * 1e3:.3f} ms; median ratio {ratio:.4f} (target <= 1.02)")
    print(f"  cost of one span: {span_us:.2f} us   (target < 2 us on CPU); storing its row at iteration end: {row_us:.2f} us")


if __name__ == "__main__":
    main()
