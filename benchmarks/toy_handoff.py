"""The load driver's hand-off to an engine: from the driver recording a request as sent (`sent_ns`) to the engine
seeing it (`toy_serve` stamps its own clock as it is submitted), measured on toy_serve, whose every other time is
arithmetic. TTFT on toy_serve = (sent - arrival) + hand-off + queue_s + prefill_s; this prints the hand-off's
median, p90 and max over the requests of an open loop (Poisson), in-process, as the child runs it.

    python benchmarks/toy_handoff.py [--requests 500] [--rate 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.loadconfig import LoadConfig
from profiler.run.child import SetupContextImpl
from profiler.run.serve import serve
from profiler.suite.config import MeasureConfig
from workloads.toy_serve import ToyServe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()
    params = ToyServe.Params(queue_s=0.01, prefill_s=0.02, token_s=0.005)
    engine = ToyServe(params)
    sizes = {"input": {"fixed": 16}, "output": {"fixed": 4}}
    load = LoadConfig.model_validate({"pattern": "poisson", "rate": args.rate, "requests": args.requests, "sizes": sizes})
    with tempfile.TemporaryDirectory() as tmp:
        engine.setup(SetupContextImpl("cpu", 0, tmp))
        serve(engine, load, None, MeasureConfig.model_validate({"max_seconds": 600}), Path(tmp), lambda done, total: None)
        r = pd.read_parquet(Path(tmp) / "requests.parquet")
    handoff = (r["scheduled_ns"] - round(params.queue_s * 1e9) - r["sent_ns"]).to_numpy(dtype=float) / 1e3
    p50, p90 = np.percentile(handoff, [50, 90])  # numpy's linear interpolation
    print(f"{len(handoff)} requests at {args.rate:g} req/s (Poisson), {os.cpu_count()} cores: driver -> engine hand-off")
    print(f"  median {p50:.1f} µs, p90 {p90:.1f} µs, max {handoff.max():.1f} µs")


if __name__ == "__main__":
    main()
