"""The typed run model: summaries written by this release validate and carry their schema; runs of
the previous release (schema 1) read back with the same findings; an unknown version is one line."""

from __future__ import annotations

import json
import shutil

import pytest

from profiler import load_run
from profiler.errors import UserError
from profiler.runmodel import SCHEMA_VERSION, WorkloadSummary, summary_json_schema
from reports.differences import differences
from tests.conftest import ROOT, assert_one_line_error, run_cli

GOLDEN = ROOT / "tests" / "data" / "golden-run"
GOLDEN_V1 = ROOT / "tests" / "data" / "golden-run-v1"


def test_golden_run_is_current_and_every_summary_validates():
    run = load_run(GOLDEN)
    assert run.schema_version == SCHEMA_VERSION and run.all_problems() == []
    written = json.loads((GOLDEN / "summary.schema.json").read_text())  # written with the run
    assert written["title"] == summary_json_schema()["title"] and set(written["properties"]) <= set(summary_json_schema()["properties"])
    for w in run.workloads.values():
        raw = json.loads((w.path / "summary.json").read_text())
        assert WorkloadSummary.model_validate(raw).model_dump(mode="json", exclude_unset=True) == raw  # a round trip loses nothing
    assert run.workloads["llm"].declaration.step == "decode_step"
    assert run.workloads["vla"].declaration.request == "infer"
    assert run.workloads["broken"].summary.status == "failed" and run.workloads["broken"].summary.error.phase == "measure"


def test_a_schema_1_run_reads_with_the_plugins_declarations_and_no_finding_flips():
    """The previous release's golden run, read by this one: every ratio equals what that release
    wrote into its differences.json, and no direction flips. A direction may become
    "inconclusive" (this release issues one only where it would survive a rerun: 3 iterations are
    too few samples, a fit that cannot tell flat from growing gives none)."""
    run = load_run(GOLDEN_V1)
    assert run.schema_version == 1
    assert run.workloads["diffusion"].declaration.step == "denoise_step"
    assert "installed plugin" in run.workloads["diffusion"].summary.declaration_source
    assert "0.1 rule" in run.workloads["broken"].summary.declaration_source  # a module:Class plugin: inferred
    assert run.workloads["vla"].summary.deadlines.miss_rate.count == 3
    then = {(r["workload"], r["characteristic"]): r for r in json.loads((GOLDEN_V1 / "differences.json").read_text())}
    now = {(r["workload"], r["characteristic"]): r for r in differences(run, seed=0).to_dict("records")}
    assert set(now) == set(then)
    # One fix on purpose: across position units the 0.1 release called any slope whose interval
    # excluded 0 "growing", so diffusion's falling per-step latency read "lower" against a baseline
    # that did not grow either. A falling or unclear slope now gives no direction.
    fixed = ("diffusion", "latency_growth_per_token")
    assert then[fixed]["verdict"] == "lower" and now[fixed]["verdict"] == "inconclusive"
    directions = {"higher", "lower", "differs", "present"}
    for key, old in then.items():
        if key == fixed:
            continue
        if now[key]["verdict"] == "inconclusive":
            assert now[key]["why_unavailable"], key
            continue
        if old["verdict"] in directions:
            assert now[key]["verdict"] == old["verdict"], key
        if old["ratio"] is not None and now[key]["ratio"] is not None:
            assert now[key]["ratio"] == pytest.approx(old["ratio"], rel=1e-9), key


def test_an_unreadable_schema_version_is_one_line_naming_it(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(GOLDEN, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info["schema_version"] = 99
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match="schema version 99"):
        load_run(run_dir)
    line = assert_one_line_error(run_cli("report", run_dir), "schema version 99", "reads versions 1, 2")
    assert "profiler_version" in line
    assert_one_line_error(run_cli("compare", GOLDEN, run_dir), "schema version 99")


def test_version_flag_names_the_release_and_the_schema():
    result = run_cli("--version")
    assert result.returncode == 0 and "ml-workload-profiler" in result.stdout and f"writes schema {SCHEMA_VERSION}" in result.stdout
