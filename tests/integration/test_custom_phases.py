"""A plugin with phase names of its own gets every comparison the built-ins get.

The differences read the declaration (request, step, deliveries), never a phase name: a workload
that calls its phases serve / ingest / refine / emit (tests/plugins/custom_phases.py) must get
the same rows as one that calls them prefill / decode_step, against an llm_decode baseline, run
through the CLI as a user runs it. Also: the declaration is stored in summary.json, a declared
phase that is never marked is a warning, and an invalid declaration() fails `validate` with one
line naming the plugin.
"""

from __future__ import annotations

import json

import pytest

from profiler.plugin import Declaration
from reports.characteristics import CHARACTERISTICS, Kind
from tests.conftest import FAST_MEASURE, assert_one_line_error, run_cli, run_suite_text
from tests.plugins.custom_phases import CustomPhases

PLUGIN = "tests.plugins.custom_phases:CustomPhases"
SUITE = f"""\
name: custom-phases
baseline: llm
device: cpu
{FAST_MEASURE}
workloads:
  - name: llm
    type: llm_decode
    params: {{preset: llama-tiny, prompt_len: 16, gen_len: 8}}
  - name: custom
    type: {PLUGIN}
    params: {{prompt_len: 16, steps: 8}}
  - name: stale
    type: {PLUGIN}
    params: {{prompt_len: 4, steps: 2, width: 16, unmarked_inference: true}}
"""

COMPARED = [
    "latency_e2e",
    "latency_per_step",
    "state_per_token",
    "latency_growth_per_token",
    "intensity",
    "mfu",
    "mbu",
    "bound",
    "dominant_op",
    "host_overhead_share",
]
"""Rows that must be compared (not unavailable): everything one CPU run of a decode loop can give."""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    _, run = run_suite_text(tmp_path_factory.mktemp("custom"), SUITE, "--no-report", timeout=240)
    return run


@pytest.fixture(scope="module")
def rows(run) -> dict[str, dict]:
    records = json.loads((run.path / "differences.json").read_text())
    return {r["characteristic"]: r for r in records if r["workload"] == "custom"}


def test_phases_share_no_name_with_the_baseline(run):
    custom = set(run.workloads["custom"].spans["phase"])
    assert custom == {"iteration", "serve", "ingest", "refine", "emit"}
    assert custom & set(run.workloads["llm"].spans["phase"]) == {"iteration"}


def test_every_characteristic_has_a_row(rows):
    # presence rows (deadlines) are left out where neither workload has the thing; request-pattern and objective rows
    # need a serving baseline (a workload under a load), which this suite has not
    assert set(rows) == {key for key, c in CHARACTERISTICS.items() if c.kind != Kind.PRESENCE and c.axis == "architecture"}
    assert all(r["baseline"] == "llm" for r in rows.values())


@pytest.mark.parametrize("key", COMPARED)
def test_compared_like_a_built_in(rows, key):
    row = rows[key]
    assert row["verdict"] not in ("unavailable", "baseline unavailable", "not comparable"), (key, row["why_unavailable"])
    assert row["value"] is not None and row["baseline_value"] is not None, row
    # compared: a verdict, or "inconclusive" with the reason (too few samples, contention on a busy machine, a weak fit)
    assert row["why_unavailable"] is None or row["verdict"] == "inconclusive", row


def test_rows_read_the_declared_phases(rows):
    assert "'serve' spans, from the observation's capture (obs_ns)" in rows["latency_e2e"]["basis"]
    for key in ("latency_per_step", "state_per_token", "latency_growth_per_token"):
        assert rows[key]["basis"] == "'refine' spans", rows[key]
    for key in ("intensity", "mfu", "mbu", "bound", "dominant_op"):
        assert rows[key]["basis"].split(":")[0] == "'refine'", rows[key]  # the bound class adds its evidence
    # the cache grows by 2 * width * 4 bytes per token of context (batch 1): the slope is exact
    assert rows["state_per_token"]["value"] == pytest.approx(2 * 128 * 4)
    assert rows["state_per_token"]["unit"] == "B/token"


def test_rows_without_a_sweep_or_gpu_say_why(rows):
    for key in ("batching_gain", "energy_per_unit"):
        row = rows[key]
        if row["verdict"] == "unavailable":
            assert row["why_unavailable"], row
            assert row["reading"].startswith("Not compared: "), row


def test_summary_stores_the_declaration_and_the_delivery_metrics(run):
    custom = run.workloads["custom"]
    assert custom.status == "ok"
    stored = json.loads((custom.path / "summary.json").read_text())["declaration"]
    declared = CustomPhases.declaration(CustomPhases.Params(prompt_len=16, steps=8))
    assert Declaration.model_validate(stored) == declared
    assert stored["request"] == "serve" and stored["step"] == "refine" and stored["deliveries"] == ["emit"]
    assert custom.summary.declaration == declared
    metrics = custom.summary.metrics
    for name in ("ttft_s", "tpot_s", "itl_s", "request_latency_s"):
        assert getattr(metrics, name).count >= 3, name
    assert not [w for w in custom.summary.warnings if "declaration" in w]


def test_a_declared_phase_never_marked_is_a_warning(run):
    warnings = run.workloads["stale"].summary.warnings
    assert any("'actuate'" in w and "inference" in w and "no measured span" in w for w in warnings), warnings


@pytest.mark.parametrize(
    "cls, needle",
    [
        ("StepIsIteration", "step"),
        ("UnknownTrait", "telepathic"),
        ("NotADeclaration", "not a profiler.Declaration"),
    ],
)
def test_an_invalid_declaration_fails_validate_naming_the_plugin(write_suite, cls, needle):
    plugin = f"tests.plugins.bad_declarations:{cls}"
    suite = write_suite(f"name: s\nworkloads:\n  - name: w\n    type: {plugin}\n")
    assert_one_line_error(run_cli("validate", suite), plugin, "declaration()", needle)
