"""Every kind of bad input gives one line naming what and where, exit status 2, no traceback,
and writes nothing outside a run directory."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ROOT, assert_one_line_error, run_cli

GOOD = """\
name: s
measure: {warmup_iters: 0, min_iters: 1, min_seconds: 0, max_seconds: 5}
workloads:
  - name: llm
    type: llm_decode
    params:
      preset: llama-tiny
      batch_size: 1
"""


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_good_suite_validates(write_suite):
    result = run_cli("validate", write_suite(GOOD))
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout


def test_malformed_yaml_names_file_and_line(write_suite):
    path = write_suite("name: s\nworkloads:\n  - name: [unclosed\n    type: toy\n")
    assert_one_line_error(run_cli("validate", path), f"{path}:", "malformed YAML")


def test_unknown_top_level_key_suggests_closest(write_suite):
    path = write_suite(GOOD + "worklod: []\n")
    line = assert_one_line_error(run_cli("validate", path), "unknown top-level key 'worklod'", "did you mean 'workloads'")
    assert f"{path}:9:" in line


def test_unknown_workload_type_lists_known(write_suite):
    path = write_suite(GOOD.replace("type: llm_decode", "type: llm_decod"))
    assert_one_line_error(run_cli("validate", path), f"{path}:5:", "unknown workload type 'llm_decod'", "did you mean 'llm_decode'", "toy")


def test_wrong_type_names_key_path_and_line(write_suite):
    path = write_suite(GOOD.replace("batch_size: 1", "batch_size: four"))
    assert_one_line_error(run_cli("validate", path), f"{path}:8:", "workloads[0].params.batch_size", "valid integer")


def test_string_number_is_a_type_error_in_strict_mode(write_suite):
    path = write_suite(GOOD.replace("batch_size: 1", "batch_size: '4'"))
    assert_one_line_error(run_cli("validate", path), "workloads[0].params.batch_size")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_zero_or_negative_size(write_suite, value):
    path = write_suite(GOOD.replace("batch_size: 1", f"batch_size: {value}"))
    assert_one_line_error(run_cli("validate", path), f"{path}:8:", "batch_size", "greater than or equal to 1")


def test_unknown_param_suggests_closest(write_suite):
    path = write_suite(GOOD.replace("batch_size: 1", "batch_sise: 1"))
    assert_one_line_error(run_cli("validate", path), f"{path}:8:", "unknown key 'batch_sise'", "did you mean 'batch_size'")


def test_bad_preset_suggests_closest(write_suite):
    path = write_suite(GOOD.replace("preset: llama-tiny", "preset: llama-3.1-8B"))
    assert_one_line_error(run_cli("validate", path), f"{path}:7:", "did you mean 'llama-3.1-8b'")


def test_max_seconds_below_min_seconds(write_suite):
    path = write_suite(GOOD.replace("min_seconds: 0, max_seconds: 5", "min_seconds: 10, max_seconds: 5"))
    assert_one_line_error(run_cli("validate", path), f"{path}:2:", "max_seconds")


def test_missing_pretrained_directory(write_suite, tmp_path):
    path = write_suite(GOOD.replace("preset: llama-tiny", f"pretrained: {tmp_path / 'nope'}"))
    assert_one_line_error(run_cli("validate", path), f"{path}:7:", "pretrained directory", "does not exist")


def test_baseline_must_exist(write_suite):
    path = write_suite("baseline: lm\n" + GOOD)
    assert_one_line_error(run_cli("validate", path), f"{path}:", "baseline 'lm'", "did you mean 'llm'")


def test_missing_suite_file(tmp_path):
    assert_one_line_error(run_cli("validate", tmp_path / "missing.yaml"), "missing.yaml", "no such file")


def test_unreadable_suite_file(write_suite):
    path = write_suite(GOOD)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: use a directory instead
            assert_one_line_error(run_cli("validate", path.parent), "is a directory")
        else:
            assert_one_line_error(run_cli("validate", path), "permission denied")
    finally:
        path.chmod(0o644)


def test_non_utf8_suite(write_suite):
    path = write_suite("")
    path.write_bytes(b"name: \xff\xfe\n")
    assert_one_line_error(run_cli("validate", path), "not UTF-8")


def test_set_on_missing_path(write_suite):
    path = write_suite(GOOD)
    assert_one_line_error(run_cli("validate", path, "--set", "workloads.3.params.batch_size=2"), "--set workloads.3.params.batch_size=2", "0..0")
    assert_one_line_error(run_cli("validate", path, "--set", "measur.min_iters=2"), "--set measur.min_iters=2", "'measur'", "did you mean 'measure'")


def test_set_creates_a_block_the_file_leaves_out(write_suite):
    path = write_suite("name: s\nworkloads:\n  - {name: t, type: toy}\n")
    assert run_cli("validate", path, "--set", "measure.min_seconds=0", "--set", "workloads.0.params.steps=2").returncode == 0


def test_set_unknown_final_key_points_at_the_flag(write_suite):
    path = write_suite(GOOD)
    assert_one_line_error(
        run_cli("validate", path, "--set", "workloads.0.params.batch_sz=4"), "--set workloads.0.params.batch_sz=4", "did you mean 'batch_size'"
    )


def test_set_overrides_and_validates_value(write_suite):
    path = write_suite(GOOD)
    assert run_cli("validate", path, "--set", "workloads.0.params.gen_len=8").returncode == 0
    assert_one_line_error(
        run_cli("validate", path, "--set", "workloads.0.params.gen_len=0"), "--set workloads.0.params.gen_len=0", "greater than or equal to 1"
    )


def test_device_cuda_without_cuda(write_suite, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = write_suite(GOOD)
    out = tmp_path / "runs"
    assert_one_line_error(run_cli("run", path, "--device", "cuda", "-o", out), "--device cuda", "CUDA is not available")
    assert not out.exists()


def test_unwritable_output_directory(write_suite, tmp_path):
    path = write_suite(GOOD)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(run_cli("run", path, "--device", "cpu", "-o", blocker / "runs"), "cannot create the run directory")


def test_errors_write_nothing(write_suite, tmp_path):
    path = write_suite(GOOD.replace("batch_size: 1", "batch_size: 0"))
    before = files_under(tmp_path)
    result = run_cli("run", path, "-o", tmp_path / "runs", cwd=tmp_path)
    assert_one_line_error(result, "batch_size")
    assert files_under(tmp_path) == before


def test_suite_must_be_a_mapping(write_suite):
    assert_one_line_error(run_cli("validate", write_suite("- 1\n- 2\n")), "must be a mapping")
    assert_one_line_error(run_cli("validate", write_suite("", name="empty.yaml")), "empty")


def test_yaml_tags_never_run_code(write_suite, tmp_path):
    marker = tmp_path / "pwned"
    path = write_suite(f"name: !!python/object/apply:os.system ['touch {marker}']\nworkloads: []\n")
    assert_one_line_error(run_cli("validate", path), "malformed YAML")
    assert not marker.exists()


def test_validate_list_schema_report_do_not_import_torch(write_suite):
    path = write_suite(GOOD)
    code = (
        "import sys, contextlib, io\n"
        "from profiler.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['validate', {str(path)!r}]) == 0\n"
        "    assert main(['list']) == 0\n"
        "    assert main(['schema']) == 0\n"
        "    import reports.html_report\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'transformers', 'pynvml'))))\n"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "size, expected",
    [
        ("{fixed: 0}", "load.sizes.input.fixed: Input should be greater than or equal to 1 (got 0)"),
        ("from_trac", "load.sizes.input: Input should be 'from_trace' (got 'from_trac') (did you mean 'from_trace'?)"),
    ],
)
def test_a_bad_size_is_named_by_the_branch_of_its_type(write_suite, size, expected):
    """A size is a distribution or the keyword from_trace (a union): the error names the key path without
    pydantic's branch tags, from the branch the value's type chose, and counts no branch as a second error."""
    suite = GOOD.replace(
        "type: llm_decode", "type: llm_decode\n    load: {pattern: poisson, rate: 1, requests: 3, sizes: {input: " + size + ", output: {fixed: 2}}}"
    )
    result = run_cli("validate", write_suite(suite))
    assert_one_line_error(result, expected)
    assert "function-after" not in result.stderr and "literal[" not in result.stderr and "more error" not in result.stderr
