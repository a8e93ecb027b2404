"""Property-based: hostile inputs get the verdict their contract states, through the CLI's entry point, in-process.

About 1,000 cases (tests/fuzz_cases.py) over the classes of issue 24: numbers at and beyond their stated bounds and
the cross-field rules of feasibility.py (in the file, by --set, in a sweep), alias bombs, anchors and merge keys,
duplicate keys, deep nesting, hostile text, damaged traces and trace paths, `-o` onto what the profiler did not
create. A value outside its bound must be refused in one line naming its key; a valid one must be accepted; nothing
may print a traceback, hang (tests/fuzz_harness.py HANG_S), print an input's secret or a raw control character.
benchmarks/fuzz.py runs the same cases at 10,000+ and prints the counts.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_cases import NUMBER_FIELDS, REFUSE_ONLY, WEIGHTS, any_case
from tests.fuzz_harness import run_case

FOLDER = Path(tempfile.mkdtemp(prefix="fuzz-inputs-")) / "case"


@settings(max_examples=1000, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(any_case({**WEIGHTS, "rundir": 0}))
def test_every_hostile_input_gets_its_stated_verdict(case):
    outcome = run_case(case, FOLDER)
    assert outcome.ok, f"{outcome.verdict}: {case.describe()}\n{outcome.why}"


@pytest.mark.parametrize("field", NUMBER_FIELDS + REFUSE_ONLY, ids=lambda f: ".".join(map(str, f.path)) + f" ({f.base['workloads'][0]['type']})")
def test_every_number_states_a_finite_bound_on_both_sides(field):
    """The oracle reads each field's stated bound: a field with none (or an infinite one) would make 1e308 valid."""
    b = field.bound
    assert b.lo is not None and b.hi is not None, f"{field.path}: no lower or upper bound"
    assert math.isfinite(b.lo) and math.isfinite(b.hi) and b.hi < 2**64, f"{field.path}: bound {b}"


def test_the_hostile_values_are_refused_where_the_issue_found_them():
    """The values issue 24 names, each at its field: the bound must refuse them (a bound of `gt=0` took 5e-324)."""
    by_path = {(f.path, f.base["workloads"][0]["type"]): f for f in NUMBER_FIELDS}
    load = ("workloads", 0, "load")
    assert not by_path[((*load, "rate"), "toy_serve")].bound.holds(5e-324)
    assert not by_path[((*load, "burstiness"), "toy_serve")].bound.holds(1e-300)
    assert not by_path[((*load, "sizes", "input", "fixed"), "toy_serve")].bound.holds(2**63 - 1)
    assert not by_path[(("measure", "sample_hz"), "toy")].bound.holds(1e-300)
