"""The report page built in-process from the golden runs (tests/data, copied to tmp): every number
with a unit and a sensible precision, sections registered without touching the page builder,
user strings escaped, no phase named by the report's code, and the schema-1 run's findings."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "data" / "golden-run"
GOLDEN_V1 = ROOT / "tests" / "data" / "golden-run-v1"
XSS = "<script>alert(1)</script>"
REPORT_CODE = [*(ROOT / "reports").glob("*.py"), *(ROOT / "reports" / "sections").glob("*.py"), *(ROOT / "reports" / "templates").glob("*.j2")]
NOT_MINE = {"characteristics.py", "differences.py", "compare.py"}  # their phase words are examples in help text, not the page's


def copy_run(src: Path, tmp: Path) -> Path:
    run_dir = tmp / src.name
    shutil.copytree(src, run_dir)
    for stale in ("report.html", "differences.csv", "differences.json"):
        (run_dir / stale).unlink(missing_ok=True)
    return run_dir


def page_text(page: str) -> str:
    """What a reader sees: scripts (plotly's data) and styles removed, tags stripped, entities resolved."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> tuple[Path, str]:
    from reports.html_report import write_report

    run_dir = copy_run(GOLDEN, tmp_path_factory.mktemp("golden"))
    problems = write_report(run_dir, run_dir / "report.html").problems
    assert problems == []
    return run_dir, (run_dir / "report.html").read_text()


def test_no_raw_floats_or_unformatted_counts(golden):
    _, page = golden
    text = page_text(page)
    assert re.findall(r"\d\.\d{7,}", text) == []  # e.g. setup (s) 2.729431293999994
    assert re.findall(r"(?<![\w.,/-])\d{7,}(?![\w.,-])", text) == []  # e.g. peak_rss_bytes 981721088
    assert "section-error" not in page.replace(".section-error", "")  # every section was built
    assert "{" not in text.replace("{ ", "")  # no JSON blob (nested values are lists)


def test_first_screen_order_and_slots(golden):
    _, page = golden
    order = [page.index(s) for s in ('class="run"', 'id="conditions"', "failed in phase", 'id="overview"', 'id="findings"', '<nav class="contents"')]
    assert order == sorted(order)
    assert "Contention was not measured" in page or "Measured quiet" in page or "Contended" in page
    assert ".v-inconclusive" in page
    for words in ("token/s", "image/s", "action/s", "deadline-miss rate", "Control loops", "Roofline", "SLOW PyTorch reference path"):
        assert words in page, words


def test_user_strings_are_escaped(golden):
    _, page = golden
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "broken</b> failed in phase <code>measure</code>" in page


def test_the_report_code_names_no_phase():
    """The report reads the declaration's roles (step, request, inference), never a workload's phase names."""
    names = re.compile(r"\b(decode_step|denoise_step|prefill|vae_decode|text_encode)\b|[\"']infer[\"']")
    found = [f"{p.name}: {m.group(0)}" for p in REPORT_CODE if p.name not in NOT_MINE for m in names.finditer(p.read_text())]
    assert found == []


def test_definitions_are_data_with_short_lines():
    from reports.definitions import DEFINITIONS_FILE, load_definitions

    terms = [d.term for d in load_definitions()]
    assert {"Declaration (roles)", "Findings", "Main phase"} <= set(terms) and len(terms) == len(set(terms))
    assert max(len(line) for line in DEFINITIONS_FILE.read_text().splitlines()) <= 160


def test_a_section_registers_without_touching_the_page_builder(tmp_path):
    from profiler.rundir import load_run
    from reports.html_report import build_html
    from reports.sections import register_section, registered_sections, unregister_section

    @register_section(anchor="extra-domain", title="Extra domain", order=65, template_source="<p class='extra'>{{ data.note }} ({{ data.n }})</p>")
    def build(ctx):
        return {"note": "<b>not markup</b>", "n": len(ctx.views)}

    @register_section(anchor="left-out", title="Left out", order=66, template_source="<p>never</p>")
    def build_none(ctx):
        return None

    try:
        assert [s.anchor for s in registered_sections()].index("extra-domain") > 0
        page = build_html(load_run(copy_run(GOLDEN, tmp_path)))
    finally:
        unregister_section("extra-domain")
        unregister_section("left-out")
    assert '<section id="extra-domain"><h2>Extra domain</h2>' in page
    assert "&lt;b&gt;not markup&lt;/b&gt; (6)" in page  # autoescaped like every built-in section
    assert page.index('id="control-loops"') < page.index('id="extra-domain"') < page.index('id="work"')
    assert 'href="#extra-domain"' in page and "Left out" not in page
    with pytest.raises(ValueError, match="registered twice"):
        register_section(anchor="overview", title="again", order=1, template="overview.html.j2")(build)


def test_a_failing_section_is_stated_and_the_rest_stands(tmp_path):
    from profiler.rundir import load_run
    from reports.context import build_context
    from reports.html_report import render_page
    from reports.sections import register_section, unregister_section

    @register_section(anchor="buggy", title="Buggy", order=67, template_source="<p>{{ data.x }}</p>")
    def build(ctx):
        raise KeyError("planted section bug")

    try:
        page, failed = render_page(build_context(load_run(copy_run(GOLDEN, tmp_path))))
    finally:
        unregister_section("buggy")
    assert failed == ["report section 'buggy' could not be built (KeyError: 'planted section bug')"]
    assert "could not be built" in page and 'id="definitions"' in page


def test_the_schema_1_run_renders_with_its_findings(tmp_path):
    from reports.html_report import write_report

    run_dir = copy_run(GOLDEN_V1, tmp_path)
    assert write_report(run_dir, run_dir / "report.html").problems == []
    page = (run_dir / "report.html").read_text()
    findings = page[page.index('id="findings"') : page.index('<nav class="contents"')]
    assert "↑\u00a056.8×" in findings  # diffusion's intensity against llm decode
    assert findings.count('class="v-good"') + findings.count('class="v-bad"') + findings.count('class="v-neutral"') >= 10
    assert "section-error" not in page.replace(".section-error", "")
    assert "a schema-1 run" in page and "Control loops" in page  # the migrated declaration says where it came from


def test_compare_page_is_a_template_with_units(golden, tmp_path):
    from profiler.rundir import load_run
    from reports.compare import write_compare

    run_dir, _ = golden
    out = tmp_path / "ab.html"
    table, notes, failed = write_compare(load_run(run_dir), load_run(GOLDEN_V1), out, [])
    page = out.read_text()
    assert not table.empty and failed == []
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "token/s" in page and " ms" in page and re.findall(r"\d\.\d{7,}", page_text(page)) == []


def test_differences_that_cannot_be_written_are_still_returned_with_the_reason(tmp_path):
    """The run's closing lines print the differences the report computed, never differences.json read back: a
    directory in its place (or a read-only copy of a run) costs the file, not the findings or the page."""
    from reports.html_report import write_report

    run_dir = copy_run(GOLDEN, tmp_path)
    (run_dir / "differences.json").mkdir()
    written = write_report(run_dir, run_dir / "report.html")
    assert len(written.unwritten) == 1 and "differences.csv and .json: not written" in written.unwritten[0]
    assert written.unwritten[0] in written.problems
    assert not written.differences.empty and set(written.differences["workload"]) >= {"mamba", "diffusion"}
    assert (run_dir / "report.html").is_file() and (run_dir / "differences.json").is_dir()
