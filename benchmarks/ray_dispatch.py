"""The Ray executor's cost: an 8-point toy sweep run locally and on a local 2-worker Ray cluster.

Prints each run's wall time, the sum of its points' own child times (spawn to exit, summary.json `wall_s`), and the
per-point overhead of dispatch:
- local: (wall - sum of child times) / points;
- ray: (wall - sum of child times / 2) / (points / 2): two points run at once, so each of the two lanes carries half
  the points.
Both include the run's fixed start (imports, run directory, env.json; connecting to the cluster) spread over the
points, so they are upper bounds on the cost of dispatching one point.
The cluster is started once with `ray start --head --num-cpus 2` (timed apart) and the run joins it with
`--executor ray:ADDRESS`; `--own-cluster` also times a run that starts its own cluster (`--executor ray`).

Usage: python benchmarks/ray_dispatch.py [--points 8] [--seconds 1.0] [--own-cluster]
Measure on a quiet machine: the toy busy-waits, and two points at once need both of a 2-core machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def suite(points: int, seconds: float) -> str:
    steps = ", ".join(str(4 + k) for k in range(points))
    return (
        "name: dispatch\ndevice: cpu\n"
        f"measure: {{warmup_iters: 1, min_iters: 3, min_seconds: {seconds}, count_work: false, trace_ops: false}}\n"
        "workloads:\n  - name: toy\n    type: toy\n    params: {first_s: 0.002, step_s: 0.002}\n"
        f"    sweep: {{steps: [{steps}]}}\n"
    )


def run(out: Path, suite_path: Path, *extra: str) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "profiler", "run", str(suite_path), "-o", str(out), "--no-report", *extra], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"run failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    (run_dir,) = out.iterdir()
    summaries = [json.loads(p.read_text()) for p in run_dir.rglob("summary.json")]
    return {"wall_s": wall, "child_s": sum(s["wall_s"] for s in summaries), "points": len(summaries)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="measure.min_seconds of each point")
    parser.add_argument("--own-cluster", action="store_true", help="also time a run that starts its own local cluster")
    args = parser.parse_args()
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        suite_path = tmp_path / "suite.yaml"
        suite_path.write_text(suite(args.points, args.seconds))
        local = run(tmp_path / "local", suite_path)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        t0 = time.perf_counter()
        subprocess.run(
            [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
            env=env,
            capture_output=True,
            check=True,
        )
        cluster_s = time.perf_counter() - t0
        try:
            ray = run(tmp_path / "ray", suite_path, "--executor", f"ray:127.0.0.1:{port}")
        finally:
            subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True)
        own = run(tmp_path / "own", suite_path, "--executor", "ray") if args.own_cluster else None
    n = local["points"]
    local_overhead = (local["wall_s"] - local["child_s"]) / n
    ray_overhead = (ray["wall_s"] - ray["child_s"] / 2) / (n / 2)
    print(f"{n}-point toy sweep, each point min_seconds {args.seconds:g} s, on {os.cpu_count()} cores")
    print(f"  local:        wall {local['wall_s']:.1f} s  (children {local['child_s']:.1f} s)  dispatch overhead {local_overhead * 1e3:.0f} ms/point")
    print(f"  ray cluster start (ray start --head): {cluster_s:.1f} s")
    print(
        f"  ray, 2 workers: wall {ray['wall_s']:.1f} s  (children {ray['child_s']:.1f} s)  "
        f"dispatch overhead {ray_overhead * 1e3:.0f} ms/point; speedup {local['wall_s'] / ray['wall_s']:.2f}x"
    )
    if own:
        print(f"  ray, a local cluster started by the run: wall {own['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
