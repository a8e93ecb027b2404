"""The workload declaration: validated, with errors that say what to fix; readings from rules.yaml
land only on workloads that declare the traits they were written for."""

from __future__ import annotations

import json
import shutil

import pytest
from pydantic import ValidationError

from profiler import load_run
from profiler.plugin import Declaration, Resources, Trait, declaration_of
from reports.characteristics import CHARACTERISTICS, Better, Kind
from reports.differences import Verdict, differences, load_rules
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "data" / "golden-run"


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"step": "iteration"}, "runner's span"),
        ({"deliveries": ["iteration"]}, "delivers nothing"),
        ({"position_unit": "token"}, "step is not"),
        ({"traits": ["diffusion"]}, "diffusion"),
        ({"resources": {"cpu_cores": 0}}, "greater than or equal to 1"),
        ({"stepp": "x"}, "Extra inputs"),
    ],
)
def test_invalid_declarations_say_what_is_wrong(fields, needle):
    with pytest.raises((ValidationError, ValueError), match=needle):
        Declaration.model_validate(fields)


def test_defaults_and_round_trip():
    d = Declaration()
    assert d.request == "iteration" and d.step is None and d.main_phase() == "iteration" and d.resources == Resources()
    full = Declaration(step="s", deliveries=("s",), position_unit="step", traits={Trait.SINGLE_PASS}, resources=Resources(cpu_cores=2, gpus=0))
    assert Declaration.model_validate_json(full.model_dump_json()) == full
    assert Declaration.model_validate(json.loads(full.model_dump_json())) == full


def test_a_plugin_without_a_declaration_gets_the_default_and_a_wrong_return_is_an_error():
    class Bare:
        pass

    class Wrong:
        @classmethod
        def declaration(cls, params):
            return {"step": "iteration"}

    class NotOne:
        @classmethod
        def declaration(cls, params):
            return 42

    assert declaration_of(Bare, None) == Declaration()
    with pytest.raises(ValidationError):
        declaration_of(Wrong, None)
    with pytest.raises(TypeError, match="not a profiler.Declaration"):
        declaration_of(NotOne, None)


def test_every_characteristic_is_described_and_every_rule_is_valid():
    for key, c in CHARACTERISTICS.items():
        assert c.label and c.short and len(c.short) <= 16 and isinstance(c.kind, Kind) and isinstance(c.better, Better), key
    rules = load_rules()
    assert rules and all(r.characteristic in CHARACTERISTICS for r in rules)


def test_a_bad_rule_is_named(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("- {characteristic: latency_per_step, verdict: higher, traits: [difusion], reading: x}\n")
    with pytest.raises(ValueError, match="rule 0"):
        load_rules(bad)


def test_a_reading_written_for_diffusion_never_lands_on_another_kind_of_workload(tmp_path):
    """The golden diffusion's steps cost more than a decode step: the iterative-refinement reading
    applies. Declared as a single-pass classifier instead, the same numbers get the general reading."""
    run_dir = tmp_path / "run"
    shutil.copytree(GOLDEN, run_dir)

    def step_row(run_path):
        diffs = differences(load_run(run_path))
        return diffs[(diffs["workload"] == "diffusion") & (diffs["characteristic"] == "latency_per_step")].iloc[0]

    row = step_row(run_dir)
    assert row["verdict"] == Verdict.HIGHER.value and row["ratio"] >= 1.5
    assert "heavier steps" in row["reading"] and "prefill" in row["source"]
    summary_path = run_dir / "diffusion" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["declaration"]["traits"] = ["single_pass"]
    summary_path.write_text(json.dumps(summary))
    row = step_row(run_dir)
    assert row["verdict"] == Verdict.HIGHER.value
    assert "heavier steps" not in row["reading"] and "prefill" not in row["source"]


@pytest.mark.parametrize(
    "shape, needle, not_needle",
    [
        ("constant", "no KV cache to page", None),
        ("hybrid", "only its few attention layers hold a KV cache", "no KV cache to page"),
        ("bounded", "stops growing at the window", "no KV cache to page"),
        ("grows", "still growing with context", "no KV cache to page"),
        (None, "per request", "no KV cache to page"),
    ],
)
def test_state_readings_follow_the_declared_shape(shape, needle, not_needle):
    """Issue 11 case 11: "paging does not apply" only where no KV cache exists."""
    from types import SimpleNamespace

    from reports.characteristics import Value
    from reports.differences import Comparison, reading

    view = SimpleNamespace(declaration=Declaration())
    w = Value(512.0, "B/token", state_shape=shape)
    b = Value(8192.0, "B/token", state_shape="grows")
    text, lever, _ = reading(load_rules(), "state_per_token", Comparison(Verdict.LOWER, ratio=1 / 16), "w", "llm", w, b, (view, view))
    assert needle in text
    if not_needle:
        assert not_needle not in text
