"""The report from the golden run directory (tests/data/golden-run; no model needed), checked as
data and in a real headless browser (Debian's Chromium driven by Playwright), offline."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from tests.conftest import ROOT, assert_one_line_error, run_cli

GOLDEN = ROOT / "tests" / "data" / "golden-run"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("golden") / "run"
    shutil.copytree(GOLDEN, run_dir)
    for stale in ("report.html", "differences.csv", "differences.json"):
        (run_dir / stale).unlink(missing_ok=True)
    result = run_cli("report", run_dir)
    assert result.returncode == 0, result.stderr
    return run_dir


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
    # steps are not tokens: only "flat vs growing" compares, and diffusion's steps are flat (domain-facts)
    assert finding(diffs, "diffusion", "latency_growth_per_token")["verdict"] == "lower"
    assert finding(diffs, "vla", "deadline_miss_rate")["verdict"] == "present"  # judged by deadlines
    assert finding(diffs, "vla", "jitter")["verdict"] == "present"
    assert finding(diffs, "diffusion", "bound")["baseline_value"] in ("memory-bound", "overhead-bound")  # LLM decode at batch 1
    assert set(diffs.columns) >= {"workload", "characteristic", "baseline_value", "value", "unit", "ratio", "ci_low", "ci_high", "reading"}
    assert (rebuilt / "differences.json").is_file()
    no_diff = diffs[diffs["verdict"] == "no difference"]
    assert no_diff["reading"].str.startswith("No difference").all()  # never shown as a finding


def test_report_html_has_every_section_and_escapes(rebuilt):
    page = (rebuilt / "report.html").read_text()
    for title in ("Overview", "Differences from the baseline", "Work, intensity and ceilings", "Energy", "Operator mix", "Scaling", "Definitions", "Environment"):
        assert title in page, title
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "broken</b> failed in phase <code>measure</code>" in page


def test_compare_runs_and_fail_if(rebuilt, tmp_path):
    out = tmp_path / "ab.html"
    same = run_cli("compare", rebuilt, GOLDEN, "-o", out, "--fail-if", "e2e_s>1.5")
    assert same.returncode == 0, same.stderr
    table = pd.read_json(out.with_suffix(".json"))
    assert (table.loc[table["metric"] == "e2e_s", "ratio"] == 1.0).all()
    failing = run_cli("compare", rebuilt, GOLDEN, "-o", out, "--fail-if", "llm:e2e_s>0.5")
    assert failing.returncode == 1 and "FAILED llm:e2e_s>0.5" in failing.stderr
    assert_one_line_error(run_cli("compare", rebuilt, GOLDEN, "--fail-if", "e2e_s>>1"), "--fail-if")
    assert_one_line_error(run_cli("compare", rebuilt, tmp_path), "not a run directory")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
def test_report_renders_offline_in_chromium(rebuilt):
    sync_api = pytest.importorskip("playwright.sync_api")
    errors, requests, dialogs = [], [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1366, "height": 900})

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
        page.goto((rebuilt / "report.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === document.querySelectorAll('.plotly-graph-div').length", timeout=30_000)
        figures = page.locator(".plotly-graph-div").count()
        rendered = page.evaluate("[...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector('.main-svg, canvas')).length")
        text = page.inner_text("body")
        browser.close()
    assert errors == [] and requests == [] and dialogs == []
    assert figures >= 8 and rendered == figures  # every figure rendered
    assert XSS in text  # shown as text, never executed
    assert "broken failed in phase measure" in text
