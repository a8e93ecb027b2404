"""Record a running `vllm serve`'s HTTP answers and Prometheus text into a directory (tests/data/vllm/<version>/).

Standard library only (any python): the server is started beforehand over benchmarks/vllm_endpoint.py's model (its
word-level tokenizer: token 1 is `</s>`, the EOS), e.g.

    /tmp/vllm-venv/bin/vllm serve MODEL --host 127.0.0.1 --port 8123 --max-model-len 256 --max-num-seqs 8 --enable-prefix-caching
    python benchmarks/vllm_record_endpoint.py http://127.0.0.1:8123 MODEL tests/data/vllm/0.32.0 [--only metrics|api|spec]

`metrics`: metrics_idle.txt (before any request: run it first), then 24 streamed completions at once that share a
200-token prefix (8 run, the others wait: --max-num-seqs 8), metrics_busy.txt scraped while some run and some wait,
metrics_after.txt when all are done. `api`: each route's answer as JSON (status and body) or, streamed, the raw
server-sent-event text (.sse). `spec`: the same load, then metrics_spec.txt (a server with --speculative-config).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

WORDS = (
    "the of and to in is was for on that with as by at from his her are this which be or have an they one had not but "
    "what all were when we there can more if no out so said time up about into than them only other new some could"
).split()
EOS_ID = 1
"""`</s>` in benchmarks/vllm_endpoint.py's tokenizer (<unk> 0, </s> 1, then the words)."""
USAGE = {"include_usage": True, "continuous_usage_stats": True}


def words(n: int, start: int = 0) -> str:
    """n of the prompt words from `start` on (one token each)."""
    return " ".join(WORDS[(start + k) % len(WORDS)] for k in range(n))


def call(base: str, path: str, body: dict | None = None, timeout: float = 120) -> tuple[int, bytes]:
    """(HTTP status, body bytes) of a GET (body None) or a JSON POST."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data, {"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def save_json(out: Path, name: str, request: dict | None, status: int, body: bytes) -> dict:
    """{request, status, body} into NAME.json; the parsed body back."""
    parsed = json.loads(body) if body.strip().startswith(b"{") or body.strip().startswith(b"[") else body.decode()
    (out / f"{name}.json").write_text(json.dumps({"request": request, "status": status, "body": parsed}, indent=1) + "\n")
    return parsed if isinstance(parsed, dict) else {}


def record_metrics(base: str, model: str, out: Path) -> None:
    """metrics_idle.txt, metrics_busy.txt (some running and some waiting), metrics_after.txt."""
    if not (out / "metrics_idle.txt").exists():  # only before the server's first request
        (out / "metrics_idle.txt").write_bytes(call(base, "/metrics")[1])
    prefix = words(200)
    results: list[tuple[int, bytes]] = []

    def one(i: int) -> None:
        body = {"model": model, "prompt": f"{prefix} {words(8, 7 * i)}", "max_tokens": 48, "ignore_eos": True, "stream": True, "stream_options": USAGE}
        results.append(call(base, "/v1/completions", body))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    busy = b""
    for _ in range(200):
        text = call(base, "/metrics")[1]
        running = re.search(rb"^vllm:num_requests_running\{[^}]*\} (\S+)", text, re.M)
        waiting = re.search(rb"^vllm:num_requests_waiting\{[^}]*\} (\S+)", text, re.M)
        if running and waiting and float(running[1]) > 0 and float(waiting[1]) > 0:
            busy = text
            break
        busy = busy or (text if running and float(running[1]) > 0 else b"")
        time.sleep(0.05)
    (out / "metrics_busy.txt").write_bytes(busy)
    for t in threads:
        t.join()
    print("statuses:", sorted(s for s, _ in results), file=sys.stderr)
    (out / "metrics_after.txt").write_bytes(call(base, "/metrics")[1])


def record_spec(base: str, model: str, out: Path) -> None:
    """8 streamed greedy completions at once over repetitive prompts (the n-gram proposer finds matches; a random
    model's greedy output falls into loops), then metrics_spec.txt; the first request's stream as spec_stream.sse."""
    results: list[tuple[int, bytes]] = []

    def one(i: int) -> None:
        body = {"model": model, "prompt": words(12, i) + " " + words(12, i) + " " + words(12, i), "max_tokens": 32, "ignore_eos": True}
        body |= {"temperature": 0, "stream": True, "stream_options": USAGE}
        results.append(call(base, "/v1/completions", body))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("statuses:", sorted(s for s, _ in results), file=sys.stderr)
    (out / "spec_stream.sse").write_bytes(results[0][1])
    (out / "metrics_spec.txt").write_bytes(call(base, "/metrics")[1])


def record_api(base: str, model: str, out: Path) -> None:
    """Each route's answer (see the module docstring)."""
    status, body = call(base, "/v1/models")
    save_json(out, "models", None, status, body)
    prompt = words(6)
    messages = [{"role": "user", "content": words(5)}]
    for name, req in (
        ("tokenize_prompt", {"model": model, "prompt": prompt}),
        ("tokenize_messages", {"model": model, "messages": messages, "add_generation_prompt": True}),
        ("detokenize", {"model": model, "tokens": [2, 3, 4, EOS_ID, 5]}),
    ):
        save_json(out, name, req, *call(base, "/" + name.split("_")[0], req))
    common = {"model": model, "max_tokens": 6, "ignore_eos": True, "min_tokens": 4, "temperature": 0}
    completion = {**common, "prompt": prompt, "logprobs": 1}
    chat = {**common, "messages": messages, "logprobs": True, "top_logprobs": 1}
    save_json(out, "completions", completion, *call(base, "/v1/completions", completion))
    save_json(out, "chat", chat, *call(base, "/v1/chat/completions", chat))
    stream = {"stream": True, "stream_options": USAGE}
    (out / "completions_stream.sse").write_bytes(call(base, "/v1/completions", {**completion, **stream, "max_tokens": 4})[1])
    (out / "chat_stream.sse").write_bytes(call(base, "/v1/chat/completions", {**chat, **stream, "max_tokens": 4})[1])
    # EOS forced (logit_bias): without ignore_eos the request stops at its first token; ignore_eos runs to max_tokens;
    # min_tokens holds EOS back until that many; the EOS's text (a special token) is empty
    forced = {"model": model, "prompt": prompt, "max_tokens": 6, "temperature": 0, "logit_bias": {str(EOS_ID): 100}}
    answers = {}
    for name, extra in (("plain", {}), ("ignore_eos", {"ignore_eos": True}), ("min_tokens_3", {"min_tokens": 3})):
        status, body = call(base, "/v1/completions", {**forced, **extra})
        answers[name] = {"request_extra": extra, "status": status, "body": json.loads(body)}
    (out / "eos_forced.json").write_text(json.dumps({"request": forced, "answers": answers}, indent=1) + "\n")
    forced_chat = {**without(forced, "prompt"), "messages": messages, "ignore_eos": True, **stream, "max_tokens": 4}
    (out / "eos_forced_stream.sse").write_bytes(call(base, "/v1/chat/completions", forced_chat)[1])
    # without continuous_usage_stats: usage only in the last chunk; without stream_options: none
    (out / "chat_stream_plain.sse").write_bytes(call(base, "/v1/chat/completions", {**chat, "stream": True, "max_tokens": 4})[1])
    usage_last = {**chat, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 4}
    (out / "chat_stream_usage_last.sse").write_bytes(call(base, "/v1/chat/completions", usage_last)[1])
    for name, req in (
        ("error_wrong_model", {**completion, "model": "no-such-model"}),
        ("error_bad_max_tokens", {**completion, "max_tokens": -1}),
        ("error_too_long", {**completion, "prompt": words(300)}),
        ("error_min_over_max", {**completion, "min_tokens": 10, "max_tokens": 2}),
        ("unknown_field", {**completion, "no_such_field": 1}),
    ):
        save_json(out, name, req, *call(base, "/v1/completions", req))
    (out / "error_bad_json.json").write_text(json.dumps(dict(zip(("status", "body"), bad_json(base), strict=True))) + "\n")


def without(body: dict, key: str) -> dict:
    """The body without `key`."""
    return {k: v for k, v in body.items() if k != key}


def bad_json(base: str) -> tuple[int, str]:
    """A body that is not JSON: (status, body text)."""
    request = urllib.request.Request(base + "/v1/completions", b"{not json", {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("base")
    parser.add_argument("model")
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", choices=("metrics", "api", "spec"), default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "metrics"):
        record_metrics(args.base, args.model, args.out)
    if args.only in (None, "api"):
        record_api(args.base, args.model, args.out)
    if args.only == "spec":
        record_spec(args.base, args.model, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
