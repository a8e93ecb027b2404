"""The sampler's achieved rate and CPU cost (a benchmark, not a test).

Samples a busy child process at the requested rate (default 100 Hz) for a while, the way the
runner does, and prints the achieved rate (target: at least 95 Hz at 100 Hz requested) and the
sampler's CPU cost as a share of one core (target: under 2%), measured as this process's CPU time
over wall time while its main thread only waits.
Usage: python benchmarks/sampler.py [--hz 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time

import pandas as pd

from profiler.measure.sampler import SAMPLE_SCHEMA, ProcessSampler
from profiler.measure.store import SAMPLES, PartWriter, merge_parts


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hz", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.001)"])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sampler = ProcessSampler(child.pid, args.hz, PartWriter(tmp, SAMPLES, schema=SAMPLE_SCHEMA))
            cpu0, t0 = cpu_seconds(), time.monotonic()
            sampler.start()
            time.sleep(args.seconds)
            cpu1, t1 = cpu_seconds(), time.monotonic()  # steady-state sampling only
            sampler.stop()
            flush_cpu = cpu_seconds() - cpu1  # the one-off write of the rows at the end
            merge_parts(tmp, SAMPLES)
            samples = pd.read_parquet(f"{tmp}/samples.parquet")
    finally:
        child.kill()
    t = samples["t_ns"].to_numpy()
    achieved = (len(t) - 1) / ((t[-1] - t[0]) / 1e9)
    gaps = (t[1:] - t[:-1]) / 1e6
    print(f"sampler at {args.hz:g} Hz requested for {args.seconds:g} s (procfs reader on a child process; no GPU here)")
    print(f"  achieved rate: {achieved:.1f} Hz   (target >= {0.95 * args.hz:.0f} Hz); {len(t)} rows")
    print(f"  interval p50 / p99 / max: {pd.Series(gaps).quantile(0.5):.2f} / {pd.Series(gaps).quantile(0.99):.2f} / {gaps.max():.2f} ms")
    print(f"  sampler CPU cost: {(cpu1 - cpu0) / (t1 - t0):.2%} of one core while sampling   (target < 2%)")
    print(f"  writing the rows at the end: {flush_cpu * 1e3:.0f} ms of CPU, once per workload")


if __name__ == "__main__":
    main()
