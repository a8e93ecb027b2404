"""The "Serving under load" report section, from a tiny real llm_serve run (8 requests) and copies of
it edited by hand: a rate sweep with chosen numbers (knee, highest rate meeting the target), failed
and timed-out requests, values the run could not measure. Every expectation is read from the run's
own summary or set by the test, never from how fast this machine is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiler.plugin import QoE
from tests.conftest import ROOT, run_suite_text

GOLDEN = ROOT / "tests" / "data" / "golden-run"
SUITE = """\
name: tiny-serve
device: cpu
measure: {max_seconds: 120, sample_hz: 50, count_work: false, trace_ops: false}
workloads:
  - name: serve
    type: llm_serve
    params: {preset: llama-tiny, page_size: 32, kv_cache_tokens: 4096, prefix_caching: false}
    load:
      pattern: poisson
      rate: 8
      requests: 8
      seed: 0
      sizes: {input: {fixed: 32}, output: {fixed: 8}}
    objective:
      slo: {ttft_s: 0.25, tpot_s: 0.1}
      qoe: {expected_ttft_s: 1.0, tokens_per_s: 4.8}
"""
# a rate sweep made from copies of the real workload: offered rate, attainment and p90 TTFT chosen so the
# answers are known: the target (90%) is crossed between 8 and 16 req/s at 8 + 0.1 / 0.2 * 8 = 12 req/s, and
# on the [0, 1]-scaled curve (0, 0), (0.2, 0.022), (0.467, 0.111), (1, 1) the knee is the point at 16 req/s
SWEEP = {2: (1.0, 0.05), 8: (1.0, 0.06), 16: (0.8, 0.1), 32: (0.5, 0.5)}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    _, run = run_suite_text(tmp_path_factory.mktemp("serve"), SUITE, timeout=600)
    assert run.workloads["serve"].status == "ok", run.workloads["serve"].error
    return run.path


def copy_run(src: Path, tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(src, dst)
    for stale in ("report.html", "differences.csv", "differences.json"):
        (dst / stale).unlink(missing_ok=True)
    return dst


def context(run_dir: Path):
    from profiler.rundir import load_run
    from reports.context import build_context

    return build_context(load_run(run_dir))


def section(run_dir: Path) -> dict | None:
    from reports.sections import serving

    return serving.build(context(run_dir))


def row_of(table, name: str) -> dict:
    """A table's row for workload `name`, as {column label: cell}."""
    (row,) = [r for r in table.rows if r.cells and r.cells[0].text == name]
    return {c.label: cell for c, cell in zip(table.columns, row.cells, strict=False)}


def edit_summary(workdir: Path, **serving) -> None:
    path = workdir / "summary.json"
    data = json.loads(path.read_text())
    for key, value in serving.items():
        if key == "sweep":
            data["sweep"] = value
        elif value is not None or key in data["serving"]:  # a field this summary version lacks stays absent
            data["serving"][key] = value
    path.write_text(json.dumps(data))


def add_sweep(run_dir: Path, points: dict[float, tuple[float, float]]) -> list[str]:
    """Copies of the `serve` workload as the points of a sweep `rate` over load.rate, with the chosen
    offered rate (= the configured one), SLO attainment, goodput and p90 TTFT; run.json and sweeps.json updated."""
    info = json.loads((run_dir / "run.json").read_text())
    names = []
    for r, (attainment, p90) in points.items():
        name, sub = f"rate[load.rate={r:g}]", f"rate/load.rate-{r:g}"
        shutil.copytree(run_dir / "serve", run_dir / sub)
        data = json.loads((run_dir / sub / "summary.json").read_text())
        data["name"], data["sweep"] = name, {"group": "rate", "point": {"load.rate": r}}
        s = data["serving"]
        s["load"]["rate"], s["offered_rate_rps"] = float(r), float(r)
        s["slo_attainment"], s["goodput_rps"], s["throughput_rps"] = attainment, attainment * min(r, 10), min(r, 10)
        s["ttft_s"]["p90"] = p90
        (run_dir / sub / "summary.json").write_text(json.dumps(data))
        info["workloads"].append({"name": name, "dir": sub, "type": "llm_serve", "status": "ok", "sweep_group": "rate", "sweep_point": {"load.rate": r}})
        names.append(name)
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "sweeps.json").write_text(json.dumps({"rate": {"batch": [], "points": names}}))
    return names


# ---------------------------------------------------------------- reading the run


def test_the_run_directory_reads_requests_and_engine_samples(real_run):
    from profiler.rundir import load_run

    w = load_run(real_run).workloads["serve"]
    r, e = w.requests, w.engine
    assert len(r) == 8 and {"index", "measured", "arrival_ns", "scheduled_ns", "token_ns", "finished_ns", "status"} <= set(r.columns)
    assert r["token_ns"].map(len).tolist() == [8] * 8  # every token's time, as a list per request
    assert not e.empty and {"t_ns", "running", "waiting", "kv_bytes_used", "kv_bytes_total"} <= set(e.columns)
    assert w.requests is r  # read once
    other = next(iter(load_run(GOLDEN).workloads.values()))
    assert other.requests.empty and other.engine.empty and other.problems == []  # no load: nothing to read, nothing wrong


def test_a_missing_requests_file_is_a_problem_not_an_error(real_run, tmp_path):
    from profiler.rundir import load_run

    run_dir = copy_run(real_run, tmp_path)
    (run_dir / "serve" / "requests.parquet").unlink()
    w = load_run(run_dir).workloads["serve"]
    assert w.requests.empty
    assert any("requests.parquet: missing (8 requests were recorded)" in p for p in w.problems)
    ctx = context(run_dir)
    from reports.sections import serving

    data = serving.build(ctx)  # the summary still stands; the figures that need the requests are left out
    assert data is not None and data["timelines"] == [] and data["distributions"] == []
    assert row_of(data["outcome"], "serve")["requests"].text == "8 / 8"  # from the summary, said so in the title
    assert any("requests.parquet: missing" in p for p in ctx.problems + data["problems"])  # listed on the page once


# ---------------------------------------------------------------- the tables


def test_the_tables_show_the_summary_with_its_objective(real_run):
    from profiler.format import duration, percent, rate, sig
    from profiler.rundir import load_run

    s = load_run(real_run).workloads["serve"].summary.serving
    data = section(real_run)
    assert data is not None
    out = row_of(data["outcome"], "serve")
    finished = s.status_counts.get("finished", 0)
    assert out["requests"].text == f"{finished} / 8"
    assert out["requests"].sub.startswith(f"{s.status_counts.get('failed', 0)} failed · ")
    assert "timed out" in out["requests"].sub and "lost" in out["requests"].sub  # counted even at zero
    assert out["pattern"].text == "poisson · 8.00 req/s"
    assert out["burstiness"].text == sig(s.arrival_cv)
    assert out["offered"].text == rate(s.offered_rate_rps, "req")
    assert out["throughput"].text == rate(s.throughput_rps, "req") and out["throughput"].sub == rate(s.output_tokens_per_s, "token")
    assert out["SLO attainment"].text == percent(s.slo_attainment)
    assert "ttft <= 0.25 s, tpot <= 0.1 s" in out["SLO attainment"].title  # the stated SLO in the cell's title
    assert out["goodput"].text == rate(s.goodput_rps, "req")
    assert out["QoE"].text == sig(s.qoe.median) and "expected TTFT 1 s, 4.8 tokens/s" in out["QoE"].title
    assert out["sender error"].text == duration(s.sender.p99_s)
    lat = row_of(data["latency"], "serve")
    for label, stats in (("queueing delay", s.queue_s), ("TTFT", s.ttft_s), ("TPOT", s.tpot_s), ("ITL", s.itl_s), ("E2E", s.e2e_s)):
        assert lat[label].text == f"{duration(stats.median)} · {duration(stats.p99)}", label
    assert lat["KV occupancy"].text == percent(s.kv_occupancy_max)
    assert data["judged"] == ["Judged against: SLO ttft <= 0.25 s, tpot <= 0.1 s (attainment target 90.0%); QoE expected TTFT 1 s, 4.8 tokens/s, step form."]
    assert len(data["timelines"]) == 1 and len(data["distributions"]) == 3 and data["sweeps"] is None


def test_the_per_request_qoe_and_slo_verdicts_agree_with_the_summary(real_run):
    from profiler.rundir import load_run
    from reports.sections.serving import served_workload

    run = load_run(real_run)
    ctx = context(real_run)
    served = served_workload(ctx, "serve", run.workloads["serve"])
    s = run.workloads["serve"].summary.serving
    m = served.measured
    assert served.qoe == QoE(expected_ttft_s=1.0, tokens_per_s=4.8)  # the summary's qoe_values and qoe_form (the resolved config says the same)
    assert np.nanmedian(m["qoe"]) == pytest.approx(s.qoe.median)
    assert m["meets_slo"].mean() == pytest.approx(s.slo_attainment)


def test_the_qoe_parameters_come_from_the_summary_else_from_the_config(real_run, tmp_path):
    from profiler.rundir import load_run
    from reports.sections.serving import served_workload

    run_dir = copy_run(real_run, tmp_path)
    edit_summary(run_dir / "serve", qoe_values={"expected_ttft_s": 2.0, "tokens_per_s": 10.0})  # the config still says 1 s, 4.8 tokens/s
    served = served_workload(context(run_dir), "serve", load_run(run_dir).workloads["serve"])
    assert served.qoe == QoE(expected_ttft_s=2.0, tokens_per_s=10.0)  # qoe_values, when the summary has them
    edit_summary(run_dir / "serve", qoe_values={})  # an older summary: no qoe_values
    served = served_workload(context(run_dir), "serve", load_run(run_dir).workloads["serve"])
    assert served.qoe == QoE(expected_ttft_s=1.0, tokens_per_s=4.8)  # from the resolved config


def test_the_per_request_qoe_is_recomputed_in_the_summarys_form(real_run, tmp_path):
    from profiler.characterize.serving import NS, andes_qoe, andes_qoe_authors
    from profiler.rundir import load_run
    from reports.sections.serving import _qoe_parameters, served_workload

    def recomputed(form):
        served = served_workload(context(run_dir), "serve", load_run(run_dir).workloads["serve"])
        m = served.measured.loc[served.measured["status"] == "finished"]
        f = {"step": andes_qoe, "andes_code": andes_qoe_authors}[form]
        want = [f((np.asarray(t, dtype=float) - a) / NS, 1.0, 4.8) for t, a in zip(m["token_ns"], m["arrival_ns"], strict=True)]
        return served.qoe, m["qoe"].to_numpy(dtype=float), want

    run_dir = copy_run(real_run, tmp_path)
    edit_summary(run_dir / "serve", qoe_form="andes_code", qoe_stated="expected TTFT 1 s, 4.8 tokens/s, andes_code form")
    reader, got, want = recomputed("andes_code")
    assert reader == QoE(expected_ttft_s=1.0, tokens_per_s=4.8, form="andes_code") and got == pytest.approx(want)
    path = run_dir / "serve" / "summary.json"
    data = json.loads(path.read_text())
    del data["serving"]["qoe_form"]  # a summary written before the form: its QoE is the step form's
    path.write_text(json.dumps(data))
    reader, got, want = recomputed("step")
    assert reader is not None and reader.form == "step" and got == pytest.approx(want)
    # a summary with neither qoe_values nor a config entry: the stated text, with or without its form
    s = (
        load_run(run_dir)
        .workloads["serve"]
        .summary.serving.model_copy(update={"qoe_values": {}, "qoe_stated": "expected TTFT 2 s, 3 tokens/s, andes_code form"})
    )
    assert _qoe_parameters(context(run_dir), "not-in-the-config", s) == QoE(expected_ttft_s=2.0, tokens_per_s=3.0, form="andes_code")
    s = s.model_copy(update={"qoe_stated": "expected TTFT 2 s, 3 tokens/s"})
    assert _qoe_parameters(context(run_dir), "not-in-the-config", s) == QoE(expected_ttft_s=2.0, tokens_per_s=3.0)


def test_the_page_has_the_section_escaped_and_in_order(real_run, tmp_path):
    from reports.html_report import write_report

    run_dir = copy_run(real_run, tmp_path)
    write_report(run_dir, run_dir / "report.html")
    page = (run_dir / "report.html").read_text()
    assert '<section id="serving"><h2>Serving under load</h2>' in page and 'href="#serving"' in page
    assert page.index('id="latency"') < page.index('id="serving"') < page.index('id="definitions"')
    assert "ttft &lt;= 0.25 s, tpot &lt;= 0.1 s" in page  # the SLO, stated and escaped
    assert "section-error" not in page.replace(".section-error", "")
    for term in ("Queueing delay", "SLO attainment", "Goodput", "QoE (Andes)", "Burstiness", "Offered rate", "KV occupancy", "Knee", "Closed loop"):
        assert f"<dt>{term}</dt>" in page, term


def test_the_section_is_left_out_without_a_load(tmp_path):
    from reports.html_report import write_report

    assert section(GOLDEN) is None
    run_dir = copy_run(GOLDEN, tmp_path)
    write_report(run_dir, run_dir / "report.html")
    page = (run_dir / "report.html").read_text()
    assert 'id="serving"' not in page and "Serving under load" not in page


# ---------------------------------------------------------------- failures and missing values


def test_failed_and_timed_out_requests_are_counted_and_drawn_apart(real_run, tmp_path):
    from reports.sections.serving import served_workload
    from reports.serving_figures import request_timeline

    run_dir = copy_run(real_run, tmp_path)
    path = run_dir / "serve" / "requests.parquet"
    r = pd.read_parquet(path)
    r.loc[3, ["status", "error"]] = ["failed", "RuntimeError: planted"]
    r.at[5, "token_ns"] = r.at[5, "token_ns"][:2]
    r.loc[5, "status"] = "timed_out"
    r["finished_ns"] = r["finished_ns"].astype("Int64")
    r.loc[5, "finished_ns"] = pd.NA
    r.to_parquet(path)
    data = section(run_dir)
    out = row_of(data["outcome"], "serve")
    assert out["requests"].text == "6 / 8" and out["requests"].sub == "1 failed · 1 timed out · 0 lost"
    assert out["requests"].cls == "v-bad"
    from profiler.rundir import load_run

    served = served_workload(context(run_dir), "serve", load_run(run_dir).workloads["serve"])
    assert not served.measured.loc[[3, 5], "meets_slo"].any()  # a request that did not finish meets no SLO
    fig = request_timeline(served)
    names = [t.name for t in fig.data]
    assert "failed (arrival → end)" in names and "timed out (arrival → end)" in names
    finished_bars = [t for t in fig.data if t.name.startswith("decoding")]
    assert len(finished_bars) == 1 and len(finished_bars[0].y) == 6  # the finished ones, in three segments
    assert "ttft &lt;= 0.25 s, tpot &lt;= 0.1 s" in fig.layout.title.text  # escaped for plotly, shown as <=


def test_a_workload_under_a_load_that_failed_before_its_summary_gets_a_row_that_says_so(real_run, tmp_path):
    import yaml

    run_dir = copy_run(real_run, tmp_path)
    shutil.copytree(run_dir / "serve", run_dir / "down")
    data = json.loads((run_dir / "down" / "summary.json").read_text())
    data.update(name="down", status="failed", error={"phase": "setup", "reason": "RuntimeError: planted"}, serving=None)
    (run_dir / "down" / "summary.json").write_text(json.dumps(data))
    info = json.loads((run_dir / "run.json").read_text())
    info["workloads"].append({"name": "down", "dir": "down", "type": "llm_serve", "status": "failed"})
    (run_dir / "run.json").write_text(json.dumps(info))
    config = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    config["workloads"].append({**config["workloads"][0], "name": "down"})
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    for table in ("outcome", "latency"):  # a row of its own in both tables, its status in words
        (row,) = [r for r in section(run_dir)[table].rows if r.cells and r.cells[0].text == "down"]
        assert row.cells[1].title == "no serving record: the workload failed before its requests were summarised"


def test_values_the_run_could_not_measure_are_unavailable_with_a_reason(real_run, tmp_path):
    run_dir = copy_run(real_run, tmp_path)
    edit_summary(run_dir / "serve", arrival_cv=None, arrival_cv_ci95=None, kv_occupancy_max=None, kv_bytes_total=None, sender={})
    data = section(run_dir)
    out, lat = row_of(data["outcome"], "serve"), row_of(data["latency"], "serve")
    for cell in (out["burstiness"], out["sender error"], lat["KV occupancy"]):
        assert cell.cls == "na" and cell.title and cell.text != "0", cell
    edit_summary(run_dir / "serve", load={"pattern": "closed", "concurrency": 4, "requests": 10, "sizes": {"input": {"fixed": 8}, "output": {"fixed": 8}}})
    out = row_of(section(run_dir)["outcome"], "serve")
    assert out["pattern"].text == "closed loop · 4 in flight"
    assert "closed loop" in out["burstiness"].title and "closed loop" in out["sender error"].title


# ---------------------------------------------------------------- against context


def test_itl_and_kv_against_context_are_drawn_and_stated_in_one_sentence(real_run, tmp_path):
    from profiler.format import duration, nbytes, sig
    from profiler.rundir import load_run
    from reports.html_report import write_report

    w = load_run(real_run).workloads["serve"]
    s = w.summary.serving
    itl, kv = s.itl_by_context, s.kv_by_context
    # 8 requests of 32 prompt tokens and 8 output tokens: 7 gaps each at contexts 33..39, bins of 5 tokens
    assert itl is not None and itl.gaps == 56 and itl.max_context_tokens == 39 and itl.bin_tokens == 5
    assert [(b.context_lo, b.gaps) for b in itl.bins] == [(30, 16), (35, 40)] and (itl.from_bin, itl.to_bin) == (0, 1)
    assert itl.growth == pytest.approx(itl.bins[1].itl_p50_s / itl.bins[0].itl_p50_s)
    assert kv is not None and kv.declared_bytes_per_token == w.summary.facts["kv_bytes_per_token"] and kv.page_tokens == 32
    data = section(real_run)
    first = data["context_lines"][0]
    assert first.startswith(f"serve: ITL p50 went from {duration(itl.bins[0].itl_p50_s)} at 30–34 tokens of context to {duration(itl.bins[1].itl_p50_s)}")
    assert f"(× {sig(itl.growth)};" in first and f"grew {nbytes(kv.slope_bytes_per_token)} per token of context held" in first
    assert f"measured ÷ declared {sig(kv.slope_over_declared)}" in first and "pages of 32 tokens" in first
    (fig,) = data["context_figures"]
    assert "serving-context" in fig
    run_dir = copy_run(real_run, tmp_path)
    write_report(run_dir, run_dir / "report.html")
    page = (run_dir / "report.html").read_text()
    assert "<h3>Per-token latency and KV cache against context</h3>" in page and "serving-context" in page
    for term in ("ITL against context", "KV bytes per token of context", "Capped lognormal"):
        assert f"<dt>{term}</dt>" in page, term


def test_a_changing_batch_capped_sizes_and_a_missing_kv_fit_are_said(real_run, tmp_path):
    from profiler.rundir import load_run
    from reports.sections.serving import context_sentences, served_workload
    from reports.serving_figures import context_growth

    run_dir = copy_run(real_run, tmp_path)
    itl = load_run(run_dir).workloads["serve"].summary.serving.itl_by_context.model_dump()
    itl.update(running_min=1.0, running_max=3.0, batch_changed=True, running_from="engine samples")
    sizes = {"input": {"fixed": 32}, "output": {"lognormal": {"median": 256, "sigma": 1.0, "max": 1024}}}
    load = {"pattern": "closed", "concurrency": 1, "requests": 8, "sizes": sizes}
    why = "a KV growth fit needs at least 3 engine samples with a KV reading (got 1)"
    edit_summary(run_dir / "serve", itl_by_context=itl, kv_by_context=None, context_unavailable={"kv_by_context": why}, sizes_capped={"output": 1}, load=load)
    served = served_workload(context(run_dir), "serve", load_run(run_dir).workloads["serve"])
    lines = context_sentences(served, contended="contended: other processes used 1.2 of its 2 cores (median)")
    assert lines[0].endswith(f"; KV bytes against context unavailable: {why}.")
    assert lines[1].startswith("serve: measured under contention (contended: other processes used 1.2") and lines[1].endswith("no claim.")
    assert lines[2] == (
        "serve: the running batch changed across the context bins (median 1.00 to 3.00, engine samples; ≥ 1.5×): "
        "ITL against context there mixes the context's cost with the batch's."
    )
    assert lines[3] == "serve: output lengths lognormal median 256, sigma 1.00, capped at 1,024 tokens: 1 of 8 requests drawn above the cap were set to it."
    fig = context_growth(served, None)
    assert [t.name for t in fig.data] == ["ITL p90", "ITL p50 (band: to p90)"]  # no KV fit: the ITL half alone
    edit_summary(run_dir / "serve", itl_by_context=None, context_unavailable={"itl_by_context": "no finished measured request with 2 or more tokens"})
    served = served_workload(context(run_dir), "serve", load_run(run_dir).workloads["serve"])
    assert context_sentences(served)[0].startswith("serve: ITL against context unavailable: no finished measured request with 2 or more tokens;")
    assert context_growth(served, None) is None


# ---------------------------------------------------------------- rate sweeps


def test_a_rate_sweep_gives_the_knee_and_the_highest_rate_meeting_the_target(real_run, tmp_path):
    from reports.sections.serving import sweep_curve

    run_dir = copy_run(real_run, tmp_path)
    names = add_sweep(run_dir, SWEEP)
    data = section(run_dir)
    (row,) = data["sweeps"].rows
    cells = {c.label: cell for c, cell in zip(data["sweeps"].columns, row.cells, strict=True)}
    assert cells["sweep"].text == "rate"
    assert cells["knee (p90 TTFT)"].text == "16.0 req/s" and cells["knee (p90 TTFT)"].sub == "p90 TTFT 100 ms"
    best = cells["highest rate meeting the target"]
    assert best.text == "12.0 req/s (interpolated)" and best.sub == "interpolated between 8 and 16 req/s"
    assert len(data["sweep_figures"]) == 2
    assert len(data["timelines"]) == 1 and data["timelines_left_out"] == names  # the sweep points are in the tables, not drawn
    assert [row_of(data["outcome"], n)["SLO attainment"].cls for n in names] == ["v-good", "v-good", "v-bad", "v-bad"]
    # the highest point still meeting the target is measured, "at least"
    from profiler.rundir import load_run
    from reports.sections.serving import served_workload

    run = load_run(run_dir)
    ctx = context(run_dir)
    points = [served_workload(ctx, n, run.workloads[n]) for n in names]
    for p in points:
        p.serving.slo_attainment = 1.0
    curve = sweep_curve(points)
    assert curve.max_rate.rate == 32 and curve.max_rate.basis.startswith("at least")


def test_only_sweep_points_still_get_a_timeline(real_run, tmp_path):
    run_dir = copy_run(real_run, tmp_path)
    add_sweep(run_dir, SWEEP)
    info = json.loads((run_dir / "run.json").read_text())
    info["workloads"] = [w for w in info["workloads"] if w["name"] != "serve"]
    info["baseline"] = None
    (run_dir / "run.json").write_text(json.dumps(info))
    data = section(run_dir)
    assert len(data["timelines"]) == 1 and data["timelines_left_out"] == ["rate[load.rate=2]", "rate[load.rate=8]", "rate[load.rate=16]"]


# ---------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_the_section_renders_in_chromium_without_errors(real_run, tmp_path):
    from reports.html_report import write_report

    sync_api = pytest.importorskip("playwright.sync_api")
    run_dir = copy_run(real_run, tmp_path)
    add_sweep(run_dir, SWEEP)
    write_report(run_dir, run_dir / "report.html")
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://") else route.abort())
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((run_dir / "report.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === document.querySelectorAll('.plotly-graph-div').length", timeout=30_000)
        figures = page.locator("#serving .plotly-graph-div").count()
        rendered = page.evaluate("[...document.querySelectorAll('#serving .plotly-graph-div')].filter(d => d.querySelector('.main-svg')).length")
        overflowing = page.evaluate("[...document.querySelectorAll('#serving table')].filter(t => t.getBoundingClientRect().right > window.innerWidth).length")
        browser.close()
    assert errors == []
    assert figures == 7 and rendered == figures  # a timeline, against context, three distributions, two sweep figures
    assert overflowing == 0


def test_latency_against_load_says_how_many_requests_of_each_point_did_not_finish(real_run, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from profiler.rundir import load_run
    from reports.sections.serving import served_workload, sweep_curve
    from reports.serving_figures import sweep_latency

    run_dir = copy_run(real_run, tmp_path)
    names = add_sweep(run_dir, SWEEP)
    path = run_dir / "rate" / "load.rate-32" / "requests.parquet"
    table = pq.read_table(path).to_pandas()
    table.loc[table.index[-3:], "status"] = "timed_out"  # the last 3 requests of the highest rate never ended
    pq.write_table(pa.Table.from_pandas(table, schema=pq.read_schema(path), preserve_index=False), path)
    run, ctx = load_run(run_dir), context(run_dir)
    curve = sweep_curve([served_workload(ctx, n, run.workloads[n]) for n in names])
    fig = sweep_latency("rate", curve)
    labels = [t for trace in fig.data if trace.mode == "text" for t in trace.text]
    measured = int(table["measured"].sum())
    assert labels == [f"3/{measured} did not finish"] * 2  # over the TTFT and the E2E panel, at the point that had them
    hover = next(trace.text for trace in fig.data if trace.mode == "lines+markers")
    assert f"3 of {measured} measured requests did not finish" in hover[-1] and "0 of" in hover[0]
    assert "percentiles over finished requests" in fig.layout.title.text
