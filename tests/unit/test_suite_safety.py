"""The suite file and what code may run (issue 24): nothing beside a suite or in the working directory is imported
unless the suite names it; YAML alias bombs, recursive aliases, deep nesting and repeated keys are one line; YAML 1.2
floats; a suite path that is a FIFO, a device or too long a name is one line, never a hang."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

from profiler.cli import main
from profiler.suite.config import load_suite
from profiler.suite.resolve import resolve_suite
from profiler.suite.yaml_source import MAX_DEPTH, MAX_NODES, dump, parse_value
from tests.conftest import ROOT, cli_in_process, run_cli

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
        import safety_setup_helper  # a helper imported only here, in the child

        ctx.declare(output_unit=safety_setup_helper.OUTPUT_UNIT)

    def run_once(self, mark):
        for _ in range(self.p.steps):
            with mark("step", units=1):
                pass

    def teardown(self):
        pass
'''


def module_class_suite(folder: Path) -> Path:
    """A module:Class plugin (a helper imported at module level, another in setup()) and a plugin package with
    submodules (a top-level helper of its own), beside a suite that names both."""
    (folder / "safety_plugin.py").write_text(PLUGIN)
    (folder / "safety_helper.py").write_text("STEPS = 3\n")
    (folder / "safety_setup_helper.py").write_text("OUTPUT_UNIT = 'unit'\n")
    package = folder / "safety_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from . import parts\n")
    (package / "parts.py").write_text("import safety_pkg_helper\n\nSTEPS = safety_pkg_helper.STEPS\n")
    (package / "work.py").write_text(
        "from safety_plugin import MyWorkload\n\nfrom .parts import STEPS\n\n\nclass PkgWorkload(MyWorkload):\n"
        "    class Params(MyWorkload.Params):\n        steps: int = STEPS\n"
    )
    (folder / "safety_pkg_helper.py").write_text("STEPS = 2\n")
    suite = folder / "suite.yaml"
    suite.write_text(TOY_SUITE + "  - {name: mine, type: 'safety_plugin:MyWorkload'}\n  - {name: pkg, type: 'safety_pkg.work:PkgWorkload'}\n")
    return suite


OPTIONAL = ("dill.py", "pytz.py", "cuda.py", "org.py", "torchcomms.py", "triton.py", "numexpr.py", "workloads/__init__.py", "reports/__init__.py")
"""Modules torch and pandas try when present (`try: import dill`), and the profiler's own packages."""


@pytest.fixture
def own_imports(monkeypatch):
    """sys.meta_path and sys.path as they were after the test, and the test's plugin modules forgotten."""
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [n for n in sys.modules if n.startswith("safety_")]:
        del sys.modules[name]


def test_module_class_plugin_and_its_helpers_import_but_nothing_else_beside_it(tmp_path, monkeypatch, own_imports):
    folder, cwd = tmp_path / "suite", tmp_path / "cwd"
    cwd.mkdir()
    plant(folder, "colorsys.py", "planted_probe.py")  # colorsys: a standard module imported only below
    plant(cwd, "planted_probe_cwd.py")
    suite = module_class_suite(folder)
    monkeypatch.chdir(cwd)
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    before = list(sys.path)
    resolved = resolve_suite(str(suite))
    assert [w.params.steps for w in resolved.workloads[1:]] == [3, 2]
    assert resolved.plugin_paths == [str(folder), str(cwd)]
    assert sys.path == before  # nothing put on sys.path
    assert Path(importlib.import_module("colorsys").__file__).parent != folder  # the installed one wins
    for name in ("planted_probe", "planted_probe_cwd"):  # code outside the folders (this test) finds nothing there
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
        assert importlib.util.find_spec(name) is None
    assert Path(sys.modules["safety_helper"].__file__).parent == folder
    assert markers(folder) == markers(cwd) == []


def test_module_class_suite_runs_its_helpers_and_nothing_a_library_probes_for(tmp_path):
    """Real processes: `validate` (pandas tries pytz, numexpr) and a run (the child's torch tries dill, triton, ...),
    with those lying beside the suite and in the working directory, and a `reports/` and `workloads/` there too."""
    folder, cwd = tmp_path / "suite", tmp_path / "cwd"
    cwd.mkdir()
    plant(folder, *OPTIONAL)
    plant(cwd, *OPTIONAL)
    suite = module_class_suite(folder)
    env = {"PYTHONPATH": ""} if _installed() else None  # then an import hook (an editable install) may find reports/
    validated = run_cli("validate", suite, cwd=cwd, env=env)
    assert validated.returncode == 0, validated.stderr
    one = folder / "one.yaml"  # one child (each imports torch): the package plugin, whose base class is the module
    one.write_text(TOY_SUITE.replace("type: toy, params: {steps: 1, first_s: 0, step_s: 0}", "type: 'safety_pkg.work:PkgWorkload'"))
    ran = run_cli("run", one, "-o", tmp_path / "runs", "--no-report", cwd=cwd, env=env)
    assert ran.returncode == 0, ran.stderr
    assert markers(folder) == markers(cwd) == []


def _installed() -> bool:
    """Whether the profiler is installed (pip install, editable or not), so it imports without this checkout on PYTHONPATH."""
    try:
        importlib.metadata.distribution("ml-workload-profiler")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_console_script_takes_the_working_directory_off_an_empty_pythonpath_component(tmp_path):
    """The `profiler` command as pip writes it, with `PYTHONPATH=:ROOT` (an empty component puts the working directory
    on sys.path at startup): a yaml.py there is not imported. pyproject.toml declares the command."""
    plant(tmp_path, "yaml.py", "pydantic.py")
    (tmp_path / "suite.yaml").write_text(TOY_SUITE)
    script = tmp_path / "bin" / "profiler"
    script.parent.mkdir()
    script.write_text("import re\nimport sys\nfrom profiler.cli import main\nif __name__ == '__main__':\n    sys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep + str(ROOT)}
    result = subprocess.run([sys.executable, str(script), "validate", "suite.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert markers(tmp_path) == []
    assert re.search(r'^\[project\.scripts\]\n(?:#.*\n)*profiler = "profiler\.cli:main"$', (ROOT / "pyproject.toml").read_text(), re.M)


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
    assert [parse_value(v) for v in ("5e-324", "1E6", "+2.5e3", ".5e1", "1.0e+3", "+.5", "1.5")] == [5e-324, 1e6, 2500.0, 5.0, 1000.0, 0.5, 1.5]
    assert [parse_value(v) for v in ("'1e3'", '"1e-3"', "1e3x", "e3", "1e")] == ["1e3", "1e-3", "1e3x", "e3", "1e"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("010", 10), ("-010", -10), ("0777", 777), ("+5", 5), ("0o10", 8), ("0x1F", 31), ("!!int 010", 10)],  # YAML 1.1: 8, 511
        *[("1_000", "1_000"), ("0b11", "0b11"), ("1:00", "1:00"), ("0X1F", "0X1F"), ("0o9", "0o9")],  # 1.1: 1000, 3, 60, 31
        *[("1_0.5", "1_0.5"), ("1:30.5", "1:30.5"), (".inf", float("inf")), ("-.Inf", float("-inf")), ("!!float 5", 5.0)],
        *[("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False), ("FALSE", False)],
        *[("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("Y", "Y"), ("tRUE", "tRUE"), ("=", "=")],  # 1.1: booleans
        *[("~", None), ("null", None), ("Null", None), ("NULL", None), ("", None), ("nULL", "nULL"), ("'010'", "010"), ('"yes"', "yes")],
    ],
)
def test_yaml_1_2_core_schema_ints_booleans_and_null(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_yaml_1_1_forms_in_a_suite_and_in_set_are_refused_by_type(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(TOY_SUITE.replace("steps: 1,", "steps: 010,"))
    assert resolve_suite(str(suite)).workloads[0].params.steps == 10
    refused(*cli("validate", str(suite), "--set", "workloads.0.params.steps=1:00"), "--set workloads.0.params.steps=1:00", "valid integer")
    refused(*cli("validate", str(suite), "--set", "workloads.0.params.steps=1_000"), "workloads[0].params.steps", "valid integer", "'1_000'")
    refused(*cli("validate", str(suite), "--set", "measure.count_work=on"), "measure.count_work", "valid boolean", "'on'")
    suite.write_text(TOY_SUITE.replace("count_work: false", "count_work: yes"))
    refused(*cli("validate", str(suite)), "suite.yaml:3: measure.count_work", "valid boolean", "'yes'")
    suite.write_text(TOY_SUITE.replace("steps: 1,", "steps: !!int 0b11,"))
    refused(*cli("validate", str(suite)), "suite.yaml:5: malformed YAML: cannot read '0b11' as int", "0o octal or 0x hexadecimal")


def test_dump_quotes_what_either_yaml_would_type():
    data = {"s": ["0o10", "+.5", "1e3", "yes", "010", "1_000", "on", "x", "=", ""], "n": [1, 1.5, True, None, float("inf")]}
    text = dump(data)
    assert parse_value(text) == data and yaml.safe_load(text) == data


# ---------------------------------------------------------------- `list` shows every numeric parameter's range


def test_list_rows_give_every_numeric_range():
    from profiler.suite.catalog import describe_params
    from workloads.toy import ToyWorkload

    rows = {row["name"]: row for row in describe_params(ToyWorkload.Params)}
    assert rows["steps"]["range"] == "0 to 1,000,000" and rows["steps"]["help"].endswith("Range: 0 to 1,000,000.")
    assert rows["state_bytes_per_step"]["help"].endswith("Range: 0 to 1,099,511,627,776 (2^40).")
    assert rows["first_s"]["range"] == "0 to 60" and "Range" not in rows["first_s"]["help"]  # its help states it already
    from workloads.multimodal_stream import MultimodalStream

    rows = {row["name"]: row for row in describe_params(MultimodalStream.Params)}
    assert rows["camera_resolution"]["range"] == "each 1 to 8,192"
    assert rows["context.sink_tokens"]["help"].endswith("Range: 0 to 10,000.")
    numeric = [row for row in rows.values() if re.match(r"(int|float)( \| None)?$|list\[Annotated\[(int|float)", row["type"])]
    assert numeric and all(row["range"] not in ("", "any") for row in numeric)


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
