"""report.html in a real headless browser (Debian's Chromium driven by Playwright), offline.

Checks that the page renders its figures with no console errors and no network, and that a
hostile workload name shows as text and never runs.
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import run_suite_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
XSS = "<script>alert(1)</script>"

SUITE = f"""\
name: browser
device: cpu
measure: {{warmup_iters: 1, min_iters: 3, min_seconds: 0, max_seconds: 10, sample_hz: 50}}
workloads:
  - {{name: toy, type: toy, params: {{steps: 8, step_growth_s: 0.0002, state_bytes_per_step: 2048}}}}
  - {{name: "{XSS}", type: toy, params: {{steps: 4}}}}
  - {{name: broken, type: "tests.plugins.faulty:Faulty", params: {{fail_in: setup}}}}
"""


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    _, run = run_suite_text(tmp_path_factory.mktemp("browser"), SUITE)
    assert run.workloads["broken"].status == "failed"
    return run.path / "report.html"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_renders_offline_without_errors(report_path):
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
        page.goto(report_path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=30_000)
        plots = page.locator(".js-plotly-plot").count()
        text = page.inner_text("body")
        browser.close()
    assert errors == [] and requests == [] and dialogs == []
    assert plots >= 4  # latency vs position, state vs position, CDFs, sampler timelines
    assert XSS in text  # shown as text, not executed
    assert "broken failed in phase setup" in text
    assert "Definitions" in text and "TPOT" in text
