"""The endpoint workload's prompts: text of an exact token length, and how that length is known.

What a server prefills is what it counts: for `completions` the prompt with the special tokens its tokenizer adds
(BOS), for `chat/completions` the prompt after the chat template (the template's own tokens included). So a prompt of
`input_tokens` tokens is measured the way the server counts it, by one of (in this order):

- `tokenizer`: the model's own tokenizer from a local directory (`tokenizer:`). Each request's prompt is cut to the
  content's share of input_tokens in token ids, decoded, and counted again with the special tokens (completions) or
  through the tokenizer's chat template (chat): its count is exact per request (tokenizer_prompt).
- `tokenize_route`: the server's tokenize route where its capability profile names one (`TokenizeRoute`, below, with
  the source of each shape). A round trip during the load would delay the request's send, so the route is
  calibrated at setup in two calls: a one-word prompt (its count - 1 is the overhead: template and special tokens)
  and one with every word of the list after it; where each word is one token (that count is the overhead + 1 +
  len(WORDS)), a prompt of n tokens is n - overhead words, with no call during the load. Otherwise each length is
  fitted at its first request (`fit_words`): from n - overhead words, tokenize, move the word count by the
  difference, at most MAX_ROUND_TRIPS calls, the word count cached per length. Each request of a length gets that
  many words from its own start word; the count recorded is the calibrated or fitted one (another start word gives
  the same count when the words are one token each; the server's own usage checks it per request, below).
- `unknown`: neither: input_tokens words, counted by nobody. APPROXIMATE_BOUND says how far that can be off.

Whatever built it, the server's final usage (`prompt_tokens`, sent with stream_options.include_usage) is the exact
count of what it prefilled: where a request's stream carries one, that is the recorded count (`server_usage`), and a
count measured before the request that differs from it is tallied (prompt_count_mismatches).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

WORDS = (
    "the of and to in is was for on that with as by at from his her are this which be or have an they one had not but "
    "what all were when we there can more if no out so said time up about into than them only other new some could"
).split()
"""Common English words, one token each in most BPE vocabularies (with their leading space): the prompts' text."""

MAX_ROUND_TRIPS = 4
"""The most tokenize calls `fit_words` makes for one input length."""

APPROXIMATE_BOUND = (
    "approximate: input_tokens words, counted by nobody (no tokenizer, no tokenize route, no usage from the server): at "
    "least input_tokens tokens (a word is one token or more) and at most 6 x input_tokens (a word is at most 5 bytes and "
    "its space, a byte-level vocabulary at most one token per byte), plus the special tokens"
)
"""What an uncounted prompt's length can be, stated where it is used (the facts' `prompts`)."""

PromptBy = Literal["server_usage", "tokenizer", "tokenize_route", "unknown"]
"""How a request's input_tokens is known: the server's usage for it, the local tokenizer on that prompt, the server's
tokenize route on a prompt of that length, or not at all (the requested length, approximate)."""


def prompt_words(index: int, n: int) -> str:
    """The prompt of request `index`: n words (7 x index + k of the list, so requests differ from their first word
    and a prefix cache does not serve one request from another's prompt)."""
    return " ".join(WORDS[(7 * index + k) % len(WORDS)] for k in range(n))


@dataclass(frozen=True)
class TokenizeRoute:
    """A server's route that counts a prompt's tokens: POST {origin}{path}, where origin is base_url without its /v1.

    shape: which request and answer it takes (`request`, `count`). chat_path: the route that counts a chat's messages
    through the server's chat template; None: this server counts only plain text, so a chat prompt's template tokens
    are not counted by it (the usage check still gives the exact count per request)."""

    path: str
    shape: Literal["vllm", "llama.cpp", "tgi"]
    chat_path: str | None
    source: str

    def request(self, model: str, text: str, chat: bool) -> tuple[str, dict[str, Any]] | None:
        """(path, JSON body) that counts `text` as this API sends it; None when the route cannot (chat without
        chat_path)."""
        if chat:
            if self.chat_path is None:
                return None
            messages = [{"role": "user", "content": text}]
            extra = {"add_generation_prompt": True} if self.shape == "vllm" else {}
            return self.chat_path, {"model": model, "messages": messages, **extra}
        if self.shape == "vllm":
            return self.path, {"model": model, "prompt": text, "add_special_tokens": True}
        if self.shape == "llama.cpp":
            return self.path, {"content": text, "add_special": True}
        return self.path, {"inputs": text}

    def count(self, answer: object, chat: bool) -> int:
        """The token count in the route's JSON answer. Raises ValueError when it has none."""
        if self.shape == "tgi":
            tokens = answer.get("tokenize_response") if chat and isinstance(answer, Mapping) else answer
        elif isinstance(answer, Mapping) and isinstance(answer.get("count"), int) and not isinstance(answer.get("count"), bool):
            return int(answer["count"])
        else:
            tokens = answer.get("tokens") if isinstance(answer, Mapping) else None
        if not isinstance(tokens, list):
            raise ValueError(f"no token list in the answer (a {type(answer).__name__})")
        return len(tokens)


ROUTES: dict[str, TokenizeRoute] = {
    "vllm": TokenizeRoute(
        "/tokenize",
        "vllm",
        "/tokenize",
        "vLLM vllm/entrypoints/serve/tokenize/protocol.py and api_router.py: POST /tokenize with {model, prompt, "
        "add_special_tokens (default true)} or {model, messages, add_generation_prompt (default true)} (the chat template "
        "applied) -> {count, max_model_len, tokens, token_strs}; from its source, not yet checked against a running server here",
    ),
    "sglang": TokenizeRoute(
        "/tokenize",
        "vllm",
        None,
        "SGLang python/sglang/srt/entrypoints/http_server.py (POST /tokenize and /v1/tokenize) and "
        "entrypoints/openai/serving_tokenize.py: {model, prompt (text or list), add_special_tokens} -> {tokens, count, "
        "max_model_len}; no messages form (a chat template's tokens are not counted); from its source, not yet checked "
        "against a running server here",
    ),
    "llama.cpp": TokenizeRoute(
        "/tokenize",
        "llama.cpp",
        None,
        "llama.cpp tools/server/README.md: POST /tokenize {content, add_special (default false), with_pieces} -> "
        "{tokens: [ids]}; a chat prompt would need /apply-template first (not done: its template is not counted); from "
        "its documentation, not yet checked against a running server here",
    ),
    "tgi": TokenizeRoute(
        "/tokenize",
        "tgi",
        "/chat_tokenize",
        "text-generation-inference v3.3.7 router/src/server.rs: POST /tokenize {inputs, parameters} -> [{id, text, "
        "start, stop}, ...] and POST /chat_tokenize (a chat request) -> {tokenize_response: [...], templated_text}; from "
        "its source, not yet checked against a running server here",
    ),
}
"""The tokenize route of each server kind that has one (transformers serve 5.24 and `generic`: none)."""


def fit_words(n: int, start: int, measure: Callable[[int], int], rounds: int = MAX_ROUND_TRIPS) -> tuple[int, int, int]:
    """(words, their measured count, tokenize calls) for a prompt of n tokens: from `start` words, each call moves the
    word count by the difference from n (a word is about one token), at most `rounds` calls; stops when a count equals
    n or a word count repeats. Of the counts measured, the one nearest n (the smaller on a tie) is kept: equal to n
    unless a word of several tokens makes n unreachable by whole words. measure(words) -> tokens."""
    tried: dict[int, int] = {}
    words = max(1, start)
    while len(tried) < rounds and words not in tried:
        tried[words] = count = measure(words)
        if count == n:
            break
        words = max(1, words + n - count)
    best = min(tried, key=lambda w: (abs(tried[w] - n), tried[w]))
    return best, tried[best], len(tried)


def template_ids(tokenizer: Any, text: str) -> list[int]:
    """The ids a chat prompt with one user message `text` becomes through the tokenizer's chat template, with the
    generation prompt (what a server prefills for chat/completions)."""
    out = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
    ids = out["input_ids"] if isinstance(out, Mapping) else out
    return list(ids)


def tokenizer_prompt(tokenizer: Any, index: int, n: int, chat: bool) -> tuple[str, int]:
    """(text, its token count as the server counts it) of request `index`'s prompt of n tokens, with the local
    tokenizer: the content is cut to n minus the overhead (the chat template's tokens, or the special tokens a
    completions prompt gets) in token ids and decoded; the count is of the whole prompt, exact even when the decoded text
    re-tokenizes differently (then it differs from n). A chat prompt through a tokenizer without a chat template is
    counted without the template (the server's template adds its tokens: the usage check shows them)."""

    templated = chat and has_chat_template(tokenizer)

    def whole(text: str) -> int:
        if templated:
            return len(template_ids(tokenizer, text))
        return len(tokenizer.encode(text, add_special_tokens=not chat))

    content = max(1, n - whole(""))
    ids = tokenizer.encode(prompt_words(index, content), add_special_tokens=False)
    extra = 2
    while len(ids) < content and extra < 64:
        ids = tokenizer.encode(prompt_words(index, content * extra), add_special_tokens=False)
        extra *= 2
    text = tokenizer.decode(ids[:content])
    return text, whole(text)


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries a chat template (tokenizer_config.json's chat_template)."""
    return bool(getattr(tokenizer, "chat_template", None))
