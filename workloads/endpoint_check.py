"""Reaching an OpenAI-compatible server before any request: the key, the connection, TLS, the model.

One function, `check_server`, shared by the endpoint workload's setup (a `ServerProblem` there is a RuntimeError: the
workload fails with exit status 1 and the run directory kept) and `python -m profiler validate --probe` (the same line
becomes a UserError: exit status 2, nothing run). Each problem is one line: what went wrong, where, what to do.

It asks `GET {base_url}/models` once, with the key where `api_key_env` names one, within `timeout_s` (the probe:
PROBE_TIMEOUT_S) for the connection, the TLS handshake and the answer each (httpx2's Timeout). Light imports only
(httpx2, ssl, socket): `validate` never imports torch.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 5.0
"""validate --probe's limit on the connection, the TLS handshake and the answer, each (s)."""
SHOWN_MODELS = 5
"""A wrong model's line lists at most this many of the served ones."""
SHOWN_NAME_CHARS = 60
"""... each cut to this many characters."""


class ServerProblem(RuntimeError):
    """The server cannot be used as given; the text is one line saying what, where and what to do."""


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


def check_server(base_url: str, model: str, headers: dict[str, str], timeout_s: float, check_model: bool = True) -> str:
    """Ask the server's /models once: what it said of the model, in words (a fact). Raises ServerProblem (one line) when
    it cannot be reached (refused, DNS, TLS, no answer within timeout_s), refuses the key (401, 403) or, with
    check_model, lists models without `model`. A server without a model list (another status, another body) is not
    checked, and says so."""
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
    if response.status_code != 200:
        return f"not checked: {where} answered HTTP {response.status_code}"
    try:
        served = served_models(response.json())
    except ValueError:
        served = None
    if served is None:
        return f"not checked: {where} answered something other than a model list"
    if not check_model:
        return f"reached {where} (model not checked: check_model false)"
    if model not in served:
        raise ServerProblem(f"the server at {where} does not serve model '{model}'; it serves: {shortened(served)}: set model to one of them")
    return f"served (listed by {where})"
