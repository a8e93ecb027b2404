"""Property-based: malformed suite files never produce a traceback. `validate` and `run` exit 2
with one line, for random bytes (non-UTF-8 included) and for valid suites with one thing broken
(unknown keys, wrong types, huge and negative numbers, deep nesting). Deterministic: derandomized."""

from __future__ import annotations

import contextlib
import io
import signal
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.cli import main

FUZZ = settings(max_examples=600, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TMP = Path(tempfile.mkdtemp(prefix="fuzz-suites-"))

BASE = {
    "name": "s",
    "measure": {"warmup_iters": 0, "min_iters": 1, "min_seconds": 0, "max_seconds": 5},
    "workloads": [{"name": "llm", "type": "llm_decode", "params": {"preset": "llama-tiny", "batch_size": 1, "gen_len": 4}}],
}
# (path to a value, a value that must be rejected there)
NUMERIC_FIELDS = [
    ("measure", "min_iters"),
    ("measure", "max_seconds"),
    ("measure", "warmup_iters"),
    ("workloads", 0, "params", "batch_size"),
    ("workloads", 0, "params", "gen_len"),
    ("workloads", 0, "params", "prompt_len"),
]


def check(text: bytes) -> None:
    path = TMP / "suite.yaml"
    path.write_bytes(text)
    for argv in (["validate", str(path)], ["run", str(path), "-o", str(TMP / "runs"), "--device", "cpu"]):
        err = io.StringIO()
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
        finally:
            signal.signal(signal.SIGINT, handlers[0])
            signal.signal(signal.SIGTERM, handlers[1])
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        assert code == 2, (argv[0], text[:200], err.getvalue())
        assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
        assert "Traceback" not in err.getvalue()
    assert not (TMP / "runs").exists()  # nothing written for bad input


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_random_files(data):
    check(data)


def _set(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _nested(depth: int) -> dict:
    node: dict = {"x": 1}
    for _ in range(depth):
        node = {"a": node}
    return node


mutations = st.one_of(
    st.tuples(st.just("unknown"), st.sampled_from([(), ("measure",), ("workloads", 0), ("workloads", 0, "params")]), st.text(min_size=1, max_size=12)),
    st.tuples(
        st.just("wrong_type"),
        st.sampled_from(NUMERIC_FIELDS + [("name",), ("workloads",), ("workloads", 0, "type")]),
        st.one_of(
            st.text(max_size=8), st.lists(st.integers(), max_size=3), st.booleans(), st.none(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
        ),
    ),
    st.tuples(
        st.just("bad_number"), st.sampled_from(NUMERIC_FIELDS), st.one_of(st.integers(max_value=-1), st.integers(min_value=10**12), st.floats(min_value=1e15))
    ),
    st.tuples(st.just("deep"), st.sampled_from([("workloads", 0, "params", "preset"), ("measure",), ("name",)]), st.integers(min_value=5, max_value=400)),
)


@FUZZ
@given(mutations)
def test_broken_valid_suites(mutation):
    kind, path, value = mutation
    data = yaml.safe_load(yaml.safe_dump(BASE))
    if kind == "unknown":
        node = data
        for key in path:
            node = node[key]
        node["zz_" + value] = 1  # the prefix keeps it from ever being a real key
    elif kind == "deep":
        _set(data, path, _nested(value))
    else:
        if kind == "wrong_type" and path == ("workloads",) and isinstance(value, list) and not value:
            value = "not a list"  # an empty list is also invalid, but keep the case meaningful
        if kind == "wrong_type" and isinstance(value, bool) is False and isinstance(value, int) and path in NUMERIC_FIELDS:
            value = str(value)
        if kind == "wrong_type" and isinstance(value, str) and path in (("name",), ("workloads", 0, "type")):
            value = [value]  # any string is a valid name; a list never is
        _set(data, path, value)
    try:
        text = yaml.safe_dump(data, allow_unicode=True).encode()
    except RecursionError:
        return
    check(text)
