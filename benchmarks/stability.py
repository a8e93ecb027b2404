"""Do the findings hold on the next run? The default suite, run 3 times on a quiet machine and 2
times with one core held by a busy loop; prints how many verdicts were issued and how many kept
their direction across all runs (target: 100%: a finding that would flip must have been
"inconclusive"), and which published directions of ../shared/guide/domain-facts.md the quiet runs
reach (calling everything inconclusive is no answer).

    python benchmarks/stability.py [--suite configs/cross_domain.yaml] [--quiet 3] [--busy 2] [--keep DIR]

A verdict keeps its direction when every run either gives the same direction or gives none
(inconclusive, unavailable). "No difference" is a claim too: it must not meet a direction.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIRECTIONS = {"higher", "lower", "differs", "present"}
CLAIMS = DIRECTIONS | {"no difference", "same"}
# domain-facts.md, "Directions relative to LLM decode", as rows of the differences table
PUBLISHED = [
    ("diffusion", "bound", "differs", "compute-bound, LLM decode memory- or overhead-bound"),
    ("diffusion", "intensity", "higher", "much higher arithmetic intensity"),
    ("diffusion", "mfu", "higher", "higher compute utilization"),
    ("diffusion", "state_per_token", "lower", "constant state across steps"),
    ("diffusion", "dominant_op", "differs", "convolution / linear, not GEMV"),
    ("mamba", "state_per_token", "lower", "constant state"),
    ("mamba", "intensity", "no difference", "intensity about the same as decode"),
    ("vla", "host_overhead_share", "higher", "high launch / host overhead"),
    ("vla", "deadline_miss_rate", "present", "judged by deadlines"),
]


def run_suite(suite: Path, out: Path, busy: bool) -> Path:
    """One run of the suite (no report); with `busy`, a busy loop holds core 0 meanwhile."""
    loop = None
    if busy:
        loop = subprocess.Popen([sys.executable, "-c", "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass"])
    try:
        t = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "profiler", "run", str(suite), "-o", str(out), "--no-report"], cwd=ROOT, capture_output=True, text=True)
        if done.returncode not in (0, 1):
            raise SystemExit(f"the suite exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
        print(f"  {'busy' if busy else 'quiet'} run: {time.monotonic() - t:.0f} s", flush=True)
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()
    return max(out.iterdir(), key=lambda p: p.stat().st_mtime)


def verdicts(run_dir: Path) -> dict[tuple[str, str], str]:
    rows = json.loads((run_dir / "differences.json").read_text())
    return {(r["workload"], r["characteristic"]): r["verdict"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=str(ROOT / "configs" / "cross_domain.yaml"))
    parser.add_argument("--quiet", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--keep", default=None, help="keep the run directories here")
    args = parser.parse_args()
    out = Path(args.keep or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    print(f"{args.suite}: {args.quiet} quiet and {args.busy} busy runs on {os.cpu_count()} cores ({out})", flush=True)
    runs = [(False, run_suite(Path(args.suite), out, busy=False)) for _ in range(args.quiet)]
    runs += [(True, run_suite(Path(args.suite), out, busy=True)) for _ in range(args.busy)]
    table = [(busy, verdicts(d)) for busy, d in runs]
    by_row: dict[tuple[str, str], list[str]] = defaultdict(list)
    for _, v in table:
        for key, verdict in v.items():
            by_row[key].append(verdict)
    issued = {key: vs for key, vs in by_row.items() if any(v in CLAIMS for v in vs)}
    kept = {key: vs for key, vs in issued.items() if len({v for v in vs if v in CLAIMS}) == 1}
    flips = sorted(set(issued) - set(kept))
    print(
        f"verdicts issued (a direction or no difference, in at least one run): {len(issued)} rows; kept across all runs: {len(kept)} "
        f"({100.0 * len(kept) / max(len(issued), 1):.0f}%; target 100%)"
    )
    for key in flips:
        print(f"  flipped: {key[0]} {key[1]}: {' / '.join(by_row[key])}")
    for label, busy in (("quiet", False), ("busy", True)):
        counts = [sum(1 for v in vs.values() if v in DIRECTIONS) for b, vs in table if b == busy]
        inconclusive = [sum(1 for v in vs.values() if v == "inconclusive") for b, vs in table if b == busy]
        print(f"{label} runs: directions per run {counts}; inconclusive per run {inconclusive}")
    quiet = [vs for busy, vs in table if not busy]
    reached = [(w, c, want, why) for w, c, want, why in PUBLISHED if all(vs.get((w, c)) == want for vs in quiet)]
    print(f"published directions reached in every quiet run: {len(reached)} of {len(PUBLISHED)}")
    for w, c, want, why in PUBLISHED:
        got = [vs.get((w, c), "missing") for vs in quiet]
        mark = "ok " if all(g == want for g in got) else "NOT"
        print(f"  {mark} {w} {c}: want {want} ({why}); quiet runs: {' / '.join(got)}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
