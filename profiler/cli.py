"""`python -m profiler run | validate | list | schema | report`.

The CLI is the composition root: it is the one place that ties the core to `reports` (after a
run, and for `report`). `validate`, `list`, `schema` and `report` never import torch. A
UserError becomes one line on stderr and exit status 2 (bad input found from the files and flags
before anything runs; nothing is run then). `run` exits 0 when every workload succeeded and 1 when
any failed, was killed or was refused in setup, after writing everything and the report, with one
line per failure. Ctrl-C (130) or SIGTERM (143) stops the current workload, marks the run
interrupted and still writes the report; a second signal exits at once. A failed write (disk
full) is one line and exit status 1.

`-o` never replaces what the profiler did not write: `report` and `compare` replace an existing file only when it
carries the profiler's marker (measure/outputs.check_output_file), and `run` makes a new run directory inside a
directory (check_output_root). Text from a suite, a plugin or a run directory is printed through errors.one_line
(plain prints) or console.plain (rich): control characters escaped, rich markup printed as written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import EXIT_USAGE, UserError, one_line

if TYPE_CHECKING:
    from .suite.resolve import ResolvedSuite


class OneLineParser(argparse.ArgumentParser):
    """argparse prints a usage block before its error; a user gets one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def device_arg(text: str) -> str:
    """auto | cpu | cuda | cuda:N (whether it exists is checked when the run starts)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not auto, cpu, cuda or cuda:N")
    return text


def repeats_arg(text: str) -> int:
    """A count of repeats: 1 to 50 (measure.repeats)."""
    if not re.fullmatch(r"\d+", text.strip()) or not 1 <= int(text) <= 50:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of repeats from 1 to 50")
    return int(text)


def path_arg(text: str) -> str:
    """A path given on the command line: never empty (an empty -o would silently mean the working directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a path")
    return text


def executor_arg(text: str) -> str:
    """local | ray | ray:ADDRESS (whether the cluster answers is checked when the run starts)."""
    if not re.fullmatch(r"local|ray(:\S+)?", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not local, ray or ray:ADDRESS")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m profiler", description="Workload-characterization profiler for ML inference.")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    run = sub.add_parser("run", help="run every workload of a suite and write a run directory and report.html")
    run.add_argument("suite", help="suite YAML file")
    run.add_argument("-o", "--output", type=path_arg, default="runs", help="directory for run directories (default: runs)")
    run.add_argument("--device", type=device_arg, default=None, help="auto | cpu | cuda | cuda:N: override the suite's device")
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a suite value, e.g. workloads.0.params.batch_size=4"
    )
    run.add_argument("--no-report", action="store_true", help="skip report.html")
    run.add_argument("--repeats", type=repeats_arg, default=None, metavar="N", help="run the whole suite N times, workloads interleaved (sets measure.repeats)")
    run.add_argument(
        "--executor",
        type=executor_arg,
        default=None,
        metavar="local|ray[:ADDRESS]",
        help="where the points run: local (default) or ray (a new local Ray cluster, or the one at ADDRESS; the suite's cpu_share and gpu_share stay)",
    )

    validate = sub.add_parser("validate", help="check a suite without running it (no torch import)")
    validate.add_argument("suite")
    validate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    validate.add_argument(
        "--probe",
        action="store_true",
        help="also reach what each workload uses outside this machine's process (an endpoint's server: its models, its key) within a few seconds",
    )

    calibrate = sub.add_parser("calibrate", help="measure this machine's peak matmul FLOP/s and copy bandwidth (cached)")
    calibrate.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N")
    calibrate.add_argument("--force", action="store_true", help="measure again even if cached")
    calibrate.add_argument("--json", action="store_true", help="print the result as JSON only")

    compare = sub.add_parser("compare", help="A/B report of two runs of the same workloads; --fail-if guards CI")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("-o", "--output", type=path_arg, default=None, help="output HTML (default: RUN_B/compare.html; a .json lies beside it)")
    compare.add_argument(
        "--fail-if",
        dest="fail_if",
        action="append",
        default=[],
        metavar="CONDITION",
        help="e.g. 'e2e_s>1.10', 'llm:tpot_s>1.05', 'phase:decode_step>1.1': exit 1 when a B/A ratio crosses it",
    )

    sub.add_parser("list", help="list discovered workloads and their parameters")
    sub.add_parser("schema", help="print the suite file's JSON Schema")

    report = sub.add_parser("report", help="rebuild report.html from a run directory")
    report.add_argument("run_dir")
    report.add_argument("-o", "--output", type=path_arg, default=None, help="output file (default: RUN_DIR/report.html)")
    return parser


def version_text() -> str:
    """The installed release and the run-directory schema it writes and reads."""
    from importlib import metadata

    from .runmodel import READABLE_VERSIONS, SCHEMA_VERSION

    try:
        release = metadata.version("ml-workload-profiler")
    except metadata.PackageNotFoundError:
        release = "unknown (not installed)"
    readable = ", ".join(map(str, READABLE_VERSIONS))
    return f"ml-workload-profiler {release} (run directories: writes schema {SCHEMA_VERSION}, reads {readable})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, argv)
    except UserError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE


def cmd_validate(args: argparse.Namespace, argv: list[str]) -> int:
    from .suite.resolve import resolve_suite

    resolved = resolve_suite(args.suite, args.overrides)
    suite = resolved.suite
    if args.probe:
        probed: set[tuple[str, str]] = set()
        for w in resolved.workloads:
            key = (w.entry.type, w.params.model_dump_json())
            if key not in probed:  # sweep points of the same server: once
                probed.add(key)
                found = probe_workload(w, args.suite)
                if found is not None:
                    print(one_line(f"probe: {w.entry.name}: {found}"))
    print(one_line(f"ok: {args.suite}: suite '{suite.name}', {len(resolved.workloads)} workload(s), baseline '{suite.baseline_name}'"))
    return 0


def probe_workload(w: Any, suite: str) -> str | None:
    """What a workload's optional `probe(params)` found (None: it has none). Raises UserError with its one line, naming
    the suite and the workload, when it raises RuntimeError or ValueError."""
    probe = getattr(w.plugin.cls, "probe", None)
    if not callable(probe):
        return None
    try:
        return str(probe(w.params))
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{suite}: workload '{w.entry.name}' ({w.entry.type}): {exc}") from None


def cmd_calibrate(args: argparse.Namespace, argv: list[str]) -> int:
    """This machine's ceilings, each with its spread (best, median, trials), whether they came from the cache and how old
    they are, and the contention during the measurement: a contended one is not cached, and a warning says to measure
    again on a quiet machine. A cached file of invalid contents is measured again (load_cached), never a traceback."""
    from .format import si
    from .measure.calibrate import load_or_measure
    from .run.device import resolve_device
    from .runmodel import RECALIBRATE, Calibration, CeilingSpread

    device = resolve_device(args.device)
    result = load_or_measure(device, force=args.force)
    warning = None
    if result.get("contention"):
        warning = (
            f"warning: calibration measured under contention ({result['contention']}): its ceilings are likely too low and were not "
            f"cached; measure again on a quiet machine: {RECALIBRATE}"
        )
    if args.json:
        if warning:
            print(warning, file=sys.stderr)
        print(json.dumps(result))
        return 0
    cal = Calibration.model_validate(result)
    key: dict[str, Any] = result["key"] if isinstance(result.get("key"), dict) else {}

    def spread(s: CeilingSpread | None, unit: str) -> str:
        if s is None:
            return ""
        settled = "stable" if s.stable else "NOT stable within its budget: measure again on an idle machine"
        return f"median {si(s.median, unit)}, {s.trials} trials, {settled}"

    machine = one_line(f"{key.get('device')}, {key.get('cpu')}, {key.get('threads')} threads, torch {key.get('torch')}, profiler {key.get('profiler')}")
    print(f"ceilings of this machine ({machine}):")
    for dtype, value in cal.matmul_flops_per_s.items():
        print(f"  peak matmul {dtype}: {si(value, 'FLOP/s')} ({spread(cal.matmul_spread.get(dtype), 'FLOP/s')})")
    print(f"  copy bandwidth: {si(cal.copy_bytes_per_s, 'B/s')} (read + write; {spread(cal.copy_spread, 'B/s')})")
    provenance = cal.model_copy(update={"contention": None}).provenance  # the contention has its own line
    print(one_line(f"  {provenance}; measured {cal.measured_utc}; cache: {result.get('cache_file', result.get('cache_error', 'not cached'))}"))
    print(one_line(f"  contention: {result.get('contention_check') or 'not recorded'}"))
    print(one_line(f"  method: {cal.method.get('matmul', 'not recorded')}; {cal.method.get('copy', 'not recorded')}"))
    if warning:
        print(warning, file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace, argv: list[str]) -> int:
    """B against A; with --fail-if, exit 1 when a condition is crossed (RULE: the whole 95% interval beyond the threshold)
    or a guarded workload has nothing to compare in B. A condition naming a workload, metric or phase neither run has is
    a UserError (exit 2), raised before anything is written."""
    from reports.compare import NOT_A_REGRESSION, RULE, build_comparison, parse_condition, write_comparison

    from .measure.outputs import check_output_file, is_profiler_compare_json, is_profiler_html
    from .rundir import load_run

    conditions = [parse_condition(c) for c in args.fail_if]
    for path in (args.run_a, args.run_b):
        if not Path(path).is_dir() or not (Path(path) / "run.json").exists():
            raise UserError(f"{path}: not a run directory (no run.json); give directories written by `python -m profiler run`")
    out = Path(args.output) if args.output else Path(args.run_b) / "compare.html"
    if out.with_suffix(".json") == out:
        raise UserError(f"-o {out}: the page and its .json table would be the same file; give the page an .html name")
    flag = "-o" if args.output else ""
    check_output_file(out, is_profiler_html, flag)  # at once, before the runs are read; write_comparison checks again
    check_output_file(out.with_suffix(".json"), is_profiler_compare_json, flag, page=out)
    runs = [load_run(path) for path in (args.run_a, args.run_b)]
    comparison = build_comparison(runs[0], runs[1], conditions)
    try:
        write_comparison(comparison, out)
    except OSError as exc:
        raise UserError(f"{out}: cannot write ({exc.strerror or exc})") from None
    for difference in comparison.differences:
        print(one_line(f"note: the runs differ: {difference} ({NOT_A_REGRESSION})"))
    for note in comparison.notes:
        print(one_line(f"note: {note}"))
    for r in comparison.table.to_dict("records"):
        if r["metric"] in ("e2e_s", "ttft_s", "tpot_s", "output_units_per_s"):
            print(one_line(f"{r['workload']:>16} {r['metric']:<20} B/A {r['ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] {r['verdict']}"))
    print(one_line(f"compare: {out}"))
    if conditions:
        print(f"rule: {RULE}")
    for e in comparison.evaluations:
        if not e.failed:
            print(one_line(f"passed {e.text}"))
    for e in comparison.inconclusive:  # measured under contention: not failed, not passed
        print(one_line(f"inconclusive {e.text}"), file=sys.stderr)
    for e in comparison.evaluations:
        if e.failed:
            print(one_line(f"FAILED {e.text}"), file=sys.stderr)
    return 1 if comparison.failed else 0


def cmd_list(args: argparse.Namespace, argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from .console import plain
    from .suite.catalog import catalog, describe_declaration, describe_params

    def flat(text: str) -> str:  # a plugin's multi-line help or docstring on one line, then made safe
        return plain(" ".join(str(text).split()))

    console = Console(emoji=False)
    for name, plugin, error in catalog():
        if plugin is None:
            console.print(f"[bold]{plain(name)}[/bold]  [red]broken[/red]: {plain(error)}", markup=True, highlight=False)
            continue
        doc = (plugin.cls.__doc__ or "").strip().splitlines()
        caption = f"{plain(plugin.source)}\n{plain(describe_declaration(plugin))}"
        title = plain(f"{name} — {doc[0] if doc else plugin.cls.__name__}")
        table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
        for col in ("param", "type", "default", "help"):
            table.add_column(col, overflow="fold")
        for row in describe_params(plugin.cls.Params):
            table.add_row(*(flat(row[k]) for k in ("name", "type", "default", "help")))
        console.print(table)
    return 0


def cmd_schema(args: argparse.Namespace, argv: list[str]) -> int:
    from .suite.catalog import suite_schema

    print(json.dumps(suite_schema(), indent=2))
    return 0


def cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    from reports.html_report import write_report

    from .measure.outputs import check_output_file, is_profiler_html

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a directory; give a run directory written by `python -m profiler run`")
    if not any((run_dir / f).exists() for f in ("run.json", "env.json")):
        raise UserError(f"{run_dir}: no run.json or env.json; this is not a run directory")
    out = Path(args.output) if args.output else run_dir / "report.html"
    check_output_file(out, is_profiler_html, "-o" if args.output else "")  # write_report checks again, before and after building
    try:
        problems = write_report(run_dir, out).problems
    except OSError as exc:
        raise UserError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    for p in problems:
        print(one_line(f"warning: {p}"), file=sys.stderr)
    print(one_line(f"report: {out}"))
    return 0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM to the parent: stop the current child, keep everything, write the report."""


_SIGNAL_RECEIVED: list[int] = []
_AT_ONCE: list[Any] = []
"""What a second signal does before leaving at once (the run's record marks itself interrupted and says so)."""


SAME_INTERRUPTION_S = 0.2
"""A second signal this soon after the first is the same interruption: `timeout` and a terminal's Ctrl-C signal the
process and its whole group, so the parent can receive one signal twice within milliseconds."""


def _on_signal(signum: int, frame: object) -> None:
    _SIGNAL_RECEIVED.append(signum)
    first = time.monotonic()

    def again(*_: object) -> None:
        # a second Ctrl-C or SIGTERM a moment later leaves at once; every file on disk is already complete (atomic writes)
        if time.monotonic() - first >= SAME_INTERRUPTION_S:
            for leave in _AT_ONCE:
                try:
                    leave()
                except Exception:  # leaving at once must not fail: run.json then says running, report says cut off
                    pass
            os._exit(128 + signum)

    signal.signal(signal.SIGINT, again)
    signal.signal(signal.SIGTERM, again)
    raise Interrupted()


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        return _run(args, argv)
    except Interrupted:
        print("interrupted before the run started; nothing was measured", file=sys.stderr)
        return 128 + (_SIGNAL_RECEIVED[0] if _SIGNAL_RECEIVED else signal.SIGINT)
    except OSError as exc:
        from .measure.store import NotReplaceableError

        what = "remove it" if isinstance(exc, NotReplaceableError) else "free space"
        print(
            one_line(
                f"error: writing the run failed: {exc.strerror or exc} ({getattr(exc, 'filename', None) or 'run directory'}); "
                f"every file already written is complete; {what} or choose another -o and run again"
            ),
            file=sys.stderr,
        )
        return 1


def with_executor(resolved: ResolvedSuite, text: str) -> ResolvedSuite:
    """The suite with `--executor TEXT` in place of its executor's kind and address; its shares and cluster size stay
    (local: the defaults). UserError when the combination is invalid."""
    from pydantic import ValidationError

    from .suite.config import ExecutorConfig

    kind, _, address = text.partition(":")
    try:
        if kind == "local":
            executor = ExecutorConfig.model_validate({})
        else:
            executor = ExecutorConfig.model_validate({**resolved.suite.executor.model_dump(), "kind": "ray", "address": address or None})
    except ValidationError as exc:
        raise UserError(f"--executor {text}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return dataclasses.replace(resolved, suite=resolved.suite.model_copy(update={"executor": executor}))


def check_output_root(out: Path) -> None:
    """-o OUT of `run` can hold a new run directory (nothing is created here): OUT is a directory, or a symlink to one
    (an output root on a bigger disk; the run directory is made inside it and nothing is replaced), or does not exist
    and its nearest existing ancestor is a writable directory. A regular file, FIFO, device, socket or dangling symlink
    is a UserError in one line."""
    from .files import file_kind

    try:
        mode = os.stat(out).st_mode  # follows a symlink: what matters is where the run directory would be made
    except (FileNotFoundError, NotADirectoryError):
        if os.path.lexists(out):
            raise UserError(f"-o {out}: is a symlink to nothing; give a directory for run directories with -o") from None
        _check_ancestor(out)
        return
    except OSError as exc:
        raise UserError(f"-o {out}: cannot be used ({exc.strerror or exc}); give a writable directory for run directories with -o") from None
    if not stat.S_ISDIR(mode):
        raise UserError(f"-o {out}: is a {file_kind(mode)}, not a directory; give a directory for run directories with -o (it is never replaced)")
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"-o {out}: cannot create the run directory ({out} is not writable); choose a writable directory with -o")


def _check_ancestor(out: Path) -> None:
    """The nearest existing ancestor of a missing -o OUT is a writable directory (OUT can be made there)."""
    existing = out.absolute()
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"-o {out}: cannot create the run directory ({existing} is not a directory); choose a writable directory with -o")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"-o {out}: cannot create the run directory ({existing} is not writable); choose a writable directory with -o")


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from rich.console import Console

    from .console import ProgressListener, plain
    from .run.device import resolve_device
    from .run.runner import SuiteRunner
    from .run.supervisor import SilentListener
    from .suite.resolve import resolve_suite

    overrides = [
        *args.overrides,
        *([f"measure.repeats={args.repeats}"] if args.repeats is not None else []),
    ]
    resolved = resolve_suite(args.suite, overrides)
    if args.executor is not None:
        resolved = with_executor(resolved, args.executor)
    check_output_root(Path(args.output))  # before calibration or a cluster starts: a wrong -o is one line at once
    executor = None
    if resolved.suite.executor.kind == "ray":
        from .run.ray_executor import RayExecutor

        executor = RayExecutor(resolved.suite.executor, resolved.suite.measure, SilentListener())
        device = executor.resolve_device(args.device or resolved.suite.device)
    else:
        device = resolve_device(args.device or resolved.suite.device)
    runner = SuiteRunner(resolved, args.output, device, ["python", "-m", "profiler", *argv], executor=executor)
    run_dir = runner.prepare()
    _AT_ONCE[:] = [lambda: _stop_at_once(runner, run_dir)]
    console = Console(stderr=False, emoji=False)  # a name like ":fire:" prints as written
    console.print(plain(f"run directory: {run_dir}  (device: {device}; executor: {resolved.suite.executor.describe()})"), highlight=False)
    interrupted = False
    failure = None
    with ProgressListener(console) as listener:
        runner.listener = listener
        try:
            runner.run()
        except KeyboardInterrupt:
            interrupted = True
        except OSError:
            raise  # a full disk or an unwritable directory: cmd_run says so in one line
        except Exception as exc:  # a profiler bug: keep what was measured, report it, say so in one line
            failure = one_line(
                f"error: the profiler itself failed ({type(exc).__name__}: {str(exc)[:200]}); this is a bug: the traceback is in "
                f"{run_dir / 'run.json'}; everything measured before it is kept and reported"
            )
    try:
        code = _close_run(args, run_dir, resolved.suite.seed, console, interrupted)
    except Interrupted:  # the run is settled on disk (run.json says how it ended): only the report is missing
        print(
            one_line(
                f"interrupted while the report was written: the run itself is kept in {run_dir} (its run.json says how it ended); "
                f"write its report with: python -m profiler report {run_dir}"
            ),
            file=sys.stderr,
        )
        return 128 + (_SIGNAL_RECEIVED[-1] if _SIGNAL_RECEIVED else signal.SIGINT)
    if failure:
        print(failure, file=sys.stderr)
        return code if code is not None else 1
    return code if code is not None else 0


def _stop_at_once(runner: Any, run_dir: Path) -> None:
    runner.record.stopped_at_once()
    print(
        one_line(
            f"interrupted again: stopped at once; {run_dir} is marked interrupted and keeps what was written (the spans of "
            f"every iteration that ended); report it with: python -m profiler report {run_dir}"
        ),
        file=sys.stderr,
    )


def _close_run(args: argparse.Namespace, run_dir: Path, seed: int, console: Any, interrupted: bool) -> int | None:
    """The summary table, the report (or differences.json) and the closing lines of a run; its exit status, or None
    when the caller decides (a profiler failure)."""
    from .console import differences_table, plain, summary_notes, summary_table
    from .rundir import load_run

    run = load_run(run_dir)
    summaries = [w.summary for w in run.workloads.values()]
    console.print(summary_table(summaries))
    for note in summary_notes(summaries):
        console.print(note, highlight=False)
    if args.no_report:
        from reports.differences import differences
        from reports.html_report import write_differences_quietly

        diffs = differences(run, seed=seed)
        unwritten = write_differences_quietly(run, diffs)
    else:
        from reports.html_report import write_report

        written = write_report(run_dir, run_dir / "report.html")
        diffs, unwritten = written.differences, written.unwritten
    for p in unwritten:
        print(one_line(f"warning: {p}"), file=sys.stderr)
    if not diffs.empty:
        console.print(differences_table(diffs, run.baseline or "?"))
    if not args.no_report:
        console.print(plain(f"report: {run_dir / 'report.html'}"), highlight=False)
    console.print(plain(f"run: {run_dir}"), highlight=False)
    if interrupted:
        console.print("interrupted: the run directory is marked interrupted; what was measured is kept")
        return 128 + (_SIGNAL_RECEIVED[0] if _SIGNAL_RECEIVED else signal.SIGINT)
    failed = [w for w in run.workloads.values() if w.status != "ok"]
    for w in failed:  # one line each on stderr: a CI log shows why the run exits 1
        where = f" in {w.summary.error.phase}: {w.summary.error.reason}" if w.summary.error else ""
        output = f"; its stderr: {w.path / 'stderr.log'}" if (w.path / "stderr.log").is_file() else ""
        print(one_line(f"failed: {w.name}: {w.status}{where} (everything measured is kept: {w.path}{output})"), file=sys.stderr)
    return 1 if failed else None


COMMANDS = {
    "compare": cmd_compare,
    "calibrate": cmd_calibrate,
    "run": cmd_run,
    "validate": cmd_validate,
    "list": cmd_list,
    "schema": cmd_schema,
    "report": cmd_report,
}
