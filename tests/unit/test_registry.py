"""Plugin discovery and resolution: entry points, 'module:Class', and broken plugins."""

from __future__ import annotations

import pytest

from profiler.errors import UserError
from profiler.suite.registry import discover, resolve_workload
from tests.conftest import assert_one_line_error, run_cli


def test_builtins_are_entry_points():
    names = discover()
    assert {"llm_decode", "toy"} <= set(names)
    assert "entry point" in resolve_workload("toy").source


def test_unknown_name_suggests_and_lists():
    with pytest.raises(UserError, match=r"did you mean 'toy'.*known: .*llm_decode"):
        resolve_workload("tooy")


def test_module_class_is_checked_against_the_protocol():
    assert resolve_workload("tests.plugins.faulty:Faulty").cls.__name__ == "Faulty"
    with pytest.raises(UserError, match=r"'tests.plugins.faulty:NoRunOnce'.*does not implement 'run_once\(\)'"):
        resolve_workload("tests.plugins.faulty:NoRunOnce")
    with pytest.raises(UserError, match=r"has no 'Faulti'.*did you mean 'Faulty'"):
        resolve_workload("tests.plugins.faulty:Faulti")
    with pytest.raises(UserError, match=r"failed to import: ModuleNotFoundError"):
        resolve_workload("tests.plugins.nope:X")


def test_broken_entry_point_breaks_only_itself(tmp_path, write_suite):
    """A distribution whose entry point cannot import: `list` shows it broken, the rest works."""
    dist = tmp_path / "site" / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[profiler.workloads]\nbroken = broken_plugin_missing.module:Thing\n")
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{__import__('tests.conftest').conftest.ROOT}"}
    listing = run_cli("list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "broken" in listing.stdout and "failed to import" in listing.stdout
    assert "llm_decode" in listing.stdout
    suite = write_suite("name: s\nworkloads:\n  - name: b\n    type: broken\n")
    assert_one_line_error(run_cli("validate", suite, env=env), "workload plugin 'broken'", "failed to import", "ModuleNotFoundError")
    good = write_suite("name: s\nworkloads:\n  - name: t\n    type: toy\n", name="good.yaml")
    assert run_cli("validate", good, env=env).returncode == 0


def test_plugin_params_rejected_with_plugin_path(write_suite):
    suite = write_suite("name: s\nworkloads:\n  - name: f\n    type: tests.plugins.faulty:Faulty\n    params: {mode: explode}\n")
    assert_one_line_error(run_cli("validate", suite), "workloads[0].params.mode", "'raise'")


def test_list_shows_params_types_defaults_help():
    result = run_cli("list")
    assert result.returncode == 0
    for needle in ("llm_decode", "batch_size", "prompt_len", "Sequences decoded together", "toy", "first_s"):
        assert needle in result.stdout


def test_schema_is_json_with_per_type_params():
    import json

    schema = json.loads(run_cli("schema").stdout)
    entry = schema["$defs"]["WorkloadEntry"]
    branches = {b["if"]["properties"]["type"]["const"]: b for b in entry["allOf"]}
    assert "batch_size" in branches["llm_decode"]["then"]["properties"]["params"]["properties"]
    assert schema["properties"]["measure"]
