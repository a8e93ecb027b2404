"""The suite file and what code may run (issue 24): nothing beside a suite or in the working directory is imported
unless the suite names it; YAML alias bombs, recursive aliases, deep nesting and repeated keys are one line; YAML 1.2
floats; a suite path that is a FIFO, a device or too long a name is one line, never a hang."""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import io
import os
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from profiler.cli import main
from profiler.suite.config import load_suite
from profiler.suite.resolve import resolve_suite
from profiler.suite.yaml_source import MAX_DEPTH, MAX_NODES, parse_value
from tests.conftest import ROOT, assert_one_line_error, cli_in_process, run_cli

TOY_SUITE = """\
name: s
device: cpu
measure: {warmup_iters: 0, min_iters: 1, min_seconds: 0, max_seconds: 5, count_work: false, trace_ops: false}
workloads:
  - {name: t, type: toy, params: {steps: 1, first_s: 0, step_s: 0}}
"""


def cli(*argv: str) -> tuple[int, str]:
    """`python -m profiler ARGV` in this process: (exit status, stderr)."""
    code, _, err = cli_in_process(*argv)
    return code, err


def refused(code: int, err: str, *needles: str) -> str:
    """Exit 2 with one `error:` line holding every needle; the line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def plant(folder: Path, *names: str) -> None:
    """Files named like modules that leave a marker beside them and fail when imported."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = folder / f"IMPORTED-{name.replace('/', '-')}"
        path.write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('planted {name} was imported')\n")


def markers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("IMPORTED-*"))


# ---------------------------------------------------------------- what code may run


def test_builtin_suite_imports_nothing_beside_it_or_from_the_working_directory(tmp_path):
    """Real processes run from the suite's folder: `python -m` puts the working directory first on sys.path, and the
    workload's child is spawned with the parent's."""
    plant(tmp_path, "torch.py", "yaml.py", "pickle.py", "workloads/__init__.py")
    (tmp_path / "suite.yaml").write_text(TOY_SUITE)
    validated = run_cli("validate", "suite.yaml", cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    ran = run_cli("run", "suite.yaml", "-o", tmp_path / "runs", "--no-report", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert markers(tmp_path) == []


def test_builtin_suite_adds_nothing_to_sys_path(tmp_path, monkeypatch):
    plant(tmp_path, "workloads/__init__.py")
    (tmp_path / "suite.yaml").write_text(TOY_SUITE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = list(sys.path)
    resolved = resolve_suite(str(tmp_path / "suite.yaml"))
    assert resolved.plugin_paths == [] and sys.path == before
    assert markers(tmp_path) == []


def test_modules_the_package_imports_first_are_not_taken_from_the_working_directory(tmp_path):
    plant(tmp_path, "pydantic.py")
    (tmp_path / "suite.yaml").write_text(TOY_SUITE)
    validated = run_cli("validate", "suite.yaml", cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    assert markers(tmp_path) == []


PLUGIN = '''\
from profiler import Params

from safety_helper import STEPS  # a helper module beside this one


class MyWorkload:
    """A module:Class plugin beside its suite."""

    class Params(Params):
        steps: int = STEPS

    def __init__(self, params):
        self.p = params

    def setup(self, ctx):
        ctx.declare(output_unit="unit")

    def run_once(self, mark):
        for _ in range(self.p.steps):
            with mark("step", units=1):
                pass

    def teardown(self):
        pass
'''


def test_module_class_plugin_imports_its_helper_and_its_folder_comes_last(tmp_path, monkeypatch):
    folder, cwd = tmp_path / "suite", tmp_path / "cwd"
    cwd.mkdir()
    plant(folder, "colorsys.py")  # a standard module imported only below: the installed one must win
    (folder / "safety_plugin.py").write_text(PLUGIN)
    (folder / "safety_helper.py").write_text("STEPS = 3\n")
    (folder / "suite.yaml").write_text(TOY_SUITE + "  - {name: mine, type: 'safety_plugin:MyWorkload'}\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(cwd)
    for name in ("safety_plugin", "safety_helper", "colorsys"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    resolved = resolve_suite(str(folder / "suite.yaml"))
    assert resolved.workloads[1].params.steps == 3
    assert resolved.plugin_paths == [str(folder), str(cwd)]
    assert sys.path[-2:] == resolved.plugin_paths  # appended, suite folder first, after everything installed
    assert Path(importlib.import_module("colorsys").__file__).parent != folder
    assert markers(folder) == []
    for name in ("safety_plugin", "safety_helper"):
        sys.modules.pop(name, None)


def test_folder_that_would_hide_an_editable_install_is_refused(tmp_path):
    """Under `pip install -e`, an import hook finds `reports`: even an appended folder named `reports` would hide it."""
    elsewhere = [p for p in sys.path if os.path.realpath(p or ".") != str(ROOT)]
    if importlib.machinery.PathFinder.find_spec("reports", elsewhere) is not None:
        pytest.skip("reports is installed on sys.path (not editable): nothing beside a suite can hide it")
    (tmp_path / "safety_plugin.py").write_text(PLUGIN)
    (tmp_path / "safety_helper.py").write_text("STEPS = 3\n")
    (tmp_path / "reports").mkdir()  # an output folder, say
    (tmp_path / "suite.yaml").write_text(TOY_SUITE + "  - {name: mine, type: 'safety_plugin:MyWorkload'}\n")
    result = run_cli("validate", "suite.yaml", cwd=tmp_path, env={"PYTHONPATH": ""})
    assert_one_line_error(result, "reports", "would hide the installed 'reports'")


# ---------------------------------------------------------------- hostile YAML


def bomb(levels: int, indent: str = "") -> str:
    """A billion-laughs chain: 9**levels strings from a few hundred bytes."""
    lines = [f"{indent}a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "where",
    ["top", "params", "sweep"],
)
def test_alias_bomb_is_refused_in_one_line(tmp_path, where):
    if where == "top":
        text = "name: s\n" + bomb(9) + "workloads:\n  - {name: t, type: toy}\n"
    elif where == "params":
        text = "name: s\nworkloads:\n  - name: t\n    type: toy\n    params:\n" + bomb(9, "      ")
    else:
        text = "name: s\nworkloads:\n  - name: t\n    type: toy\n    sweep:\n" + bomb(9, "      ")
    assert len(text) < 1024
    (tmp_path / "suite.yaml").write_text(text)
    refused(*cli("validate", str(tmp_path / "suite.yaml")), "suite.yaml:", f"more than {MAX_NODES:,} values", "aliases")


def test_alias_bomb_in_set_value_is_refused(tmp_path):
    (tmp_path / "suite.yaml").write_text(TOY_SUITE)
    value = "{" + bomb(9).strip().replace("\n", ", ") + "}"
    refused(*cli("validate", str(tmp_path / "suite.yaml"), "--set", f"workloads.0.params.x={value}"), "--set workloads.0.params.x=", f"{MAX_NODES:,} values")


@pytest.mark.parametrize("text", ["x: &a [*a]", "x: &a {k: [1, *a]}"])
def test_recursive_alias_is_refused(tmp_path, text):
    (tmp_path / "suite.yaml").write_text(f"name: s\n{text}\nworkloads:\n  - {{name: t, type: toy}}\n")
    refused(*cli("validate", str(tmp_path / "suite.yaml")), "suite.yaml:2:", "alias *a lies inside its own anchor &a")


def test_anchors_aliases_and_merge_keys_still_work(tmp_path):
    text = """\
        name: s
        workloads:
          - {name: a, type: toy, params: &base {steps: 2, first_s: 1e-3}}
          - {name: b, type: toy, params: *base}
          - name: c
            type: toy
            params:
              <<: *base
              steps: 3
        """
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(text))
    resolved = resolve_suite(str(tmp_path / "suite.yaml"))
    params = {w.entry.name: w.params for w in resolved.workloads}
    assert (params["a"].steps, params["b"].steps, params["c"].steps) == (2, 2, 3)
    assert params["c"].first_s == 0.001
    assert resolved.source.line_of(("workloads", 2, "params", "steps")) == 9  # the explicit key, not the merged one


def test_set_changes_only_the_named_path_of_a_shared_alias(tmp_path):
    (tmp_path / "suite.yaml").write_text("name: s\nworkloads:\n  - {name: a, type: toy, params: &p {steps: 2}}\n  - {name: b, type: toy, params: *p}\n")
    suite, _, _ = load_suite(str(tmp_path / "suite.yaml"), ["workloads.0.params.steps=5"])
    assert [w.params["steps"] for w in suite.workloads] == [5, 2]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: a\nname: b\nworkloads: [{name: t, type: toy}]\n", "suite.yaml:2: duplicate key 'name' (first at line 1)"),
        (
            "name: s\nworkloads:\n  - name: t\n    type: toy\n    params:\n      steps: 1\n      steps: 2\n",
            "suite.yaml:7: duplicate key 'steps' (first at line 6)",
        ),
    ],
)
def test_duplicate_key_names_both_lines(tmp_path, text, needle):
    (tmp_path / "suite.yaml").write_text(text)
    refused(*cli("validate", str(tmp_path / "suite.yaml")), needle)


def test_yaml_1_2_floats_and_quoted_strings(tmp_path):
    (tmp_path / "suite.yaml").write_text('name: "1e3"\nworkloads:\n  - {name: t, type: toy, params: {first_s: 1e-3, step_s: 1E-3}}\n')
    resolved = resolve_suite(str(tmp_path / "suite.yaml"), ["workloads.0.params.step_growth_s=5e-4"])
    params = resolved.workloads[0].params
    assert resolved.suite.name == "1e3"
    assert (params.first_s, params.step_s, params.step_growth_s) == (0.001, 0.001, 0.0005)
    assert [parse_value(v) for v in ("5e-324", "1E6", "+2.5e3", ".5e1", "1.0e+3", "1_000", "1.5")] == [5e-324, 1e6, 2500.0, 5.0, 1000.0, 1000, 1.5]
    assert [parse_value(v) for v in ("'1e3'", '"1e-3"', "1e3x", "e3", "1e")] == ["1e3", "1e-3", "1e3x", "e3", "1e"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: s\nx: " + "[" * 100_000 + "\n", f"suite.yaml:2: nested more than {MAX_DEPTH} levels deep"),
        ("name: s\nx: " + "{a: " * 100_000 + "\n", f"nested more than {MAX_DEPTH} levels deep"),
        ("name: s\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" if i else "a0: &a0 [1]\n" for i in range(70)), "once its aliases (*name) are expanded"),
        ("name: s\nx: [" + ",".join(["1"] * MAX_NODES) + "]\n", f"suite.yaml:2: more than {MAX_NODES:,} values"),
        ("name: s\nx: 2001-02-30\n", "suite.yaml:2: malformed YAML: cannot read '2001-02-30' as timestamp"),
        ("name: s\nx: !!int abc\n", "cannot read 'abc' as int"),
        ("name: s\nx: !!python/object:os.system ls\n", "could not determine a constructor"),
        ("name: s\nx: a\x01b\n", "suite.yaml:2: malformed YAML: character U+0001 is not allowed"),
    ],
)
def test_hostile_yaml_is_one_line(tmp_path, text, needle):
    (tmp_path / "suite.yaml").write_text(text)
    refused(*cli("validate", str(tmp_path / "suite.yaml")), needle)


def test_deep_set_value_is_one_line(tmp_path):
    (tmp_path / "suite.yaml").write_text(TOY_SUITE)
    refused(*cli("validate", str(tmp_path / "suite.yaml"), "--set", "workloads.0.params.x=" + "[" * 100_000), "--set", "nested more than")
    refused(*cli("validate", str(tmp_path / "suite.yaml"), "--set", "workloads.0.params.x={a: 1, a: 2}"), "--set", "duplicate key 'a'")


# ---------------------------------------------------------------- the suite path


def validate_in_thread(path: str) -> tuple[int, str]:
    """`validate PATH` in a thread; a thread still reading after 60 s is a hang (the test fails, it does not wait)."""
    out: list[tuple[int, str]] = []

    def validate() -> None:  # `validate` sets no signal handler, and a thread may not
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            out.append((main(["validate", path]), err.getvalue()))

    thread = threading.Thread(target=validate, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), f"validate {path} hung"
    return out[0]


def test_fifo_device_and_long_names_are_one_line(tmp_path):
    fifo = tmp_path / "suite.yaml"
    os.mkfifo(fifo)
    refused(*validate_in_thread(str(fifo)), "is a FIFO, not a regular file")
    refused(*validate_in_thread("/dev/zero"), "/dev/zero: is a character device")
    refused(*validate_in_thread(str(tmp_path / ("a" * 5000 + ".yaml"))), "the path is too long")
    refused(*validate_in_thread(str(tmp_path / "a\0b.yaml")), "NUL character")
