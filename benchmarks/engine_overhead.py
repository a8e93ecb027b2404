"""The load driver's cost to the engine it measures: output tokens/s of one continuous-batching manager
(llm_serve) fed the same requests at t=0, bare against under the profiler's load driver, in
interleaved rounds of one process (target: under the driver at most 2% lower).

Bare: `add_request` for every request, then `get_result` until all finished (streaming, as the
driver asks for it). Under the driver: profiler/run/serve.py's `serve` with a closed loop at a
concurrency of all requests (every request sent at once), its engine sampler at 20 Hz and its
collect loop, writing requests.parquet and spans into a temporary directory. Tokens/s = output
tokens / (last token - first submission). The parent's process sampler runs in another process
and is not included (benchmarks/sampler.py measures it).

    python benchmarks/engine_overhead.py [--requests 16] [--input 64] [--output 32] [--rounds 4] [--preset llama-tiny]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from profiler.loadconfig import LoadConfig
from profiler.plugin import ServedRequest
from profiler.run.child import SetupContextImpl
from profiler.run.serve import serve
from profiler.suite.config import MeasureConfig
from workloads.llm_serve import LLMServe


def bare_round(engine: LLMServe, n: int, input_tokens: int, output_tokens: int, base: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        engine.submit(ServedRequest(index=base + i, input_tokens=input_tokens, output_tokens=output_tokens))
    last = 0
    done = 0
    while done < n:
        for rec in engine.collect(0.05):
            done += 1
            last = max(last, rec["token_ns"][-1])
    elapsed = (last - engine.offset_ns) / 1e9 - start
    return n * output_tokens / elapsed


def driver_round(engine: LLMServe, n: int, input_tokens: int, output_tokens: int, workdir: Path) -> float:
    load = LoadConfig.model_validate(
        {"pattern": "closed", "concurrency": n, "requests": n, "sizes": {"input": {"fixed": input_tokens}, "output": {"fixed": output_tokens}}}
    )
    facts = serve(engine, load, None, MeasureConfig.model_validate({"max_seconds": 600, "sample_hz": 20}), workdir, lambda done, total: None)
    import pandas as pd

    r = pd.read_parquet(workdir / "requests.parquet")
    first = r["sent_ns"].min()
    last = r["token_ns"].map(lambda t: t[-1]).max()
    assert facts.status_counts == {"finished": n}, facts.status_counts
    return n * output_tokens / ((last - first) / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--input", type=int, default=64)
    parser.add_argument("--output", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--preset", default="llama-tiny")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    engine = LLMServe(LLMServe.Params(preset=args.preset, page_size=32, kv_cache_tokens=max(4096, 2 * args.requests * (args.input + args.output))))
    with tempfile.TemporaryDirectory() as tmp:
        engine.setup(SetupContextImpl(args.device, 0, tmp))
        print(f"{args.requests} requests of {args.input} + {args.output} tokens at t=0, {args.preset} on {args.device}, {os.cpu_count()} cores")
        bare, driven = [], []
        try:
            for k in range(args.rounds):
                bare.append(bare_round(engine, args.requests, args.input, args.output, base=10_000 * (k + 1)))
                d = Path(tmp) / f"round-{k}"
                d.mkdir()
                driven.append(driver_round(engine, args.requests, args.input, args.output, d))
                print(f"  round {k + 1}: bare {bare[-1]:.1f} tokens/s, under the driver {driven[-1]:.1f} tokens/s")
        finally:
            engine.teardown()
    b, d = statistics.median(bare), statistics.median(driven)
    print(f"median: bare {b:.1f} tokens/s, under the driver {d:.1f} tokens/s: {100 * (d / b - 1):+.1f}% (target: no lower than -2%)")


if __name__ == "__main__":
    main()
