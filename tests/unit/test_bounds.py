"""Every number of a suite has a bound a real run can meet, checked by `validate`: a value just outside is one
line naming its key, the bound itself (or a realistic value at the edge) is accepted. Then the checks across
fields (profiler/suite/feasibility.py): what a load asks for must fit in measure.max_seconds, on each side of
each rule. In-process through the CLI's entry point."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from profiler.errors import UserError
from tests.conftest import cli_in_process

MEASURE = {"warmup_iters": 0, "min_iters": 1, "min_seconds": 0, "max_seconds": 5}
SIZES = {"input": {"fixed": 8}, "output": {"fixed": 4}}
POISSON = {"pattern": "poisson", "rate": 2, "requests": 4, "sizes": SIZES}


def suite_of(wtype: str = "toy", params: dict | None = None, load: dict | None = None, measure: dict | None = None) -> dict:
    entry: dict = {"name": "w", "type": wtype, "params": params or {}}
    if load is not None:
        entry["load"] = load
    return {"name": "s", "measure": {**MEASURE, **(measure or {})}, "workloads": [entry]}


def validate(tmp_path: Path, data: dict, *extra: str) -> tuple[int, list[str]]:
    """(exit status, non-blank stderr lines) of `validate` on `data` written as YAML."""
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = cli_in_process("validate", path, *extra)
    return code, [line for line in err.splitlines() if line.strip()]


def refused(tmp_path: Path, data: dict, *needles: str, extra: tuple[str, ...] = ()) -> str:
    code, lines = validate(tmp_path, data, *extra)
    assert code == 2 and len(lines) == 1, (code, lines)
    line = lines[0]
    assert line.startswith(f"error: {tmp_path / 'suite.yaml'}:") or line.startswith("error: --set"), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def accepted(tmp_path: Path, data: dict, *extra: str) -> None:
    code, lines = validate(tmp_path, data, *extra)
    assert code == 0 and not lines, (code, lines)


def put(data: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


SERVE = suite_of("toy_serve", load=POISSON)
TRACE = str(Path(__file__).resolve().parents[2] / "configs" / "traces" / "mooncake.jsonl")
TRACED = suite_of("toy_serve", load={"pattern": "trace", "trace": TRACE, "requests": 1})
GAMMA = suite_of("toy_serve", load={**POISSON, "pattern": "gamma", "burstiness": 1.0})
CLOSED = suite_of("toy_serve", load={"pattern": "closed", "concurrency": 2, "requests": 4, "sizes": SIZES})
DAY = {"max_seconds": 86_400}
M = ("measure",)
L = ("workloads", 0, "load")
P = ("workloads", 0, "params")
IN = (*L, "sizes", "input")
BIG = 10_000_000


def _with(data: dict, **measure) -> dict:
    return put(data, ("measure",), {**data["measure"], **measure})


# (base suite, key path, value just outside the bound, the bound itself or a realistic value at the edge, needle)
FIELD_BOUNDS = [
    (suite_of(), (*M, "max_seconds"), 0.09, 0.1, "measure.max_seconds"),
    (suite_of(), (*M, "max_seconds"), 86_400.5, 86_400, "measure.max_seconds"),
    (suite_of(), (*M, "max_seconds"), math.inf, 60.0, "measure.max_seconds"),
    (suite_of(), (*M, "max_seconds"), math.nan, 60.0, "measure.max_seconds"),
    (suite_of(), (*M, "min_seconds"), -0.001, 0, "measure.min_seconds"),
    (_with(suite_of(), max_seconds=86_400), (*M, "min_seconds"), 86_400.5, 86_400, "measure.min_seconds"),
    (_with(suite_of(), max_seconds=100), (*M, "sample_hz"), 0.0099, 0.01, "measure.sample_hz"),
    (suite_of(), (*M, "sample_hz"), 1000.5, 1000, "measure.sample_hz"),
    (suite_of(), (*M, "setup_timeout_s"), 0.99, 1, "measure.setup_timeout_s"),
    (suite_of(), (*M, "setup_timeout_s"), 86_400.5, 86_400, "measure.setup_timeout_s"),
    (suite_of(), (*M, "hang_grace_s"), 0.99, 1, "measure.hang_grace_s"),
    (suite_of(), (*M, "hang_grace_s"), 3600.5, 3600, "measure.hang_grace_s"),
    (suite_of(), (*M, "warmup_iters"), 100_001, 100_000, "measure.warmup_iters"),
    (suite_of(), (*M, "min_iters"), 0, 1, "measure.min_iters"),
    (suite_of(), (*M, "repeats"), 51, 50, "measure.repeats"),
    # load
    (_with(put(SERVE, (*L, "requests"), 1), **DAY), (*L, "rate"), 9.9e-6, 1 / 86_400, "load.rate"),
    (SERVE, (*L, "rate"), 1_000_001, 1_000_000, "load.rate"),
    (SERVE, (*L, "rate"), math.nan, 2.0, "load.rate"),
    (GAMMA, (*L, "burstiness"), 0.0099, 0.01, "load.burstiness"),
    (GAMMA, (*L, "burstiness"), 1_000_001, 1_000_000, "load.burstiness"),
    (TRACED, (*L, "time_scale"), 0.00099, 0.001, "load.time_scale"),
    (TRACED, (*L, "time_scale"), 1_000_001, 1_000_000, "load.time_scale"),
    (TRACED, (*L, "token_scale"), 0.000099, 0.0001, "load.token_scale"),
    (TRACED, (*L, "token_scale"), 1000.5, 1000, "load.token_scale"),
    (put(SERVE, (*L, "rate"), 1000), (*L, "requests"), 0, 1, "load.requests"),
    (_with(put(SERVE, (*L, "rate"), 1_000_000), **DAY), (*L, "requests"), BIG + 1, BIG, "load.requests"),
    (put(put(SERVE, (*L, "requests"), None), (*L, "rate"), 1000), (*L, "duration_s"), 0.00099, 0.001, "load.duration_s"),
    (_with(put(put(SERVE, (*L, "requests"), None), (*L, "rate"), 1), **DAY), (*L, "duration_s"), 86_400.5, 86_400, "load.duration_s"),
    (SERVE, (*L, "warmup_requests"), -1, 0, "load.warmup_requests"),
    (SERVE, (*L, "cooldown_requests"), -1, 3, "load.cooldown_requests"),
    (CLOSED, (*L, "concurrency"), 0, 1, "load.concurrency"),
    (CLOSED, (*L, "concurrency"), 100_001, 100_000, "load.concurrency"),
    (SERVE, (*L, "seed"), -1, 0, "load.seed"),
    (SERVE, (*L, "seed"), 2**63, 2**63 - 1, "load.seed"),
    (SERVE, (*IN, "fixed"), 0, 1, "sizes.input.fixed"),
    (SERVE, (*IN, "fixed"), BIG + 1, BIG, "sizes.input.fixed"),
    (SERVE, IN, {"uniform": [0, 5]}, {"uniform": [1, 5]}, "sizes.input.uniform"),
    (SERVE, IN, {"uniform": [1, BIG + 1]}, {"uniform": [1, BIG]}, "sizes.input.uniform"),
    (SERVE, IN, {"uniform": [1, 2**70]}, {"uniform": [BIG, BIG]}, "sizes.input.uniform"),
    (SERVE, IN, {"lognormal": {"median": 0.99, "sigma": 0}}, {"lognormal": {"median": 1, "sigma": 0}}, "lognormal.median"),
    (SERVE, IN, {"lognormal": {"median": BIG + 1, "sigma": 0}}, {"lognormal": {"median": BIG, "sigma": 0}}, "lognormal.median"),
    (SERVE, IN, {"lognormal": {"median": 9, "sigma": -0.01}}, {"lognormal": {"median": 9, "sigma": 0}}, "lognormal.sigma"),
    (SERVE, IN, {"lognormal": {"median": 9, "sigma": 10.01, "max": 99}}, {"lognormal": {"median": 9, "sigma": 10, "max": 99}}, "lognormal.sigma"),
    (SERVE, IN, {"lognormal": {"median": 9, "sigma": 1, "max": BIG + 1}}, {"lognormal": {"median": 9, "sigma": 1, "max": BIG}}, "lognormal.max"),
    # no max: the 1-in-a-billion draw, median x exp(6 sigma), must stay within 10M tokens (64 x e^(6 x 1.998) = 10M)
    (SERVE, IN, {"lognormal": {"median": 64, "sigma": 2.0}}, {"lognormal": {"median": 64, "sigma": 1.99}}, "give max"),
    (SERVE, IN, {"lognormal": {"median": 1e7, "sigma": 10}}, {"lognormal": {"median": 1e7, "sigma": 10, "max": BIG}}, "give max"),
    # objective
    (SERVE, ("workloads", 0, "objective"), {"slo": {"ttft_s": 0.000099}}, {"slo": {"ttft_s": 0.0001}}, "slo.ttft_s"),
    (SERVE, ("workloads", 0, "objective"), {"slo": {"tpot_s": 86_400.5}}, {"slo": {"tpot_s": 86_400}}, "slo.tpot_s"),
    (SERVE, ("workloads", 0, "objective"), {"slo": {"e2e_s": math.inf}}, {"slo": {"e2e_s": 30.0}}, "slo.e2e_s"),
    (SERVE, ("workloads", 0, "objective"), {"attainment_target": 0.0099}, {"attainment_target": 0.01}, "attainment_target"),
    (SERVE, ("workloads", 0, "objective"), {"attainment_target": 1.01}, {"attainment_target": 1}, "attainment_target"),
    # workloads' params
    (suite_of("toy"), (*P, "first_s"), -0.001, 0, "params.first_s"),
    (suite_of("toy"), (*P, "step_s"), 60.5, 60, "params.step_s"),
    (suite_of("toy"), (*P, "step_growth_s"), math.nan, 1, "params.step_growth_s"),
    (suite_of("toy", {"first_s": 0, "step_s": 0.125}), (*P, "steps"), 691_201, 691_200, "86,400 s"),  # 0.125 s x 691,200 = a day
    (suite_of("toy_serve", load=POISSON), (*P, "token_s"), 60.5, 60, "params.token_s"),
    (suite_of("toy_serve", load=POISSON), (*P, "queue_s"), math.inf, 0.01, "params.queue_s"),
    (suite_of("llm_decode"), (*P, "prompt_len"), BIG + 1, BIG, "params.prompt_len"),
    (suite_of("llm_decode"), (*P, "gen_len"), 1_000_001, 1_000_000, "params.gen_len"),
    (suite_of("vla"), (*P, "control_hz"), 0.099, 1.0, "params.control_hz"),
    (suite_of("vla"), (*P, "control_hz"), 10_000.5, 10_000, "params.control_hz"),
    (suite_of("vla"), (*P, "camera_resolution"), [8193, 320], [8192, 320], "camera_resolution[0]"),
    (suite_of("vla"), (*P, "camera_resolution"), [240, 0], [240, 1], "camera_resolution[1]"),
    (suite_of("vla", {"control_hz": 10.0}), (*P, "ticks"), 864_001, 864_000, "86,400 s"),  # ticks / control_hz: one episode at most a day
    (suite_of("multimodal_stream"), (*P, "fps"), 0.0099, 0.01, "params.fps"),
    (suite_of("multimodal_stream"), (*P, "fps"), 240.5, 240, "params.fps"),
    (suite_of("multimodal_stream"), (*P, "camera_resolution"), [2**40, 320], [4320, 7680], "camera_resolution[0]"),
    (suite_of("multimodal_stream"), (*P, "session_s"), 0.99, 1, "params.session_s"),
    (suite_of("multimodal_stream"), (*P, "session_s"), 86_400.5, 86_400, "params.session_s"),
    (suite_of("multimodal_stream"), (*P, "queries"), {"rate_per_min": 0.0099}, {"rate_per_min": 0.01}, "queries.rate_per_min"),
    (suite_of("multimodal_stream"), (*P, "queries"), {"pattern": "gamma", "burstiness": 0.0099}, {"pattern": "gamma", "burstiness": 0.01}, "burstiness"),
    (suite_of("rl_step"), (*P, "response_median"), 0.99, 1, "params.response_median"),
    (suite_of("rl_step"), (*P, "learning_rate"), 9.9e-11, 1e-10, "params.learning_rate"),
    (suite_of("rl_step"), (*P, "temperature"), 0.0099, 0.01, "params.temperature"),
    (suite_of("rl_step"), (*P, "response_sigma"), 10.01, 10, "params.response_sigma"),
    (suite_of("diffusion"), (*P, "guidance_scale"), math.nan, 100, "params.guidance_scale"),
]


@pytest.mark.parametrize(("base", "path", "outside", "inside", "needle"), FIELD_BOUNDS, ids=[f"{c[1][-1]}={c[2]!r}" for c in FIELD_BOUNDS])
def test_a_value_just_outside_its_bound_is_one_line_and_the_bound_is_accepted(tmp_path, base, path, outside, inside, needle):
    refused(tmp_path, put(base, path, outside), needle)
    accepted(tmp_path, put(base, path, inside))


def load_of(**load) -> dict:
    return suite_of("toy_serve", load={**POISSON, **load}, measure={"max_seconds": 10})


def trace_file(tmp_path: Path, seconds: list[float], tokens: int = 10) -> str:
    path = tmp_path / "trace.csv"
    rows = "".join(f"{s},ChatGPT,{tokens},5,{tokens + 5},Conversation log\n" for s in seconds)
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n" + rows)
    return str(path)


# (suite a run can meet, the same just beyond, needles of the refusal): measure.max_seconds is 10 s
FEASIBILITY = [
    (
        "sample period 1/sample_hz <= max_seconds",
        _with(suite_of(), max_seconds=10, sample_hz=0.1),
        _with(suite_of(), max_seconds=10, sample_hz=0.099),
        ("measure.sample_hz", "1/max_seconds"),
    ),
    ("mean gap 1/rate <= max_seconds", load_of(rate=0.1, requests=1), load_of(rate=0.099, requests=1), ("load.rate", "mean gap")),
    ("requests / rate <= max_seconds", load_of(rate=2, requests=20), load_of(rate=2, requests=21), ("load.requests", "requests / rate = 21 / 2 = 10.5 s")),
    ("duration_s <= max_seconds", load_of(requests=None, duration_s=10), load_of(requests=None, duration_s=10.01), ("load.duration_s", "max_seconds")),
    (
        "rate x duration_s >= 1",
        load_of(rate=1, requests=None, duration_s=1),
        load_of(rate=1, requests=None, duration_s=0.99),
        ("load.duration_s", "requests expected"),
    ),
    (
        "rate x duration_s >= warmup + cooldown + 1",
        load_of(rate=1, requests=None, duration_s=3, warmup_requests=1, cooldown_requests=1),
        load_of(rate=1, requests=None, duration_s=2.99, warmup_requests=1, cooldown_requests=1),
        ("load.duration_s", "= 3 to measure one"),
    ),
]


@pytest.mark.parametrize(("rule", "good", "bad", "needles"), FEASIBILITY, ids=[f[0] for f in FEASIBILITY])
def test_a_load_that_cannot_fit_in_max_seconds_is_refused_with_its_rule(tmp_path, rule, good, bad, needles):
    accepted(tmp_path, good)
    refused(tmp_path, bad, *needles)


def test_a_replayed_trace_must_fit_in_max_seconds_after_time_scale(tmp_path):
    fits = trace_file(tmp_path, [100.0, 105.0, 110.0])
    load = {"pattern": "trace", "trace": fits}
    accepted(tmp_path, suite_of("toy_serve", load=load, measure={"max_seconds": 10}))
    too_long = trace_file(tmp_path, [100.0, 105.0, 110.01])
    line = refused(tmp_path, suite_of("toy_serve", load={**load, "trace": too_long}, measure={"max_seconds": 10}), "load.trace", "10.01 s")
    assert "max_seconds (10 s)" in line
    accepted(tmp_path, suite_of("toy_serve", load={**load, "trace": too_long, "time_scale": 2.0}, measure={"max_seconds": 10}))
    accepted(tmp_path, suite_of("toy_serve", load={**load, "trace": too_long, "requests": 2}, measure={"max_seconds": 10}))
    refused(tmp_path, suite_of("toy_serve", load={**load, "trace": too_long, "duration_s": 10.01}, measure={"max_seconds": 10}), "load.duration_s")


def test_trace_tokens_times_token_scale_stay_within_the_token_bound(tmp_path):
    path = trace_file(tmp_path, [0.0, 1.0], tokens=10_000)
    accepted(tmp_path, suite_of("toy_serve", load={"pattern": "trace", "trace": path, "token_scale": 1000}))
    path = trace_file(tmp_path, [0.0, 1.0], tokens=10_001)
    refused(tmp_path, suite_of("toy_serve", load={"pattern": "trace", "trace": path, "token_scale": 1000}), "token_scale", "10,000,000")


def test_a_swept_load_point_is_checked_and_named_at_the_sweep(tmp_path):
    data = load_of(rate=2, requests=20)
    data["workloads"][0]["sweep"] = {"load.rate": [4, 2]}
    accepted(tmp_path, data)
    data["workloads"][0]["sweep"] = {"load.rate": [4, 1.9]}
    line = refused(tmp_path, data, "load.rate=1.9", "requests / rate")
    text = (tmp_path / "suite.yaml").read_text().splitlines()
    number = int(line.split("suite.yaml:")[1].split(":")[0])
    assert "load.rate" in text[number - 1]  # the line of the sweep's key, which makes this point differ


def test_a_set_override_is_checked_too(tmp_path):
    data = load_of(rate=2, requests=20)
    accepted(tmp_path, data, "--set", "measure.max_seconds=10")
    refused(tmp_path, data, "load.requests", "max_seconds (9 s)", extra=("--set", "measure.max_seconds=9"))
    refused(tmp_path, data, "measure.max_seconds", extra=("--set", "measure.max_seconds=.inf"))


def test_fail_if_thresholds_take_exponents_and_a_stated_range():
    from reports.compare import parse_condition

    assert parse_condition("e2e_s>1.1e0").threshold == 1.1 and parse_condition("llm:tpot_s<9E-1").threshold == 0.9
    for text in ("e2e_s>1e10", "e2e_s<1e-9", "e2e_s>0"):
        with pytest.raises(UserError, match="0.001 to 1000|not a positive ratio"):
            parse_condition(text)


@pytest.mark.parametrize("argv", [["report", "x", "-o", ""], ["run", "s.yaml", "-o", " "], ["compare", "a", "b", "-o", ""]])
def test_an_empty_output_path_is_refused(argv):
    code, _, err = cli_in_process(*argv)
    assert code == 2 and "is empty; give a path" in err and len(err.strip().splitlines()) == 1
