"""User text reaches the terminal with control characters escaped and rich markup printed as written.

A workload name, a plugin's error message, warning and output unit, a suite name and a trace path carry an escape
sequence, a newline that would forge a `failed:` line, a carriage return, rich markup and a bidi override (U+202E).
Everything the CLI prints (stdout and stderr, plain prints and rich tables, progress and notes) must contain no raw
control character but the newlines the profiler emits itself, no forged line, and the markup as written. One real run
of a tiny plugin (one iteration) covers `run`, then `report` and `compare` of that run, in-process.
"""

from __future__ import annotations

import pytest

from tests.conftest import cli_in_process

HOSTILE = "\x1b[31m[red]x[/red]\r\u202e\n failed: forged"
"""Every kind of hostile text at once: ESC sequence, rich markup, carriage return, bidi override, a forged line."""
PLUGIN = '''
from profiler.plugin import Declaration
from profiler.plugin import Params as BaseParams

HOSTILE = {hostile!r}


class Hostile:
    """Delivers one unit, warns and fails in teardown, every text hostile."""

    class Params(BaseParams):
        tag: str = "t"

    @classmethod
    def declaration(cls, params):
        return Declaration(output_unit="u\\x1b[1m[bold]b")

    def __init__(self, params):
        self.params = params

    def setup(self, ctx):
        ctx.warn("warned" + HOSTILE)

    def run_once(self, mark):
        with mark("first", units=1):
            pass

    def teardown(self):
        raise RuntimeError("boom" + HOSTILE)
'''
SUITE = """\
name: "s\\e[31m[bold]\\u202e"
device: cpu
measure: {warmup_iters: 0, min_iters: 1, min_seconds: 0, max_seconds: 5, count_work: false, trace_ops: false}
workloads:
  - name: "w\\e[31m[red]x[/red]\\r\\u202e\\n failed: forged"
    type: hostile_plugin:Hostile
    params: {tag: "p\\e[31m\\n failed: param"}
"""


cli = cli_in_process


def assert_safe(text: str) -> None:
    """No raw control character except newline, no bidi override, no forged line, no markup swallowed."""
    raw = sorted({repr(ch) for ch in text if ch != "\n" and not ch.isprintable()})
    assert not raw, (raw, text)
    for line in text.splitlines():
        assert not line.lstrip().startswith(("failed: forged", "failed: param")), (line, text)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One run of the hostile plugin: (exit status, stdout, stderr, run directory)."""
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "hostile_plugin.py").write_text(PLUGIN.format(hostile=HOSTILE))
    (tmp / "suite.yaml").write_text(SUITE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", "200")
        code, out, err = cli("run", str(tmp / "suite.yaml"), "-o", str(tmp / "runs"), "--device", "cpu")
    (run_dir,) = (tmp / "runs").iterdir()
    return code, out, err, run_dir


def test_run_prints_hostile_names_and_messages_escaped(hostile_run):
    code, out, err, _ = hostile_run
    assert code == 1, (out, err)  # the workload failed in teardown
    assert_safe(out)
    assert_safe(err)
    escaped = "w\\x1b[31m[red]x[/red]\\r\\u202e\\n failed: forged"
    assert escaped in out  # progress, table and notes: the name as written, markup included
    assert "warned\\x1b[31m[red]x[/red]\\r\\u202e\\n failed: forged" in out  # the plugin's warning
    assert "boom\\x1b[31m[red]x[/red]" in out  # the plugin's error, under the table
    assert "u\\x1b[1m[bold]b/s" in out  # its output unit
    failed = [line for line in err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and escaped in failed[0], err  # one real failure line, and only one


def test_report_and_compare_print_hostile_text_escaped(hostile_run, tmp_path):
    *_, run_dir = hostile_run
    code, out, err = cli("report", str(run_dir), "-o", str(tmp_path / "r.html"))
    assert code == 0, err
    assert_safe(out + err)
    code, out, err = cli("compare", str(run_dir), str(run_dir), "-o", str(tmp_path / "c.html"), "--fail-if", "e2e_s>1.5")
    assert code in (0, 1), err
    assert_safe(out + err)
    assert "compare: " in out


def test_validate_prints_a_hostile_suite_name_escaped(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text('name: "s\\e[31m[bold]\\r\\n failed: forged"\nworkloads:\n  - {name: "a\\u202e", type: toy}\n')
    code, out, err = cli("validate", str(suite))
    assert code == 0, err
    assert_safe(out)
    assert out.count("\n") == 1 and "s\\x1b[31m[bold]\\r\\n failed: forged" in out


def test_bad_params_value_and_trace_path_are_one_escaped_line(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text('name: s\nworkloads:\n  - {name: a, type: toy, params: {steps: "x\\e[31m\\n failed: forged"}}\n')
    code, out, err = cli("validate", str(suite))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert_safe(err)
    load = '{pattern: trace, trace: "t\\e[31m\\u202e\\n failed: forged.csv", requests: 4}'
    suite.write_text(f"name: s\nworkloads:\n  - {{name: a, type: toy_serve, load: {load}}}\n")
    code, out, err = cli("validate", str(suite))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "t\\x1b[31m\\u202e\\n failed: forged.csv" in err  # the trace path, escaped
    assert_safe(err)


def test_list_prints_a_broken_plugins_name_and_error_escaped_mocked_catalog(monkeypatch):
    """Mocks profiler.suite.catalog.catalog: a broken entry point whose name and error are hostile."""
    import profiler.suite.catalog as catalog

    monkeypatch.setattr(catalog, "catalog", lambda: [("n" + HOSTILE, None, "e" + HOSTILE)])
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = cli("list")
    assert code == 0, err
    assert_safe(out)
    assert out.count("\n") == 1 and "[red]x[/red]" in out and "broken" in out


def test_console_plain_escapes_controls_and_markup():
    from rich.console import Console

    from profiler.console import plain

    console = Console(width=200, record=True, force_terminal=True, color_system=None, emoji=False)
    console.print(f"[bold]{plain('a[bold]b[/bold]' + HOSTILE)}[/bold] \\[x]")
    text = console.export_text()
    assert "a[bold]b[/bold]\\x1b[31m[red]x[/red]\\r\\u202e\\n failed: forged" in text
    assert text.count("\n") == 1


def test_a_run_directory_path_with_a_newline_is_one_error_line(tmp_path):
    code, out, err = cli("report", str(tmp_path / "run\n failed: forged"))
    assert code == 2 and err.count("\n") == 1, err
    assert_safe(err)
