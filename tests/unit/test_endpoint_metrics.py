"""Server metrics (workloads/endpoint_metrics.py): vLLM 0.32.0's /metrics text recorded from a running `vllm serve`
(tests/data/vllm/0.32.0, README there) parsed and mapped, its window deltas checked against numbers worked out by hand
from the recorded lines; SGLang's and TGI's maps on text built from their source's names (not recorded); the scraper
against the local test server (tests/openai_server.py, its /metrics the recorded text with counters advanced by what it
served). The `profiler run` whose engine samples, summary and report carry the server's figures is
tests/unit/test_openai_endpoint.py's (test_a_profiler_run_against_a_server_keeps_every_request_and_no_key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.openai_server import FakeServer
from workloads.endpoint_metrics import COUNTERS, SGLANG, TGI, VLLM, Scraper, Values, deltas, detect, mapped, metrics_url, parse, same_origin
from workloads.openai_endpoint import OpenAIEndpoint

DATA = Path(__file__).parents[1] / "data" / "vllm" / "0.32.0"
MODEL = "/tmp/vrec/model"
"""The served model name of the recorded server (its path)."""


def recorded(name: str) -> str:
    return (DATA / f"metrics_{name}.txt").read_text()


def values(name: str):
    return mapped(parse(recorded(name)), VLLM, MODEL)


def test_the_recorded_vllm_text_maps_to_the_engine_samples():
    busy = values("busy")  # 8 running (max-num-seqs), 16 waiting
    assert (busy.values["running"], busy.values["waiting"], busy.values["preemptions"]) == (8, 16, 0)
    assert busy.values["kv_usage"] == pytest.approx(0.0005493499359091603)  # a fraction: 1 = the whole cache
    assert busy.values["draft_tokens"] is None and "does not speculate" in busy.why["draft_tokens"]
    assert detect(parse(recorded("idle"))) is VLLM and VLLM.recorded
    kept = parse(recorded("busy"), frozenset(VLLM.names.values()))  # only the mapped names' lines parsed: the same values
    assert mapped(kept, VLLM, MODEL).values == busy.values and len(kept) == 10


def test_window_deltas_by_hand_from_the_recorded_counters():
    d = deltas(values("busy"), values("after"))
    # metrics_after - metrics_busy: prefix hits 4992 - 2944 = 2048 of queries 8320 - 4992 = 3328 tokens; prompt tokens
    # 8320 - 4992 = 3328; generation 1664 - 638 = 1026; queue time sum 6.708825158006221 - 0.6613095379871083 over
    # count 40 - 16 = 24 requests
    assert (d["prefix_hit_tokens"], d["prefix_query_tokens"]) == (2048, 3328)
    assert d["prefix_cache_hit_rate"] == pytest.approx(2048 / 3328)
    assert (d["prompt_tokens"], d["generation_tokens"], d["preemptions"], d["queue_requests"]) == (3328, 1026, 0, 24)
    assert d["queue_s_mean"] == pytest.approx((6.708825158006221 - 0.6613095379871083) / 24)
    assert d["draft_acceptance_rate"] is None and "does not speculate" in d["unavailable"]["draft_acceptance_rate"]


def test_draft_acceptance_from_the_recorded_speculating_servers_counters():
    spec = values("spec")
    started = Values({k: 0.0 for k in COUNTERS})  # a speculating server's counters exist at 0 from its start (README)
    d = deltas(started, spec)
    # metrics_spec.txt: vllm:spec_decode_num_accepted_tokens_total 125 of vllm:spec_decode_num_draft_tokens_total 153
    assert (d["accepted_tokens"], d["draft_tokens"]) == (125, 153) and d["draft_acceptance_rate"] == pytest.approx(125 / 153)
    assert d["generation_tokens"] == 512


def test_a_counter_that_went_backwards_makes_every_figure_unavailable():
    d = deltas(values("after"), values("idle"))  # a fresh server's text after the busy one's: it restarted
    assert d["prefix_cache_hit_rate"] is None and d["generation_tokens"] is None
    assert "went backwards" in d["unavailable"]["prefix_cache_hit_rate"] and "restarted" in d["unavailable"]["queue_s_mean"]


BUILT = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 4.0
vllm:num_requests_running{engine="0",model_name="other"} 100.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.4
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 10.0
vllm:prompt_tokens_total{engine="1",model_name="m"} 5.0
"""


def test_the_served_models_series_are_summed_and_a_fraction_averaged():
    v = mapped(parse(BUILT), VLLM, "m")
    assert v.values["running"] == 7 and v.values["prompt_tokens"] == 15  # two engines of model m; 'other' left out
    assert v.values["kv_usage"] == pytest.approx(0.3)  # (0.2 + 0.4) / 2
    assert v.values["waiting"] is None and v.why["waiting"] == "the server exposes no vllm:num_requests_waiting"
    none = mapped(parse(BUILT), VLLM, "x")
    assert none.values["running"] is None and "no series for model 'x' (its model_name labels: m, other)" in none.why["running"]


SGLANG_TEXT = """\
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{{model_name="m",tp_rank="0"}} 2.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{{model_name="m",tp_rank="0"}} 1.0
# TYPE sglang:token_usage gauge
sglang:token_usage{{model_name="m",tp_rank="0"}} 0.25
# TYPE sglang:prompt_tokens counter
sglang:prompt_tokens_total{{model_name="m"}} {prompt}
{cached}"""
TGI_TEXT = """\
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 3
# TYPE tgi_queue_size gauge
tgi_queue_size 2
# TYPE tgi_request_queue_duration histogram
tgi_request_queue_duration_bucket{{le="+Inf"}} {n}
tgi_request_queue_duration_sum {s}
tgi_request_queue_duration_count {n}
"""


def test_sglang_and_tgi_maps_on_text_built_from_their_sources_names():
    before = parse(SGLANG_TEXT.format(prompt=100, cached=""))  # sglang:cached_tokens is exposed after its first hit
    after = parse(SGLANG_TEXT.format(prompt=200, cached='# TYPE sglang:cached_tokens counter\nsglang:cached_tokens_total{model_name="m"} 50\n'))
    assert detect(before) is SGLANG and "not recorded" in SGLANG.label()
    v = mapped(after, SGLANG, "m")
    assert (v.values["running"], v.values["waiting"], v.values["kv_usage"]) == (2, 1, 0.25)
    d = deltas(mapped(before, SGLANG, "m"), v)
    assert d["prefix_cache_hit_rate"] == pytest.approx(50 / 100)  # cached 0 -> 50 of prompt 100 -> 200
    assert "no counters" in d["unavailable"]["draft_acceptance_rate"]
    t0, t1 = parse(TGI_TEXT.format(n=2, s=0.5)), parse(TGI_TEXT.format(n=6, s=2.5))
    assert detect(t0) is TGI and "not recorded" in TGI.label()
    w = mapped(t1, TGI, "anything")  # TGI's series carry no model_name: all of them
    assert (w.values["running"], w.values["waiting"], w.values["kv_usage"]) == (3, 2, None) and "no KV cache usage" in w.why["kv_usage"]
    assert deltas(mapped(t0, TGI, "m"), w)["queue_s_mean"] == pytest.approx((2.5 - 0.5) / (6 - 2))


def test_urls_and_a_scrapes_measured_cost():
    assert metrics_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/metrics"
    assert same_origin("http://h:1/metrics", "http://h:1/v1") and not same_origin("http://h:2/metrics", "http://h:1/v1")
    text = recorded("idle")
    with FakeServer(models=(MODEL,), metrics=text) as server:
        scraper = Scraper(metrics_url(server.base_url), 2.0, MODEL, {}, None)
        try:
            got = scraper.once()
        finally:
            scraper.client.close()
    assert got is not None and scraper.map is VLLM and got.values.values["running"] == 0
    cost = scraper.cost()
    assert cost["scrapes"] == 1 and cost["failed"] == 0 and cost["bytes_max"] == len(server.counts.render(text, MODEL).encode())
    assert cost["seconds_p50"] > 0


def test_a_server_without_metrics_says_why_and_its_samples_are_none(tmp_path):
    class Ctx:
        device, seed, workdir, facts = "cpu", 0, str(tmp_path), {}

        def declare(self, **facts):
            self.facts.update(facts)

    with FakeServer() as server:
        engine = OpenAIEndpoint(OpenAIEndpoint.Params.model_validate({"base_url": server.base_url, "model": "tiny", "server": "vllm"}))
        try:
            engine.setup(Ctx())
            stats = engine.engine_stats()
            after = engine.served_facts()["server_metrics"]
        finally:
            engine.teardown()
    assert stats["running"] is None and stats["kv_usage"] is None and stats["in_flight"] == 0
    assert "no metrics" in Ctx.facts["engine_samples"] and after["unavailable"].endswith("HTTP 404 from " + metrics_url(server.base_url))


class EdgeEngine:
    """A stub engine (no server: the driver's calls are what is tested) that ends each request at once and notes, at
    each measured-window edge, which requests had been submitted and which had ended."""

    max_positions = None

    def __init__(self) -> None:
        self.submitted: list[int] = []
        self.ended: list[int] = []
        self.pending: list[int] = []
        self.edges: list[tuple[str, list[int], list[int]]] = []

    def submit(self, request) -> None:
        self.submitted.append(request.index)
        self.pending.append(request.index)

    def collect(self, timeout_s: float) -> list[dict]:
        import time

        if not self.pending:
            time.sleep(timeout_s)
            return []
        i = self.pending.pop(0)
        self.ended.append(i)
        t = time.monotonic_ns()
        return [{"index": i, "status": "finished", "error": None, "scheduled_ns": t, "token_ns": [t], "finished_ns": t}]

    def engine_stats(self) -> dict:
        return {"running": None, "waiting": None}

    def cancel(self, index: int) -> None:
        pass

    def measured_window(self, edge: str) -> None:
        self.edges.append((edge, list(self.submitted), list(self.ended)))


def test_the_driver_tells_the_engine_the_measured_windows_edges(tmp_path):
    from profiler.loadconfig import LoadConfig
    from profiler.run.serve import serve
    from profiler.suite.config import MeasureConfig

    engine = EdgeEngine()
    load = {"pattern": "closed", "concurrency": 1, "requests": 5, "warmup_requests": 1, "cooldown_requests": 1}
    load["sizes"] = {"input": {"fixed": 2}, "output": {"fixed": 1}}
    measure = MeasureConfig.model_validate({"max_seconds": 10, "min_seconds": 0})
    serve(engine, LoadConfig.model_validate(load), None, measure, tmp_path, lambda d, t: None)
    # requests 1-3 are measured: the start comes after the warmup request 0 is sent and before request 1 is; the end
    # once request 3 has ended (before the cooldown request 4 is sent, one at a time), once each
    assert engine.edges == [("start", [0], [0]), ("end", [0, 1, 2, 3], [0, 1, 2, 3])]


def test_a_metrics_url_with_credentials_is_one_line_at_validate(tmp_path):
    from tests.conftest import cli_in_process

    suite = tmp_path / "s.yaml"
    load = "{pattern: closed, concurrency: 1, requests: 1, sizes: {input: {fixed: 2}, output: {fixed: 2}}}"
    params = "{base_url: 'http://h:1/v1', model: m, metrics_url: 'http://u:secret@h:1/metrics'}"
    suite.write_text(f"name: s\nworkloads:\n  - name: e\n    type: openai_endpoint\n    params: {params}\n    load: {load}\n")
    code, out, err = cli_in_process("validate", suite)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "credentials in the URL" in lines[0] and "secret" not in out + err, err
