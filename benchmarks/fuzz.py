"""Hostile inputs at volume (a benchmark, not a test): run N generated cases through the CLI and print the counts.

The cases and their expected verdicts are tests/fuzz_cases.py's (suite numbers at and beyond their bounds, alias
bombs, duplicate keys, deep nesting, hostile text, damaged traces and trace paths, `-o` onto what the profiler did not
create); each runs in-process through `profiler.cli.main` with a hang detector (tests/fuzz_harness.py). Prints, per
class, how many cases were accepted and refused as expected, and the tracebacks, wrong exits, hangs and leaks (an
input's secret or a raw control character printed), with the first few of each. Exit status 1 when any case did
not get its expected verdict.

Usage: python benchmarks/fuzz.py [--cases 10000] [--seed 0] [--show 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/ holds the case generators shared with the fuzz test


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=3, help="failures printed per class and outcome")
    args = parser.parse_args()

    from hypothesis import HealthCheck, Phase, given, seed, settings

    from tests.fuzz_cases import any_case
    from tests.fuzz_harness import run_case

    counts: Counter[tuple[str, str]] = Counter()
    expected: Counter[tuple[str, str]] = Counter()
    shown: dict[tuple[str, str], list[str]] = defaultdict(list)
    folder = Path(tempfile.mkdtemp(prefix="fuzz-bench-")) / "case"
    started = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.cases, phases=[Phase.generate], database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(any_case())
    def one(case):
        outcome = run_case(case, folder)
        counts[(case.kind, outcome.verdict)] += 1
        if outcome.ok:
            expected[(case.kind, case.expect)] += 1
        elif len(shown[(case.kind, outcome.verdict)]) < args.show:
            shown[(case.kind, outcome.verdict)].append(f"{case.describe()}\n      {outcome.why.strip()[:600]}")

    one()
    elapsed = time.perf_counter() - started
    total = sum(counts.values())
    kinds = sorted({k for k, _ in counts})
    print(f"{total} cases in {elapsed:.0f} s ({1000 * elapsed / max(total, 1):.1f} ms each)")
    print(f"{'class':<8} {'cases':>6} {'accepted':>9} {'refused':>8} {'traceback':>10} {'wrong exit':>11} {'hang':>5} {'leak':>5}")
    for kind in kinds:
        n = sum(v for (k, _), v in counts.items() if k == kind)
        row = [expected[(kind, "accept")], expected[(kind, "refuse")], *(counts[(kind, v)] for v in ("traceback", "wrong_exit", "hang", "leak"))]
        print(f"{kind:<8} {n:>6} {row[0]:>9} {row[1]:>8} {row[2]:>10} {row[3]:>11} {row[4]:>5} {row[5]:>5}")
    bad = {v: sum(c for (_, verdict), c in counts.items() if verdict == v) for v in ("traceback", "wrong_exit", "hang", "leak")}
    print(f"total: {bad['traceback']} tracebacks, {bad['wrong_exit']} wrong exits, {bad['hang']} hangs, {bad['leak']} leaks")
    for (kind, verdict), lines in sorted(shown.items()):
        print(f"\n{kind} / {verdict}:")
        for line in lines:
            print(f"  - {line}")
    return 1 if any(bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
