"""Write small SYNTHETIC request traces in the formats of the public LLM-serving traces.

The files next to this script are generated here from a seeded random number generator; none of
them is a copy or excerpt of a released trace. They exist so that the trace reader
(`profiler.load.traces`) and the load generator can be tested and demonstrated on files that look
like the real ones (same headers, timestamp spellings and quirks) without shipping real data.
About 200 requests each:

- azure_conv_2023.csv: Azure 2023 format (naive timestamps with 7 fractional digits), shaped on
  the 2023 conversation trace: about 5.5 req/s, near-Poisson gaps (gamma shape 0.84, CV about 1.1),
  lognormal input median 1,020 (p99 about 4,142) and output median 129 (p99 about 601) tokens.
- azure_code_2024.csv: Azure 2024 format (time-zone aware, rows on a whole second without a
  fraction), shaped on the 2023 code trace: about 2.6 req/s in bursts separated by long idle gaps
  (gap CV well above 3), input median 1,469 (p99 about 7,436) and output median 13 (p99 about 251).
- burstgpt.csv / burstgpt_old.csv: BurstGPT columns with and without `Session ID` and
  `Elapsed time`; about 5% failed requests with 0 response tokens.
- mooncake.jsonl: Mooncake JSONL (timestamp in ms, input_length, output_length, hash_ids of
  512-token prefix blocks), about 2 req/s, input/output means about 12,000/340 tokens like the
  Mooncake conversation trace; about half the requests share a prefix with an earlier request.

Run `python configs/traces/make_traces.py [--seed 0] [--n 200] [--out configs/traces]`.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
Z99 = 2.3263  # standard normal 99th percentile: sigma = ln(p99 / p50) / Z99

# targets the tests check the generated files against
CONV = {"rate": 5.5, "gamma_shape": 0.84, "input_p50": 1020, "input_p99": 4142, "output_p50": 129, "output_p99": 601}
CODE = {"rate": 2.6, "input_p50": 1469, "input_p99": 7436, "output_p50": 13, "output_p99": 251}
MOONCAKE = {"input_p50": 9500, "input_p99": 47500, "output_p50": 270, "output_p99": 1350}  # means about 12,000 / 340, as published
BLOCK_TOKENS = 512


def lognormal_tokens(rng: np.random.Generator, p50: float, p99: float, n: int) -> np.ndarray:
    """n token counts (int, >= 1) from a lognormal with the given median and 99th percentile."""
    sigma = math.log(p99 / p50) / Z99
    return np.maximum(1, np.rint(rng.lognormal(math.log(p50), sigma, n))).astype(int)


def poisson_like_gaps(rng: np.random.Generator, rate: float, shape: float, n: int) -> np.ndarray:
    """n gaps in seconds from gamma(shape, 1/(rate*shape)): mean 1/rate, CV 1/sqrt(shape)."""
    return rng.gamma(shape, 1.0 / (rate * shape), n)


def bursty_gaps(rng: np.random.Generator, rate: float, n: int) -> np.ndarray:
    """n gaps in seconds: bursts (exponential, mean 0.1 s) broken by idle gaps of 5-20 s, mean 1/rate overall."""
    idle_p = 0.025
    idle = rng.uniform(5.0, 20.0, n)
    burst_mean = max(0.01, (1.0 / rate - idle_p * 12.5) / (1 - idle_p))
    burst = rng.exponential(burst_mean, n)
    return np.where(rng.random(n) < idle_p, idle, burst)


def azure_2023(rng: np.random.Generator, n: int) -> str:
    start = datetime(2023, 11, 16, 18, 15, 46, 680590)
    ticks = np.cumsum(np.concatenate([[0.0], poisson_like_gaps(rng, CONV["rate"], CONV["gamma_shape"], n - 1)]))
    inputs = lognormal_tokens(rng, CONV["input_p50"], CONV["input_p99"], n)
    outputs = lognormal_tokens(rng, CONV["output_p50"], CONV["output_p99"], n)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for t, i, o in zip(ticks, inputs, outputs, strict=True):
        units = int(round(t * 1e7))  # 100 ns units: the 2023 files print 7 fractional digits
        stamp = start + timedelta(seconds=units // 10_000_000)
        frac = start.microsecond * 10 + units % 10_000_000
        stamp += timedelta(seconds=frac // 10_000_000)
        rows.append(f"{stamp.replace(microsecond=0):%Y-%m-%d %H:%M:%S}.{frac % 10_000_000:07d},{i},{o}")
    return "\n".join(rows) + "\n"


def azure_2024(rng: np.random.Generator, n: int) -> str:
    start = datetime(2024, 5, 10, 0, 0, 0, 9930, tzinfo=timezone.utc)
    micros = np.rint(np.cumsum(np.concatenate([[0.0], bursty_gaps(rng, CODE["rate"], n - 1)])) * 1e6).astype(np.int64)
    # some rows land on a whole second (printed without a fraction), as in the 2024 files
    absolute = micros + start.microsecond
    for k in range(1, n):
        floored = absolute[k] // 1_000_000 * 1_000_000
        if floored >= absolute[k - 1] and rng.random() < 0.5:
            absolute[k] = floored
    inputs = lognormal_tokens(rng, CODE["input_p50"], CODE["input_p99"], n)
    outputs = lognormal_tokens(rng, CODE["output_p50"], CODE["output_p99"], n)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    base = start.replace(microsecond=0)
    for us, i, o in zip(absolute, inputs, outputs, strict=True):
        rows.append(f"{base + timedelta(microseconds=int(us))},{i},{o}")  # str() drops a zero fraction
    text = "\n".join(rows) + "\n"
    assert any("." not in r.split(",")[0] for r in rows[1:]), "no whole-second row; try another seed"
    return text


def burstgpt(rng: np.random.Generator, n: int, old: bool) -> str:
    ticks = 3600.0 * 9 + np.cumsum(np.concatenate([[0.0], poisson_like_gaps(rng, 1.5, 0.5, n - 1)]))
    inputs = lognormal_tokens(rng, 600, 4000, n)
    outputs = lognormal_tokens(rng, 250, 1500, n)
    failed = rng.random(n) < 0.05
    outputs[failed] = 0
    models = np.where(rng.random(n) < 0.7, "ChatGPT", "GPT-4")
    logs = np.where(rng.random(n) < 0.6, "Conversation log", "API log")
    sessions = rng.integers(1, 40, n)
    if old:
        rows = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    else:
        rows = ["Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for t, s, m, i, o, lg in zip(ticks, sessions, models, inputs, outputs, logs, strict=True):
        elapsed = 0.4 + o * 0.02 + rng.exponential(0.3)
        middle = "" if old else f"{s},{elapsed:.3f},"
        rows.append(f"{t:.3f},{middle}{m},{i},{o},{i + o},{lg}")
    return "\n".join(rows) + "\n"


def mooncake(rng: np.random.Generator, n: int) -> str:
    ticks = np.rint(np.cumsum(np.concatenate([[0.0], poisson_like_gaps(rng, 2.0, 1.0, n - 1)])) * 1000).astype(int)
    inputs = lognormal_tokens(rng, MOONCAKE["input_p50"], MOONCAKE["input_p99"], n)
    outputs = lognormal_tokens(rng, MOONCAKE["output_p50"], MOONCAKE["output_p99"], n)
    next_id = 0
    earlier: list[list[int]] = []
    lines = []
    for t, i, o in zip(ticks, inputs, outputs, strict=True):
        need = math.ceil(i / BLOCK_TOKENS)
        blocks: list[int] = []
        if earlier and rng.random() < 0.5:  # reuse the prefix of an earlier request (a shared system prompt or conversation)
            donor = earlier[int(rng.integers(len(earlier)))]
            blocks = donor[: min(need, int(rng.integers(1, len(donor) + 1)))]
        while len(blocks) < need:
            blocks = blocks + [next_id]
            next_id += 1
        earlier.append(blocks)
        lines.append(json.dumps({"timestamp": int(t), "input_length": int(i), "output_length": int(o), "hash_ids": blocks}, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--n", type=int, default=200, help="requests per file (default 200)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: this script's folder)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {
        "azure_conv_2023.csv": lambda rng: azure_2023(rng, args.n),
        "azure_code_2024.csv": lambda rng: azure_2024(rng, args.n),
        "burstgpt.csv": lambda rng: burstgpt(rng, args.n, old=False),
        "burstgpt_old.csv": lambda rng: burstgpt(rng, args.n, old=True),
        "mooncake.jsonl": lambda rng: mooncake(rng, args.n),
    }
    for k, (name, make) in enumerate(files.items()):
        text = make(np.random.default_rng([args.seed, k]))
        (args.out / name).write_text(text)
        print(f"{args.out / name}: {len(text.splitlines()) - (0 if name.endswith('.jsonl') else 1)} requests, {len(text)} bytes")


if __name__ == "__main__":
    main()
