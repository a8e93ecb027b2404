"""The report from the golden run directories (tests/data/golden-run and its schema-1 twin; no
model needed), checked as data and in a real headless browser (Debian's Chromium driven by
Playwright), offline: the answer on the first screen, tables that fit, figures that render."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from tests.conftest import ROOT, assert_one_line_error, run_cli

GOLDEN = ROOT / "tests" / "data" / "golden-run"
GOLDEN_V1 = ROOT / "tests" / "data" / "golden-run-v1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
XSS = "<script>alert(1)</script>"
SCREEN = {"width": 1366, "height": 768}


def rebuild(src, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp(src.name) / "run"
    shutil.copytree(src, run_dir)
    for stale in ("report.html", "differences.csv", "differences.json"):
        (run_dir / stale).unlink(missing_ok=True)
    result = run_cli("report", run_dir)
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    return rebuild(GOLDEN, tmp_path_factory)


@pytest.fixture(scope="module")
def rebuilt_v1(tmp_path_factory):
    return rebuild(GOLDEN_V1, tmp_path_factory)


def finding(diffs: pd.DataFrame, workload: str, characteristic: str) -> dict:
    row = diffs[(diffs["workload"] == workload) & (diffs["characteristic"] == characteristic)]
    assert len(row) == 1, (workload, characteristic)
    return row.iloc[0].to_dict()


def test_differences_agree_with_domain_facts(rebuilt):
    diffs = pd.read_csv(rebuilt / "differences.csv")
    assert finding(diffs, "diffusion", "intensity")["verdict"] == "higher"  # compute-intensive
    assert finding(diffs, "diffusion", "bound")["value"] == "compute-bound"
    mamba_state = finding(diffs, "mamba", "state_per_token")
    assert mamba_state["verdict"] == "lower" and float(mamba_state["baseline_value"]) == pytest.approx(8192)  # flat vs 2*L*kv*hd*4 per token
    assert finding(diffs, "diffusion", "state_per_token")["verdict"] == "lower"  # the latent is constant across steps
    # steps are not tokens: only "flat vs growing" compares; across units a flat step never counts as "higher"
    assert finding(diffs, "diffusion", "latency_growth_per_token")["verdict"] in ("lower", "no difference", "inconclusive")
    assert finding(diffs, "vla", "deadline_miss_rate")["verdict"] == "present"  # judged by deadlines
    assert finding(diffs, "vla", "jitter")["verdict"] == "present"
    assert finding(diffs, "diffusion", "bound")["baseline_value"] in ("memory-bound", "overhead-bound")  # LLM decode at batch 1
    assert set(diffs.columns) >= {"workload", "characteristic", "baseline_value", "value", "unit", "ratio", "ci_low", "ci_high", "reading"}
    assert (rebuilt / "differences.json").is_file()
    no_diff = diffs[diffs["verdict"] == "no difference"]
    assert no_diff["reading"].str.startswith("No difference").all()  # never shown as a finding


def test_report_html_has_every_section_and_escapes(rebuilt):
    page = (rebuilt / "report.html").read_text()
    for title in (
        "Overview",
        "Findings",
        "Differences from the baseline",
        "Work, intensity and ceilings",
        "Roofline",
        "Energy",
        "Operator mix",
        "Scaling",
        "Control loops",
        "Definitions",
        "Environment",
        "deadline-miss rate",
        "image/s",
        "token/s",
        "action/s",
        "SLOW PyTorch reference path",
    ):
        assert title in page, title
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "broken</b> failed in phase <code>measure</code>" in page
    assert 'id="conditions"' in page


def test_compare_runs_and_fail_if(rebuilt, tmp_path):
    out = tmp_path / "ab.html"
    same = run_cli("compare", rebuilt, GOLDEN, "-o", out, "--fail-if", "e2e_s>1.5")
    assert same.returncode == 0, same.stderr
    table = pd.read_json(out.with_suffix(".json"))
    assert (table.loc[table["metric"] == "e2e_s", "ratio"] == 1.0).all()
    page = out.read_text()
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    failing = run_cli("compare", rebuilt, GOLDEN, "-o", out, "--fail-if", "llm:e2e_s>0.5")
    assert failing.returncode == 1 and "FAILED llm:e2e_s>0.5" in failing.stderr
    assert_one_line_error(run_cli("compare", rebuilt, GOLDEN, "--fail-if", "e2e_s>>1"), "--fail-if")
    assert_one_line_error(run_cli("compare", rebuilt, tmp_path), "not a run directory")


def test_the_schema_1_report_shows_its_findings(rebuilt_v1):
    page = (rebuilt_v1 / "report.html").read_text()
    findings = page[page.index('id="findings"') : page.index('<nav class="contents"')]
    for name in ("mamba", "diffusion", "vla"):
        assert f">{name}</a>" in findings, name
    assert "↑\u00a056.8×" in findings and 'class="v-good"' in findings and 'class="v-bad"' in findings
    assert "broken</b> failed in phase <code>measure</code>" in page


FIRST_SCREEN = """() => {
  const box = s => { const e = document.querySelector(s); if (!e) return null; const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom}; };
  return {overview: box('#overview table'), findings: box('#findings table'), scrollY: window.scrollY};
}"""
OVERFLOWING_TABLES = """() => [...document.querySelectorAll('table')]
  .filter(t => t.scrollWidth > t.parentElement.clientWidth || t.getBoundingClientRect().right > window.innerWidth)
  .map(t => `${t.closest('section')?.id}: ${t.scrollWidth}px in ${t.parentElement.clientWidth}px`)"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
@pytest.mark.parametrize("which", ["rebuilt", "rebuilt_v1"])
def test_report_renders_offline_in_chromium(which, request):
    run_dir = request.getfixturevalue(which)
    sync_api = pytest.importorskip("playwright.sync_api")
    errors, requests, dialogs = [], [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        )
        page = browser.new_page(viewport=SCREEN)

        def block(route):
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                requests.append(route.request.url)
                route.abort()

        page.route("**/*", block)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto((run_dir / "report.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === document.querySelectorAll('.plotly-graph-div').length", timeout=30_000)
        first = page.evaluate(FIRST_SCREEN)
        overflowing = page.evaluate(OVERFLOWING_TABLES)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # folded tables must fit too
        overflowing += page.evaluate(OVERFLOWING_TABLES)
        figures = page.locator(".plotly-graph-div").count()
        rendered = page.evaluate("[...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector('.main-svg, canvas')).length")
        text = page.inner_text("body")
        browser.close()
    assert errors == [] and requests == [] and dialogs == []
    # the answer without scrolling: the overview and the findings within the first 1366x768 screen
    assert first["scrollY"] == 0 and first["overview"] and first["findings"], first
    assert first["overview"]["bottom"] <= SCREEN["height"] and first["findings"]["bottom"] <= SCREEN["height"], first
    assert overflowing == []  # every table fits its container and the screen
    assert figures >= 8 and rendered == figures  # every figure rendered
    assert XSS in text  # shown as text, never executed
    assert "broken failed in phase measure" in text
