"""The walkthrough in docs/plugins.md works exactly as written: its plugin and suite, copied into an
empty directory, validate and run next to the llm_decode baseline, and the plugin gets the rows
the page says it gets.

The page's code blocks that are files carry a title (```python title="tiny_gru.py"); the test
takes exactly one python and one yaml file block, so the page may hold other, untitled snippets.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from profiler.plugin import Declaration
from profiler.rundir import load_run
from tests.conftest import ROOT, run_cli

DOC = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```', flags=re.S | re.M)


def file_blocks(lang: str) -> list[tuple[str, str]]:
    """(file name, text) of every titled block of `lang` in docs/plugins.md."""
    return [(title, body) for found, title, body in BLOCK.findall(DOC.read_text()) if found == lang and title]


def untitled_blocks(lang: str) -> list[str]:
    return [body for found, title, body in BLOCK.findall(DOC.read_text()) if found == lang and not title]


@pytest.fixture(scope="module")
def documented(tmp_path_factory):
    """The page's plugin and suite in an empty directory, validated and run (--no-report)."""
    (plugin_file, plugin), *others = file_blocks("python")
    (suite_file, suite), *more = file_blocks("yaml")
    assert not others and not more, "one titled python block (the plugin) and one titled yaml block (the suite)"
    tmp = tmp_path_factory.mktemp("doc")
    (tmp / plugin_file).write_text(plugin)
    (tmp / suite_file).write_text(suite)
    validated = run_cli("validate", suite_file, cwd=tmp)
    assert validated.returncode == 0, validated.stderr
    result = run_cli("run", suite_file, "-o", "runs", "--no-report", cwd=tmp, timeout=240)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp / "runs").iterdir()
    return tmp, plugin_file, load_run(run_dir)


def plugin_class(tmp, plugin_file):
    spec = importlib.util.spec_from_file_location("documented_plugin", tmp / plugin_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TinyGRU


def test_the_plugin_runs_next_to_the_baseline(documented):
    tmp, plugin_file, run = documented
    assert run.baseline == "llm"
    gru = run.workloads["gru"]
    assert gru.status == "ok" and run.workloads["llm"].status == "ok"
    spans = gru.measured
    p = plugin_class(tmp, plugin_file).Params(**run.config.workloads[1].params)
    decode = spans.loc[spans["phase"] == "decode"]
    assert sorted(set(decode["position"])) == list(range(p.prompt_len + 1, p.prompt_len + p.gen_len))
    assert set(decode["state_bytes"]) == {p.batch_size * p.hidden * 4}  # constant: B * H * 4
    assert (spans.loc[spans["phase"].isin(["prefill", "decode"]), "units"] == p.batch_size).all()
    metrics = gru.summary.metrics
    assert metrics.ttft_s.count >= 3 and metrics.tpot_s.count >= 3
    assert gru.summary.facts["dtype"] == "float32" and gru.summary.facts["param_count"] > 0


def test_the_declaration_is_stored(documented):
    tmp, plugin_file, run = documented
    cls = plugin_class(tmp, plugin_file)
    stored = json.loads((run.workloads["gru"].path / "summary.json").read_text())["declaration"]
    assert Declaration.model_validate(stored) == cls.declaration(cls.Params())
    assert not [w for w in run.workloads["gru"].summary.warnings if "declaration" in w]


def test_the_rows_the_page_promises(documented):
    _, _, run = documented
    rows = {r["characteristic"]: r for r in json.loads((run.path / "differences.json").read_text()) if r["workload"] == "gru"}
    compared = ["latency_e2e", "latency_per_step", "state_per_token", "latency_growth_per_token", "intensity", "mfu", "mbu", "bound", "dominant_op"]
    for key in [*compared, "host_overhead_share"]:
        if key in ("mbu", "bound") and "above the calibrated" in str(rows[key]["why_unavailable"]):
            continue  # the GRU's working set stays in cache and beats the copy bandwidth: no MBU above 100%, with the reason
        assert rows[key]["verdict"] not in ("unavailable", "baseline unavailable", "not comparable"), rows[key]
    assert rows["latency_per_step"]["basis"] == "'decode' spans"
    assert rows["state_per_token"]["value"] == 0 and rows["state_per_token"]["verdict"] == "lower"
    assert "no KV cache to page" in rows["state_per_token"]["reading"]  # the reading for a declared constant state
    assert rows["batching_gain"]["verdict"] == "unavailable" and rows["batching_gain"]["why_unavailable"] == "no batch_size sweep"
    assert "deadline_miss_rate" not in rows and "jitter" not in rows


def test_the_entry_point_names_the_documented_class():
    (toml,) = [body for found, _, body in BLOCK.findall(DOC.read_text()) if found == "toml"]
    group, entry = toml.strip().splitlines()  # tomllib is 3.11+; the block is two lines
    assert group == '[project.entry-points."profiler.workloads"]'
    assert re.fullmatch(r'tiny_gru = "[\w.]+\.tiny_gru:TinyGRU"', entry), entry
    (plugin_file, _), *_ = file_blocks("python")
    assert plugin_file == "tiny_gru.py"


def test_the_snippets_parse():
    for body in untitled_blocks("python"):
        compile(body if not body.startswith("@") else "class C:\n" + "".join("    " + line for line in body.splitlines(True)), "<doc>", "exec")
