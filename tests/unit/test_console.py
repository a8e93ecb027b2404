"""The terminal at 80 columns: no header or value cut short, every number with its unit."""

from __future__ import annotations

import re

from rich.console import Console

from profiler import load_run
from profiler.console import differences_table, summary_notes, summary_table
from reports.differences import differences
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "data" / "golden-run"
NUMBER_WITH_UNIT = re.compile(r"≈?-?[\d,.]+(e[+-]?\d+)?\s?(ns|µs|ms|s|min|%|× \[[^\]]+\]|×|iters|KiB|MiB|GiB|TiB|B|\S+/\S+)")


def render(*renderables, width: int = 80) -> str:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    for r in renderables:
        console.print(r)
    return console.export_text()


def test_summary_and_findings_fit_80_columns_without_truncation():
    run = load_run(GOLDEN)
    summaries = [w.summary for w in run.workloads.values()]
    text = render(summary_table(summaries), *summary_notes(summaries), differences_table(differences(run), run.baseline))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    for header in ("workload", "status", "TTFT", "TPOT", "E2E", "output", "misses", "characteristic", "verdict"):
        assert header in text, header
    for name in ("llm", "mamba", "diffusion", "vla", "broken"):
        assert name in text
    assert "<script>alert(1)</script>" in text.replace("\n", "")  # folded, never cut
    assert "token/s" in text and "image/s" in text and "action/s" in text


def test_every_number_in_the_tables_carries_a_unit():
    run = load_run(GOLDEN)
    summaries = [w.summary for w in run.workloads.values() if w.name != "<script>alert(1)</script>"]
    diffs = differences(run)
    text = render(summary_table(summaries), differences_table(diffs[diffs["workload"] != "<script>alert(1)</script>"], run.baseline), width=120)
    body = [line for line in text.splitlines() if line.strip() and not line.startswith(("Summary", "Differences", "workload", "─", "report.html"))]
    for line in body:
        for cell in re.split(r"\s{2,}", line.strip())[1:]:  # the first column is the workload's name
            if re.search(r"\d", cell):
                assert NUMBER_WITH_UNIT.fullmatch(cell) or cell.startswith(("ok", "failed")), f"a number without a unit: {cell!r} in {line!r}"
