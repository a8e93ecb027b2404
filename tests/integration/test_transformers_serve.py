"""The endpoint workload (workloads/openai_endpoint.py) against a real `transformers serve` (transformers 5.24, continuous
batching) on 127.0.0.1: one in-process `profiler run` of a chat and a completions workload over a random-weight Llama
and a word-level fast tokenizer with a chat template, both built here (nothing is downloaded).

The same run is a comparison suite (issue 27: an endpoint, `llm_serve` and a domain workload in one report): a tiny
`mamba` decode (2 layers, 64 wide, built here) runs FIRST (before the endpoint workloads: the server is found by the
parent before the run, so it records it alive beside it), then the two endpoint workloads, then `llm_serve` over the
very model the server serves, under the same load; the chat endpoint is the serving baseline. One report compares the
four side by side.

The model has no EOS and the tokenizer no special tokens: every generated token decodes to one word, so the server
sends one chunk per token and stops at max_tokens. (A token that decodes to no text, e.g. a special token under
skip_special_tokens, gets no chunk of its own in transformers serve: cli/serving/utils.py CBStreamer.put; the
profiler then counts a usage mismatch. The test avoids it so its counts are exact.)

Skipped only when the serving extras (fastapi, uvicorn, openai, accelerate: `transformers[serving]`) are not
importable; CI installs them with the test extras."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import cli_in_process

MISSING = [name for name in ("fastapi", "uvicorn", "openai", "accelerate") if importlib.util.find_spec(name) is None]
if MISSING:
    pytest.skip(
        f"transformers serve needs its serving extras ({', '.join(MISSING)} not importable): pip install 'transformers[serving]'", allow_module_level=True
    )

STARTUP_S = 90.0
"""The longest the server may take to answer /v1/models (imports and loading the model: about 5 s here)."""
NUM_BLOCKS = 64
"""--cb-num-blocks: the KV cache's pages (without it the cache takes 60% of free memory: ContinuousBatchingConfig)."""
INPUT, OUTPUT, REQUESTS = 8, 6, 6


def build_model(path: Path) -> None:
    """A 2-layer, 64-wide random Llama and a WordLevel fast tokenizer over the endpoint's prompt words, with a chat
    template; no special tokens and no EOS (each token is one word; generation runs to max_tokens)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from workloads.openai_endpoint import WORDS

    vocab = {w: i for i, w in enumerate(["<unk>", *sorted(set(WORDS))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece()  # words joined by spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}assistant{% endif %}"
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(do_sample=False)
    model.save_pretrained(path)


def build_mamba(path: Path) -> None:
    """A 2-layer, 64-wide random Mamba (the comparison's domain workload: an SSM decode)."""
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    MambaForCausalLM(MambaConfig(vocab_size=256, hidden_size=64, state_size=8, num_hidden_layers=2, eos_token_id=None)).save_pretrained(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict, timeout: float = 30) -> bytes:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


class Server:
    """`transformers serve MODEL` in its own process group, its stderr in a file (shown when it fails to start)."""

    def __init__(self, model: Path, log: Path) -> None:
        self.model, self.port, self.log = model, free_port(), log
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model), "--continuous-batching"]
        command += ["--cb-num-blocks", str(NUM_BLOCKS), "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "OMP_NUM_THREADS": "1"}
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_ready(self) -> None:
        """Until /v1/models answers (bounded by STARTUP_S); then one warm-up request (CB's manager is built on the first)."""
        deadline = time.monotonic() + STARTUP_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {self.proc.returncode}; its stderr:\n{self.tail()}")
            try:
                urllib.request.urlopen(f"{self.base_url}/models", timeout=2).read()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not answer within {STARTUP_S:g} s; its stderr:\n{self.tail()}")
                time.sleep(0.2)
        post(f"{self.base_url}/chat/completions", {"model": str(self.model), "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2})

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s."""
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tserve")
    build_model(root / "model")
    srv = Server(root / "model", root / "server.err")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


SUITE = """\
name: tserve
device: cpu
baseline: engine
serving_baseline: chat
measure: {{warmup_iters: 0, min_iters: 1, min_seconds: 0, max_seconds: 30, sample_hz: 20, trace_ops: false}}
workloads:
  - name: ssm
    type: mamba
    params: {{pretrained: "{mamba}", batch_size: 1, prompt_len: 8, gen_len: 4}}
{workloads}  - name: engine
    type: llm_serve
    params: {{pretrained: "{model}", page_size: 16, kv_cache_tokens: 1024}}
    load: {load}
"""
LOAD = f"{{pattern: poisson, rate: 20, requests: {REQUESTS}, seed: 0, sizes: {{input: {{fixed: {INPUT}}}, output: {{fixed: {OUTPUT}}}}}}}"
WORKLOAD = """\
  - name: {name}
    type: openai_endpoint
    params: {{base_url: "{url}", model: "{model}", server: transformers-serve, api: {api}, tokenizer: "{model}", timeout_s: 30}}
    load: {load}
"""


def test_a_profiler_run_against_transformers_serve(server, tmp_path):
    workloads = "".join(
        WORKLOAD.format(name=name, url=server.base_url, model=server.model, api=api, load=LOAD)
        for name, api in (("chat", "chat/completions"), ("completions", "completions"))
    )
    build_mamba(tmp_path / "mamba")
    (tmp_path / "suite.yaml").write_text(SUITE.format(workloads=workloads, load=LOAD, mamba=tmp_path / "mamba", model=server.model))
    t0 = time.monotonic()
    code, out, err = cli_in_process("run", tmp_path / "suite.yaml", "-o", tmp_path / "runs")
    print(f"the suite's run took {time.monotonic() - t0:.1f} s")
    assert code == 0, f"{err}\nserver stderr:\n{server.tail()}"
    (run_dir,) = (tmp_path / "runs").iterdir()
    check_endpoints(run_dir, server.base_url)
    check_comparison(run_dir, server.proc.pid)


def check_endpoints(run_dir: Path, base_url: str) -> None:
    for name in ("chat", "completions"):
        table = pq.read_table(run_dir / name / "requests.parquet").to_pandas()
        assert len(table) == REQUESTS and (table["status"] == "finished").all(), table[["status", "error"]]
        assert (table["token_ns"].map(len) == OUTPUT).all()  # one chunk per word-token, up to max_tokens
        assert table["scheduled_ns"].isna().all()
        summary = json.loads((run_dir / name / "summary.json").read_text())
        stream = summary["facts"]["stream"]
        # every request's per-chunk count (the local tokenizer on each chunk's text) equals the server's final usage
        assert stream["usage_checked"] == REQUESTS and stream["usage_mismatches"] == 0 and stream["stopped_early"] == 0
        assert stream["tokens_by_method"] == {"usage": 0, "logprobs": 0, "tokenizer": REQUESTS * OUTPUT, "one_per_chunk": 0}
        # each prompt cut to INPUT tokens by the local tokenizer (chat: through its template), as the server counted it
        assert (table["input_tokens"] == INPUT).all() and (table["input_tokens_by"] == "server_usage").all()
        assert stream["prompt_count_mismatches"] == 0 and stream["prompts_off_target"] == 0
        serving = summary["serving"]
        assert serving["measured_status_counts"] == {"finished": REQUESTS}
        # TTFT and TPOT once per request, ITL once per gap between a request's tokens: 6 x (6 - 1)
        assert (serving["ttft_s"]["count"], serving["tpot_s"]["count"], serving["itl_s"]["count"]) == (REQUESTS, REQUESTS, REQUESTS * (OUTPUT - 1))
        assert serving["ttft_s"]["median"] > 0 and serving["itl_s"]["median"] > 0
        # queueing inside the server is not visible over HTTP: stated, never estimated
        assert serving["queue_s"]["count"] == 0 and summary["facts"]["queueing"].startswith("unavailable")
        # transformers serve has no /metrics: the engine samples and the server's figures are unavailable, with why
        assert summary["facts"]["server_metrics"]["unavailable"].endswith("HTTP 404 from " + base_url.removesuffix("/v1") + "/metrics")
        assert serving["server_reported"] is None and "no metrics" in summary["facts"]["engine_samples"]


def check_comparison(run_dir: Path, pid: int) -> None:
    """One report compares the endpoint, llm_serve and the domain workload; the server found before the run is the chat
    and completions workloads' own, and the other workloads record it alive beside them (the one before them too)."""
    summaries = {name: json.loads((run_dir / name / "summary.json").read_text()) for name in ("ssm", "chat", "completions", "engine")}
    assert all(s["status"] == "ok" for s in summaries.values()), {n: s.get("error") for n, s in summaries.items()}
    for name in ("chat", "completions"):
        own = summaries[name]["local_server"]
        assert own["own"] and own["pid"] == pid and own["confirmed"] is True, own
    for name in ("ssm", "engine"):  # ssm ran before any endpoint workload's child existed
        assert summaries[name]["local_server"] is None
        other = summaries[name]["other_servers"]
        assert other["pids"] == [pid] and other["workloads"] == ["chat"] and other["peak_rss_bytes"] > 0, other
        assert other["summary"].startswith(f"a local server (pid {pid}, of workload 'chat') was alive beside this workload")
    # side by side: each workload against the architecture baseline (engine) and the serving baseline (chat)
    rows = json.loads((run_dir / "differences.json").read_text())
    pairs = {(row["workload"], row["baseline"]) for row in rows}
    assert {("ssm", "engine"), ("chat", "engine"), ("completions", "engine"), ("ssm", "chat"), ("completions", "chat"), ("engine", "chat")} <= pairs
    row = {(r["workload"], r["characteristic"]): r for r in rows}
    for name in ("chat", "completions"):  # no model in the profiler's process: unavailable with the endpoint's reason, never a zero
        assert row[name, "intensity"]["value"] is None and row[name, "intensity"]["why_unavailable"].startswith("not counted: the model runs in the server")
    # the serving baseline's queueing is not seen over HTTP, and the comparison says so (not "no finished request")
    assert summaries["chat"]["serving"]["unavailable"]["queue_s"].startswith("the engine reported no scheduling time")
    assert row["engine", "queueing_share"]["why_unavailable"] == summaries["chat"]["serving"]["unavailable"]["queue_s"]
    page = (run_dir / "report.html").read_text()
    assert "Local servers" in page and all(f'"{name}"' in page for name in ("ssm", "chat", "completions", "engine"))
