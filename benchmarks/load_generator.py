"""The load generator's own accuracy: Poisson arrivals at 200 requests/s sent to a no-op engine
(submit appends to a list), so every error is the generator's, not an engine's. Prints the p50 /
p99 / max send error and the sending thread's CPU share (target: p99 under 1 ms on 2 cores).

    python benchmarks/load_generator.py [--rate 200] [--requests 2000] [--rounds 3] [--spin-us 500]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from profiler.load.sender import send_all


class Planned:
    __slots__ = ("send_s",)

    def __init__(self, send_s: float) -> None:
        self.send_s = send_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spin-us", type=float, default=500.0)
    args = parser.parse_args()
    print(f"{args.requests} Poisson arrivals at {args.rate:g}/s to a no-op engine, spin {args.spin_us:g} µs, {os.cpu_count()} cores")
    for k in range(args.rounds):
        gaps = np.random.default_rng(k).exponential(1 / args.rate, args.requests)
        plan = [Planned(float(t)) for t in np.cumsum(gaps) - gaps[0]]
        sink: list[Planned] = []
        report = send_all(plan, sink.append, spin_s=args.spin_us / 1e6)
        a = report.accuracy()
        if a.p50_s is None or a.p99_s is None or a.max_s is None:
            print(f"  round {k + 1}: nothing was sent")
            continue
        cpu = f"{a.cpu_share:.1%}" if a.cpu_share is not None else "unavailable (no wall time)"
        print(
            f"  round {k + 1}: send error p50 {a.p50_s * 1e6:.0f} µs, p99 {a.p99_s * 1e6:.0f} µs, max {a.max_s * 1e6:.0f} µs "
            f"(target p99 < 1000 µs); sender CPU {cpu} of one core over {report.wall_s:.1f} s"
        )


if __name__ == "__main__":
    main()
