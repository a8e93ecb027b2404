"""Reaching an OpenAI-compatible server before any request: the key, the connection, TLS, the model, one streamed request.

Two functions, `check_server` (GET /models) and `check_stream` (one tiny streamed request with the run's body), shared
by the endpoint workload's setup (raised there as a RuntimeError with the same line: the workload fails with exit
status 1 and the run directory kept) and `python -m profiler validate --probe` (the same line becomes a UserError: exit status 2, nothing run).
Each problem is one line: what went wrong, where, what to do.

It asks `GET {base_url}/models` once, with the key where `api_key_env` names one, within `timeout_s` (the probe:
PROBE_TIMEOUT_S) for the connection, the TLS handshake and the answer each (httpx2's Timeout); then `check_stream`
sends ONE streamed request of max_tokens STREAM_CHECK_TOKENS with the body the run will send (the profile's fields,
the api) and reads it to its end, within STREAM_CHECK_TIMEOUT_S (it also warms the server up: `transformers serve`
builds its batching manager on its first request). Every text that leaves here passes `redact_key` (a server may
echo the key in an error body). Light imports only (httpx2, ssl, socket): `validate` never imports torch.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 5.0
"""validate --probe's limit on the connection, the TLS handshake and the answer, each (s)."""
STREAM_CHECK_TOKENS = 2
"""The check request's max_tokens: enough to see tokens stream and the stream end."""
STREAM_CHECK_PROMPT = "Say hello."
"""The check request's prompt (a fixed text no load request has)."""
STREAM_CHECK_TIMEOUT_S = 60.0
"""The check request's limit on its answer, each read (s): the first request may build the server's state (transformers
serve's batching manager: a second or two on a CPU), longer than PROBE_TIMEOUT_S."""
EXTRA_FIELDS = ("ignore_eos", "min_tokens", "stream_options", "continuous_usage_stats", "logprobs", "top_logprobs")
"""Request fields a profile may send beyond a plain OpenAI request: a 400/422 naming one means the wrong `server:`."""
SHOWN_MODELS = 5
"""A wrong model's line lists at most this many of the served ones."""
SHOWN_NAME_CHARS = 60
"""... each cut to this many characters."""


class ServerProblem(RuntimeError):
    """The server cannot be used as given; the text is one line saying what, where and what to do."""


KEY_PREFIX_CHARS = 6
"""A piece of the key this long or longer, at its start, is redacted too: an error text cut to its first
ERROR_TEXT_CHARS characters may end inside the key."""


def redact_key(text: str, key: str | None) -> str:
    """`text` with every occurrence of the API key replaced by '***' (a server may echo the key it refused: "Incorrect
    API key provided: <key>"), and every piece of at least KEY_PREFIX_CHARS of its start (a text cut inside the key);
    the one function every error text passes before the workload records or raises it."""
    if not key:
        return text
    text = text.replace(key, "***")
    for n in range(len(key) - 1, KEY_PREFIX_CHARS - 1, -1):
        if key[:n] in text:
            text = text.replace(key[:n], "***")
    return text


def bearer_key(headers: dict[str, str]) -> str | None:
    """The key in a headers dict's `Authorization: Bearer <key>` (None: none)."""
    value = headers.get("Authorization", "")
    return value.removeprefix("Bearer ") or None


def redact_url(url: str) -> str:
    """The URL with any user name and password replaced by '***' (for every place a URL is shown or stored)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def auth_headers(api_key_env: str | None) -> dict[str, str]:
    """The Authorization header from the variable `api_key_env` names ({} without one). Raises ServerProblem when it is
    unset or empty."""
    if api_key_env is None:
        return {}
    key = os.environ.get(api_key_env)
    if not key:
        raise ServerProblem(f"api_key_env: the environment variable {api_key_env} is not set (or empty): export it with the server's API key")
    return {"Authorization": f"Bearer {key}"}


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first (at most 10)."""
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 10:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def connect_problem(exc: BaseException, url: str, timeout_s: float) -> str:
    """The line for an HTTP client's exception on the way to `url`: a certificate that failed verification, another TLS
    failure, a host name that does not resolve, a refused connection, an http:// URL whose server hangs up (one that
    speaks https), no answer in time, else the exception's text."""
    import httpx2

    where = redact_url(url)
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    causes = _causes(exc)
    verify = next((c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None)
    if verify is not None:
        why = getattr(verify, "verify_message", None) or str(verify)
        return (
            f"TLS: the certificate of {host}:{port} failed verification ({why}) at {where}: set SSL_CERT_FILE to the CA bundle "
            "(a PEM file) that signed it, or give an http:// base_url if the server speaks plain HTTP"
        )
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return f"TLS: the handshake with {host}:{port} failed ({exc}) at {where}: does the server speak https on that port? (else give an http:// base_url)"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return f"cannot resolve the host name {host} ({exc}) of {where}: check base_url's host"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return f"nothing accepts connections at {host}:{port} (connection refused) for {where}: is the server running, on this host and port?"
    if parts.scheme == "http" and (isinstance(exc, (httpx2.ReadError, httpx2.RemoteProtocolError)) or any(isinstance(c, ConnectionResetError) for c in causes)):
        return f"{host}:{port} closed the connection without an HTTP answer ({exc}) for {where}: does it speak https? (then give an https:// base_url)"
    if isinstance(exc, httpx2.TimeoutException):
        return f"no answer from {host}:{port} within {timeout_s:g} s ({type(exc).__name__}) for {where}: is the server up, and the host reachable from here?"
    return f"cannot reach the server at {where}: {type(exc).__name__}: {exc}; is it running, and does base_url end with /v1?"


def served_models(answer: Any) -> list[str] | None:
    """The model ids of a /models answer ({"data": [{"id": ...}, ...]}), or None when it is no such list."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        return None
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


def shortened(names: list[str]) -> str:
    """At most SHOWN_MODELS names, each at most SHOWN_NAME_CHARS characters, and how many more there are."""
    shown = [n if len(n) <= SHOWN_NAME_CHARS else n[: SHOWN_NAME_CHARS - 3] + "..." for n in names[:SHOWN_MODELS]]
    more = f" (and {len(names) - SHOWN_MODELS} more)" if len(names) > SHOWN_MODELS else ""
    return (", ".join(shown) or "none") + more


def check_server(base_url: str, model: str | None, headers: dict[str, str], timeout_s: float, check_model: bool = True) -> tuple[str, str]:
    """Ask the server's /models once: (what it said of the model, in words (a fact); the model). `model` None: the one
    model the server lists. Raises ServerProblem (one line) when it cannot be reached (refused, DNS, TLS, no answer
    within timeout_s), refuses the key (401, 403), with check_model lists models without `model`, or, with `model`
    None, lists none or several. A server without a model list (another status, another body) is not checked, and
    says so (then `model` must be given)."""
    import httpx2

    url = f"{base_url}/models"
    where = redact_url(url)
    try:
        with httpx2.Client(timeout=httpx2.Timeout(timeout_s), headers=headers, trust_env=True) as client:
            response = client.get(url)
    except httpx2.HTTPError as exc:
        raise ServerProblem(connect_problem(exc, url, timeout_s)) from None
    if response.status_code in (401, 403):
        if "Authorization" in headers:
            raise ServerProblem(f"the server at {where} refused the API key (HTTP {response.status_code}): check the variable api_key_env names")
        raise ServerProblem(f"the server at {where} wants an API key (HTTP {response.status_code}): export it in a variable and name that in api_key_env")
    if response.status_code == 404 and (check_model or model is None):
        raise ServerProblem(f"{where} answered HTTP 404: does base_url end with /v1? (a server without a model list: set model, and check_model: false)")
    served = None
    if response.status_code == 200:
        try:
            served = served_models(response.json())
        except ValueError:
            served = None
    if model is None:
        return only_model(where, served)
    if served is None:
        said = f"answered HTTP {response.status_code}" if response.status_code != 200 else "answered something other than a model list"
        return f"not checked: {where} {said}", model
    if not check_model:
        return f"reached {where} (model not checked: check_model false)", model
    if model not in served:
        raise ServerProblem(f"the server at {where} does not serve model '{model}'; it serves: {shortened(served)}: set model to one of them")
    return f"served (listed by {where})", model


def only_model(where: str, served: list[str] | None) -> tuple[str, str]:
    """(the fact, the model) when `model` was not given: the one model the server lists at `where`. Raises
    ServerProblem when it lists none, several, or no list at all."""
    if not served:
        raise ServerProblem(f"model is not set and {where} lists no model: set model to the name your server serves")
    if len(served) > 1:
        raise ServerProblem(f"model is not set and the server at {where} serves {len(served)} models: {shortened(served)}: set model to one of them")
    return f"the one model the server lists (model not set; listed by {where})", served[0]


def check_stream(url: str, body: dict[str, Any], headers: dict[str, str], server: str, timeout_s: float = STREAM_CHECK_TIMEOUT_S) -> str:
    """POST one streamed request (`body`: the run's, with max_tokens STREAM_CHECK_TOKENS) to `url` and read it to its
    end: what came back, in words (a fact). Raises ServerProblem (one line, the key redacted) for a 404 (base_url
    without /v1, or a model it does not serve), a 400/422 naming a field the profile sends (the wrong `server:` kind),
    a refused key, another HTTP error, a stream that ends without [DONE] where the profile expects one, or a stream that
    does not end complete (endpoint_stream.outcome)."""
    import httpx2

    key = bearer_key(headers)
    try:
        line = _stream_once(httpx2, url, body, headers, timeout_s, server)
    except httpx2.HTTPError as exc:
        line = ServerProblem(connect_problem(exc, url, timeout_s))
    if isinstance(line, ServerProblem):
        raise ServerProblem(redact_key(str(line), key)) from None
    return redact_key(line, key)


def _stream_once(httpx2: Any, url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float, server: str) -> str | ServerProblem:
    """check_stream's request: its fact, or the ServerProblem to raise (unredacted)."""
    import time

    from .endpoint_stream import SERVERS, Answer, Chunk, SseLines, StreamFault, count_tokens, outcome

    where, api = redact_url(url), "completions" if "prompt" in body else "chat/completions"
    profile, answer, events = SERVERS[server], Answer(), SseLines()
    t0 = time.perf_counter()
    with httpx2.Client(timeout=httpx2.Timeout(timeout_s), headers={**headers, "Accept": "text/event-stream"}, trust_env=True) as client:
        with client.stream("POST", url, json=body) as response:
            if response.status_code >= 400:
                return ServerProblem(_http_problem(response.status_code, response.read()[:4096], where, server, json.dumps(body)))
            try:
                for text in response.iter_lines():
                    event = events.line(text, time.monotonic_ns())
                    if event is None:
                        continue
                    if event[0].strip() == "[DONE]":
                        answer.done = True
                        break
                    answer.chunks.append(Chunk.parse(event[0], event[1], api))
            except StreamFault as fault:
                return ServerProblem(f"a streamed check request to {where} failed: {fault}")
    tokens = sum(k for k, _ in count_tokens(answer.chunks, None))
    if not answer.done and profile.sends_done and answer.finish_reason is not None:
        return ServerProblem(
            f"{where} ended its stream after finish_reason {answer.finish_reason!r} without data: [DONE], which server: {server} expects: "
            "set server: generic (or this server's kind)"
        )
    status, error = outcome(answer, tokens, profile)
    if status != "finished":
        return ServerProblem(f"a streamed check request to {where} (max_tokens {body.get('max_tokens')}) did not end complete: {error}")
    ended = "data: [DONE]" if answer.done else "the stream's end (no [DONE]: complete after a finish_reason)"
    return (
        f"a streamed request (the run's body, max_tokens {body.get('max_tokens')}) streamed {tokens} token(s) in {len(answer.chunks)} chunks "
        f"to {ended}, finish_reason {answer.finish_reason!r}, in {time.perf_counter() - t0:.2f} s"
    )


def _http_problem(status: int, head: bytes, where: str, server: str, sent: str) -> str:
    """The line for an HTTP error answering the check request."""
    from .endpoint_stream import http_error_text

    said = http_error_text(status, head)
    named = [f for f in EXTRA_FIELDS if f'"{f}"' in sent and f in head.decode("utf-8", errors="replace")]
    if status in (400, 422) and named:
        return f"{where} refused the field(s) {', '.join(named)} that server: {server} sends ({said}): set server: generic or this server's kind"
    if status == 404:
        return f"{where} answered {said}: does base_url end with /v1, and does the server serve this model?"
    if status in (401, 403):
        return f"{where} refused the request ({said}): check the API key (the variable api_key_env names)"
    return f"a streamed check request to {where} failed: {said}"
