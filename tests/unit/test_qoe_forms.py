"""The two forms of Andes' QoE (issue 26): `step`, the paper's definition on the step curves of discrete tokens
(andes_qoe, the default), and `andes_code`, the Andes authors' own QoETracker.get_QoE (github.com/AmberLJC/vllm,
vllm/core/andes_utils/qoe_tracker.py, commit de95ef3; andes_qoe_authors). Every expectation is worked by hand
below from the formulas in the two functions' docstrings; one is the authors' own worked example."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from profiler.characterize.serving import QOE_FORMS, andes_qoe, andes_qoe_authors, qoe_of, serving_summary
from profiler.characterize.streams import qoe_samples
from profiler.loadconfig import LoadConfig, Objective
from profiler.plugin import Declaration, QoE
from profiler.runmodel import LoadFacts, Serving
from tests.conftest import cli_in_process

# the Andes authors' example: AmberLJC/vllm-0.6.1 at 5597260, vllm/core/andes_utils/test_qoe_tracker.py, "17.5/66"
AUTHORS_EXAMPLE = [10.0, 10.5, 11.0, 11.5, 12.0, 12.5]


def test_the_authors_own_example_is_17_5_over_66_and_22_percent_above_the_step_form():
    # andes_code at 1 s and 1 token/s (L = 1): b_1 = max(0, 1 - 9) = 0, then b_k = b_(k-1) + 1 - 0.5 = 0.5, 1, 1.5, 2, 2.5 > 0,
    # so every display gap is L: S_actual = (1.5 + 2.5 + 3.5 + 4.5 + 5.5) * 1 = 17.5; a_6 = 12.5 >= 1 + 6 (late), T = 12.5 + 2.5 = 15,
    # S_target = 6 * (15 - 1) - 36 / 2 = 66
    theirs = andes_qoe_authors(AUTHORS_EXAMPLE, 1.0, 1.0)
    assert theirs == pytest.approx(17.5 / 66)
    # step: d = 10, 11, ..., 15 (one a second); e = 1, ..., 6; T = 15: (5 + 4 + 3 + 2 + 1 + 0) / (14 + 13 + ... + 9) = 15 / 69
    ours = andes_qoe(AUTHORS_EXAMPLE, 1.0, 1.0)
    assert ours == pytest.approx(15 / 69)
    assert theirs / ours == pytest.approx(17.5 / 66 * 69 / 15)  # 1.22: 22% higher


def test_a_late_stream_buffered_at_the_readers_pace_is_6_percent_higher_in_the_authors_form():
    # 25 tokens every 0.2 s from 5 s, a reader expecting the first at 1 s then 4 tokens/s (L = 0.25)
    tokens = [5 + 0.2 * k for k in range(25)]
    # step: d_k = 5 + 0.25 (k - 1) (the reader is slower than the tokens), e_k = 1 + 0.25 (k - 1), T = d_25 = 11:
    # sum(T - d) = 25 * 6 - 0.25 * 300 = 75, sum(T - e) = 25 * 10 - 75 = 175
    assert andes_qoe(tokens, 1.0, 4.0) == pytest.approx(75 / 175)
    # andes_code: b_1 = 0, b_k = 0.2 (k - 1) > 0, every gap is L: S_actual = 0.25 * sum_(k=2..25) (k - 1/2) = 0.25 * 312 = 78;
    # late (9.8 >= 1 + 6.25): T = 9.8 + 4.8 * 0.25 = 11, S_target = 25 * 10 - 625 * 0.25 / 2 = 171.875
    assert andes_qoe_authors(tokens, 1.0, 4.0) == pytest.approx(78 / 171.875)
    assert andes_qoe_authors(tokens, 1.0, 4.0) / andes_qoe(tokens, 1.0, 4.0) == pytest.approx(1.0589, abs=1e-4)


@pytest.mark.parametrize("at", [0.5, 1.0])
def test_an_on_time_one_token_answer_is_1_in_the_step_form_and_0_in_the_authors(at):
    # andes_code: no trapezoid for one token (S_actual = 0), S_target = 1 * L / 2 > 0
    assert andes_qoe([at], 1.0, 4.8) == 1.0
    assert andes_qoe_authors([at], 1.0, 4.8) == 0.0


def test_the_authors_form_does_not_see_a_late_start_when_the_last_token_is_on_time():
    # three tokens at 3 s against 1 s and 1 token/s: b = 0, 1, 2, gaps L, L: S_actual = 1.5 + 2.5 = 4; a_3 = 3 < 1 + 3 (on time):
    # S_target = 9 / 2. The step form: d = 3, 4, 5; e = 1, 2, 3; T = 5: (2 + 1 + 0) / (4 + 3 + 2)
    assert andes_qoe_authors([3.0, 3.0, 3.0], 1.0, 1.0) == pytest.approx(8 / 9)
    assert andes_qoe([3.0, 3.0, 3.0], 1.0, 1.0) == pytest.approx(1 / 3)


def test_an_empty_stream_has_no_qoe_and_bad_parameters_are_refused():
    assert math.isnan(andes_qoe_authors([], 1.0, 1.0))  # the authors' code returns 1: no stream is no QoE here
    with pytest.raises(ValueError):
        andes_qoe_authors([1.0], 1.0, 0.0)


def test_the_form_is_the_objectives_choice_step_by_default_and_stated():
    assert set(QOE_FORMS) == {"step", "andes_code"}
    assert QoE().form == "step" and Objective().qoe.form == "step"
    assert QoE().stated() == "expected TTFT 1 s, 4.8 tokens/s, step form"
    reader = Objective.model_validate({"qoe": {"expected_ttft_s": 1.0, "tokens_per_s": 1.0, "form": "andes_code"}}).qoe
    assert reader.stated() == "expected TTFT 1 s, 1 tokens/s, andes_code form"
    assert qoe_of(AUTHORS_EXAMPLE, reader) == pytest.approx(17.5 / 66)
    with pytest.raises(ValidationError):
        QoE.model_validate({"form": "trapezoid"})


def test_an_unknown_form_in_a_suite_is_one_line(write_suite):
    suite = """\
name: s
workloads:
  - name: serve
    type: toy_serve
    load: {pattern: poisson, rate: 4, requests: 4, sizes: {input: {fixed: 4}, output: {fixed: 2}}}
    objective: {qoe: {form: %s}}
"""
    code, _, err = cli_in_process("validate", write_suite(suite % "andes_code"))
    assert code == 0, err
    code, _, err = cli_in_process("validate", write_suite(suite % "trapezoid"))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "workloads[0].objective.qoe.form" in lines[0] and "Traceback" not in err


def requests(streams: list[list[float]]) -> pd.DataFrame:
    """requests.parquet's columns for finished measured requests that arrive at 0 with tokens at these seconds."""
    ns = 10**9
    return pd.DataFrame(
        [
            {"index": i, "measured": True, "status": "finished", "arrival_ns": 0, "sent_ns": 0, "scheduled_ns": 0,
             "token_ns": [int(t * ns) for t in tokens], "finished_ns": int(tokens[-1] * ns)}
            for i, tokens in enumerate(streams)
        ]
    )  # fmt: skip


@pytest.mark.parametrize(("form", "values"), [("step", (15 / 69, 1.0)), ("andes_code", (17.5 / 66, 0.0))])
def test_the_serving_summary_computes_and_records_the_objectives_form(form, values):
    load = LoadConfig.model_validate({"pattern": "poisson", "rate": 1, "requests": 2, "sizes": {"input": {"fixed": 4}, "output": {"fixed": 1}}})
    objective = Objective.model_validate({"qoe": {"expected_ttft_s": 1.0, "tokens_per_s": 1.0, "form": form}})
    s = serving_summary(requests([AUTHORS_EXAMPLE, [0.5]]), None, LoadFacts(), load, objective)
    assert s.qoe_form == form and s.qoe_stated == f"expected TTFT 1 s, 1 tokens/s, {form} form"
    assert s.qoe.count == 2 and s.qoe.median == pytest.approx(np.mean(values))
    assert s.qoe_at_least_0_9 == pytest.approx(np.mean(np.asarray(values) >= 0.9))


def test_an_older_summary_without_a_form_was_computed_in_the_step_form():
    load = {"pattern": "constant", "rate": 1, "requests": 1, "sizes": {"input": {"fixed": 4}, "output": {"fixed": 1}}}
    older = {"slo": "none", "slo_values": {}, "attainment_target": 0.9, "qoe_stated": "expected TTFT 1 s, 4.8 tokens/s"}
    s = Serving.model_validate({"load": load, **older, "requests": 1, "measured_requests": 1, "status_counts": {}})
    assert s.qoe_form == "step" and s.qoe_stated == "expected TTFT 1 s, 4.8 tokens/s, step form"  # stated wherever it is shown


def test_a_workloads_declared_listener_is_judged_in_its_own_form():
    # one request of an iteration, five tokens delivered at 3 s after it started (Declaration.qoe, no presentation phase)
    rows = [{"iteration": 0, "phase": "iteration", "start_ns": 0, "end_ns": 4 * 10**9, "units": 0, "request_id": None}]
    rows += [{"iteration": 0, "phase": "query", "start_ns": 0, "end_ns": 3 * 10**9, "units": 0, "request_id": 0}]
    rows += [{"iteration": 0, "phase": "decode", "start_ns": 2 * 10**9, "end_ns": 3 * 10**9, "units": 3, "request_id": 0}]
    spans = pd.DataFrame(rows)
    for form, want in (("step", 1 / 3), ("andes_code", 8 / 9)):
        decl = Declaration(output_unit="token", request="query", deliveries=("decode",), qoe=QoE(expected_ttft_s=1.0, tokens_per_s=1.0, form=form))
        assert qoe_samples(spans, decl) == pytest.approx([want])
