"""The profiler at scale (a benchmark, not a test): 1,000,000 spans and 100,000 sampler rows.

A child process writes a synthetic run directory the way a workload's child and the sampler do
(rows streamed in batches of part files); a parent process merges, summarises and reports it as
the runner and `report` do. The run has the 1,000,000-span baseline ("llm", KV state growing per
token) and a second workload of a fifth of its size ("ssm", constant state), so the report's
comparisons (ratio and slope intervals on a million samples) run too. Prints each process's time
and peak memory (RSS), the report's size, and whether headless Chromium renders it.
Targets: peak memory under 500 MiB, the summary under 10 s, the report under 15 MB.
Usage: python benchmarks/scale.py [--spans 1000000] [--samples 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from profiler.characterize.summary import summarize
from profiler.measure.sampler import SAMPLE_SCHEMA
from profiler.measure.store import SAMPLES, SPANS, PartWriter, atomic_write_json, merge_parts
from profiler.plugin import Declaration
from profiler.runmodel import RunEntry, RunInfo, RunStatus, Status


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


WORKLOADS = (("llm", 1.0, 8192), ("ssm", 0.2, 0))  # (name, share of --spans and --samples, state bytes per position)
DECLARATION = Declaration(output_unit="token", step="decode_step", deliveries=("prefill", "decode_step"), position_unit="token of context")


def write_run(root: Path, n_spans: int, n_samples: int) -> None:
    for name, share, state_per_position in WORKLOADS:
        write_workload(root / name, int(n_spans * share), int(n_samples * share), state_per_position)
    info = RunInfo(
        suite="scale",
        baseline="llm",
        device="cpu",
        status=RunStatus.COMPLETE,
        workloads=[RunEntry(name=name, dir=name, type="synthetic", status=Status.OK) for name, _, _ in WORKLOADS],
    )
    atomic_write_json(root / "run.json", info.model_dump(mode="json", exclude_none=True))
    atomic_write_json(root / "env.json", {"cpu_model": "synthetic"})


def write_workload(work: Path, n_spans: int, n_samples: int, state_per_position: int) -> None:
    """A decode-like workload: iterations of 1 prefill + 999 decode steps, streamed in batches."""
    work.mkdir(parents=True)
    spans = PartWriter(work, SPANS)
    rng = np.random.default_rng(0)
    t = 1_000_000_000
    per_iteration = 1000
    iterations = -(-n_spans // (per_iteration + 1))  # at least n_spans
    for it in range(iterations):
        start = t
        rows = []
        for k in range(per_iteration):
            d = int(5e6 + (2e3 * k if state_per_position else 0) + rng.integers(0, 2e5))
            rows.append(
                {
                    "iteration": it,
                    "warmup": it == 0,
                    "phase": "prefill" if k == 0 else "decode_step",
                    "index": k + 1,
                    "start_ns": t,
                    "end_ns": t + d,
                    "units": 1.0,
                    "device_s": None,
                    "error": None,
                    "position": 128 + k,
                    "state_bytes": 4096 + state_per_position * (128 + k),
                }
            )
            t += d
        rows.append(
            {
                "iteration": it,
                "warmup": it == 0,
                "phase": "iteration",
                "index": 0,
                "start_ns": start,
                "end_ns": t,
                "units": 0.0,
                "device_s": None,
                "error": None,
                "position": None,
                "state_bytes": None,
            }
        )
        spans.extend(rows)
        if spans.full:
            spans.flush()
    spans.flush()
    samples = PartWriter(work, SAMPLES, schema=SAMPLE_SCHEMA)
    t_s = np.linspace(1e9, t, n_samples).astype(np.int64)
    for i, ts in enumerate(t_s):
        samples.append({"t_ns": int(ts), "proc_cpu_percent": 100.0, "proc_rss_bytes": 10**9 + i, "sys_cpu_percent": 50.0})
        if samples.full:
            samples.flush()
    samples.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--keep", default=None, help="keep the run directory here")
    parser.add_argument("--stage", choices=["all", "child", "parent"], default="all", help=argparse.SUPPRESS)
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "child":
        return child_stage(Path(args.root), args.spans, args.samples)
    if args.stage == "parent":
        return parent_stage(Path(args.root), args.spans, args.samples)
    # As in a real run, the child (writing spans) and the parent (merging, summarising,
    # reporting) are separate processes; each one's peak memory is measured on its own.
    root = Path(args.keep or tempfile.mkdtemp()) / "scale-run"
    shutil.rmtree(root, ignore_errors=True)
    for stage in ("child", "parent"):
        subprocess.run(
            [sys.executable, __file__, "--stage", stage, "--root", str(root), "--spans", str(args.spans), "--samples", str(args.samples)], check=True
        )
    opens(root / "report.html")
    if not args.keep:
        shutil.rmtree(root.parent, ignore_errors=True)


def child_stage(root: Path, n_spans: int, n_samples: int) -> None:
    t0 = time.monotonic()
    write_run(root, n_spans, n_samples)
    total = sum(int(n_spans * share) for _, share, _ in WORKLOADS)
    print(
        f"child: streamed {total:,} spans ({n_spans:,} in the baseline) and their samples as part files in {time.monotonic() - t0:.1f} s; "
        f"peak RSS {peak_mib():.0f} MiB (target < 500 MiB)"
    )


def parent_stage(root: Path, n_spans: int, n_samples: int) -> None:
    from profiler.measure.store import read_frame
    from profiler.rundir import read_measured
    from reports.html_report import write_report

    for name, _, _ in WORKLOADS:  # as the runner does after each workload
        t1 = time.monotonic()
        merge_parts(root / name, SPANS)
        merge_parts(root / name, SAMPLES)
        t2 = time.monotonic()
        spans, _, count = read_measured(root / name / "spans.parquet")
        samples = read_frame(root / name / "samples.parquet")
        t3 = time.monotonic()
        summary = summarize(spans, samples, {"device": "cpu"}, DECLARATION)
        t4 = time.monotonic()
        summary.name, summary.span_count = name, count
        atomic_write_json(root / name / "summary.json", summary.model_dump(mode="json"))
        del spans, samples, summary
        print(f"parent: {name}: {count:,} spans; merge {t2 - t1:.1f} s; read {t3 - t2:.1f} s; summary {t4 - t3:.1f} s (target < 10 s)")

    t5 = time.monotonic()
    write_report(root, root / "report.html")
    t6 = time.monotonic()
    size = (root / "report.html").stat().st_size
    print(f"parent: report {t6 - t5:.1f} s, {size / 1e6:.2f} MB (target < 15 MB); peak RSS {peak_mib():.0f} MiB (target < 500 MiB)")


def opens(path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium: not installed; the open check is skipped")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        t = time.monotonic()
        page.goto(path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === document.querySelectorAll('.plotly-graph-div').length", timeout=120_000)
        n = page.locator(".plotly-graph-div").count()
        browser.close()
    print(f"chromium: opened and rendered {n} figures in {time.monotonic() - t:.1f} s; page errors: {len(errors)}")


if __name__ == "__main__":
    main()
