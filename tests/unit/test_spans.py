"""The span recorder: what a span stores, and that spans stream to complete part files."""

from __future__ import annotations

import pandas as pd
import pytest

from profiler.measure.spans import ITERATION, SpanRecorder
from profiler.measure.store import SPANS, PartWriter, merge_parts


class TwoSteps:
    def run_once(self, mark):
        with mark("a", units=1, position=1) as s:
            pass
        s.attrs["state_bytes"] = 123  # set after the span closed: still stored
        with mark("b", units=0, note="x"):
            pass


def test_spans_record_attrs_and_iteration(tmp_path):
    rec = SpanRecorder(PartWriter(tmp_path, SPANS))
    rec.run_iteration(TwoSteps(), 0, warmup=True)
    rec.run_iteration(TwoSteps(), 1, warmup=False)
    rec.flush()
    merge_parts(tmp_path, SPANS)
    df = pd.read_parquet(tmp_path / "spans.parquet")
    assert list(df["phase"]) == [ITERATION, "a", "b"] * 2  # ordered by start
    assert list(df["index"]) == [0, 1, 2] * 2
    assert list(df["warmup"]) == [True] * 3 + [False] * 3
    a = df[df["phase"] == "a"].iloc[0]
    assert a["state_bytes"] == 123 and a["position"] == 1 and a["units"] == 1
    it = df[df["phase"] == ITERATION].iloc[0]
    assert it["start_ns"] <= a["start_ns"] <= a["end_ns"] <= it["end_ns"]
    assert df["device_s"].isna().all()
    assert not list(tmp_path.glob("spans.part-*"))


class Raises:
    def run_once(self, mark):
        with mark("ok", units=1):
            pass
        with mark("bad"):
            raise ValueError("boom")


def test_a_raising_span_is_kept_with_its_error(tmp_path):
    writer = PartWriter(tmp_path, SPANS)
    rec = SpanRecorder(writer)
    with pytest.raises(ValueError):
        rec.run_iteration(Raises(), 0, warmup=False)
    rec.flush()
    df = pd.read_parquet(next(tmp_path.glob("spans.part-*.parquet")))
    errors = df.set_index("phase")["error"]
    assert errors.isna()["ok"] and errors["bad"] == "ValueError" and errors[ITERATION] == "ValueError"


def test_parts_are_complete_files_each_and_merge(tmp_path):
    writer = PartWriter(tmp_path, SPANS, max_rows=4)
    rec = SpanRecorder(writer, flush_every_s=1e9)
    for i in range(5):
        rec.run_iteration(TwoSteps(), i, warmup=False)  # 3 rows each: a part every 2 iterations
    parts = sorted(tmp_path.glob("spans.part-*.parquet"))
    assert len(parts) == 2
    assert sum(len(pd.read_parquet(p)) for p in parts) == 12  # the last iteration is still buffered
    rec.flush()
    merge_parts(tmp_path, SPANS)
    assert len(pd.read_parquet(tmp_path / "spans.parquet")) == 15


def test_parts_whose_attribute_changes_type_merge_as_text(tmp_path):
    """A plugin attribute that is a number in one batch and text in the next: the merge (and a
    crashed run's parts, read directly) keep every row, the clashing column as text."""
    from profiler.rundir import WorkloadRun, read_measured

    w = PartWriter(tmp_path, SPANS)
    base = {"iteration": 1, "warmup": False, "phase": "step", "index": 1, "start_ns": 0, "end_ns": 5, "units": 1.0, "error": None}
    w.extend([{**base, "label": 7, "n": 1}, {**base, "phase": "iteration", "index": 0, "label": 8, "n": 2}])
    w.flush()
    w.extend([{**base, "iteration": 2, "label": "seven", "n": 2.5}, {**base, "iteration": 2, "phase": "iteration", "index": 0, "label": "eight", "n": 3.5}])
    w.flush()
    measured, _, total = read_measured(tmp_path / f"{SPANS}.parquet")  # from the parts
    assert total == 4 and len(measured) == 4
    assert list(WorkloadRun("w", tmp_path, {}, None).spans["label"]) == ["7", "8", "seven", "eight"]
    merge_parts(tmp_path, SPANS)
    merged = pd.read_parquet(tmp_path / f"{SPANS}.parquet")
    assert list(merged["label"]) == ["7", "8", "seven", "eight"] and merged["n"].tolist() == [1.0, 2.0, 2.5, 3.5]
