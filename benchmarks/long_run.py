"""A long run at a fast step rate keeps the child's memory flat (a benchmark, not a test).

Runs the toy workload (1,000 steps per iteration at 0.1 ms each: about 10,000 spans a second)
under the profiler for --minutes (default 10), then reads the child's RSS from samples.parquet
and prints it at the start and the end of measurement, and the growth in between. Spans are
streamed to disk in ~1 s batches, so it should stay flat (target: growth under 5%).
Usage: python benchmarks/long_run.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    seconds = args.minutes * 60
    suite = f"""
name: long-run
device: cpu
measure: {{warmup_iters: 1, min_iters: 1, min_seconds: {seconds}, max_seconds: {seconds + 60}, sample_hz: 5, count_work: false, trace_ops: false}}
workloads:
  - {{name: toy, type: toy, params: {{first_s: 0.0001, step_s: 0.0001, steps: 1000}}}}
"""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "suite.yaml").write_text(suite)
        subprocess.run(
            [sys.executable, "-m", "profiler", "run", str(Path(tmp) / "suite.yaml"), "-o", tmp, "--no-report"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL
        )
        run_dir = next(p for p in Path(tmp).iterdir() if p.is_dir())
        import pandas as pd

        samples = pd.read_parquet(run_dir / "toy" / "samples.parquet")
        spans = pd.read_parquet(run_dir / "toy" / "spans.parquet", columns=["phase", "start_ns", "warmup"])
    measured = spans.loc[~spans["warmup"]]
    t0, t1 = measured["start_ns"].min(), measured["start_ns"].max()
    window = samples.loc[(samples["t_ns"] >= t0) & (samples["t_ns"] <= t1), "proc_rss_bytes"]
    tenth = max(1, len(window) // 10)
    start, end = window.iloc[:tenth].median(), window.iloc[-tenth:].median()
    print(f"toy at ~10,000 spans/s for {args.minutes:g} min: {len(spans):,} spans stored")
    print(f"  child RSS: first tenth {start / 2**20:.1f} MiB, last tenth {end / 2**20:.1f} MiB, growth {end / start - 1:+.1%} (target < 5%)")


if __name__ == "__main__":
    main()
