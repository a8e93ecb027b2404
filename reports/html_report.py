"""report.html: one self-contained page per run (plotly.js inlined once, opens offline).

Sections: warnings and failures first, then per-workload summary tables, figures, facts,
the environment and the definitions. Every string that came from the user's config or the
machine is escaped.
"""

from __future__ import annotations

import html
import json
import socket
from pathlib import Path
from typing import Any

import plotly.io as pio
import psutil
from plotly.offline import get_plotlyjs

from profiler.analysis import position_table, request_metrics
from profiler.rundir import Run, load_run
from profiler.store import atomic_write_text, read_json

from . import figures
from .definitions import DEFINITIONS
from .differences import Char, differences, fmt, run_characteristics

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 1.2rem 3rem;color:#1d2327;line-height:1.45}
h1{margin-top:1.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;vertical-align:top}
th{background:#f4f5f7}td.l,th.l{text-align:left}.warn{background:#fff6e0;border-left:4px solid #f0a500;padding:.5rem .8rem;margin:.4rem 0}
.fail{background:#fdecec;border-left:4px solid #d33;padding:.5rem .8rem;margin:.4rem 0}.muted{color:#666;font-size:.85rem}
nav ul{columns:2}code{background:#f4f5f7;padding:0 .2rem}.na{color:#999}
"""

METRIC_ROWS = [("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"), ("e2e_s", "E2E")]


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def write_report(run_dir: str | Path, out: str | Path) -> list[str]:
    """Build the report and write differences.csv/json into the run directory; return the
    problems found while reading the run (also shown in the report)."""
    run = load_run(run_dir)
    chars = run_characteristics(run)
    diffs = differences(run, seed=int((run.config or {}).get("seed", 0) or 0), chars=chars)
    write_differences(run.path, diffs)
    page = build_html(run, diffs, chars)
    atomic_write_text(out, page)
    return run.all_problems()


def write_differences(run_dir: Path, diffs: Any) -> None:
    atomic_write_text(run_dir / "differences.csv", diffs.to_csv(index=False))
    atomic_write_text(run_dir / "differences.json", diffs.to_json(orient="records", indent=1))


def build_html(run: Run, diffs: Any = None, chars: dict[str, dict[str, Char]] | None = None) -> str:
    chars = run_characteristics(run) if chars is None else chars
    if diffs is None:
        diffs = differences(run, chars=chars)
    sections: list[tuple[str, str, str]] = []  # (anchor, title, html)
    sections.append(("overview", "Overview", _overview_section(run, chars)))
    sections.append(("differences", f"Differences from the baseline ({run.info.get('baseline', '?')})", _differences_section(diffs)))
    sections.append(("summary", "Latency summary", _summary_section(run)))
    fig_html = _figures_section(run)
    sections.append(("work", "Work, intensity and ceilings", _work_section(run)))
    sections.append(("energy", "Energy", _energy_section(run)))
    sections.append(("opmix", "Operator mix", _opmix_section(run)))
    sections.append(("scaling", "Scaling", _scaling_section(run)))
    sections.append(("figures", "Figures", fig_html))
    for name, w in run.workloads.items():
        sections.append((f"w-{_anchor(name)}", f"Workload: {name}", _workload_section(name, w)))
    sections.append(("environment", "Environment", _environment_section(run)))
    sections.append(("definitions", "Definitions", _definitions_section()))
    problems = run.all_problems()  # read after sections: figures load the tables
    title = f"Profiler report — {run.info.get('suite', run.path.name)}"
    toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{esc(t)}</h2>{h}</section>' for a, t, h in sections)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{CSS}</style><script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
        f"<h1>{esc(title)}</h1>{_header(run)}{_alerts(run, problems)}"
        f"<nav><h2>Contents</h2><ul>{toc}</ul></nav>{body}</body></html>"
    )


def _anchor(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)[:60] or "w"


def _header(run: Run) -> str:
    info = run.info
    env = run.env
    gpu = ", ".join(g.get("name", "?") for g in env.get("gpus", [])) or "none"
    items = [
        ("suite", info.get("suite")), ("baseline", info.get("baseline")), ("device", info.get("device")),
        ("status", info.get("status")), ("started (UTC)", info.get("started_utc")), ("finished (UTC)", info.get("finished_utc")),
        ("CPU", env.get("cpu_model")), ("GPU", gpu), ("run directory", str(run.path)),
    ]
    return "<table>" + "".join(f'<tr><th class="l">{esc(k)}</th><td class="l">{esc(v if v is not None else "—")}</td></tr>' for k, v in items) + "</table>"


def _alerts(run: Run, problems: list[str]) -> str:
    out = []
    if run.info.get("status") == "running":
        out.append(f'<div class="fail">{esc(running_note(run.info))}</div>')
    elif run.info.get("status") not in (None, "complete"):
        why = (run.info.get("error") or {}).get("reason")
        out.append(f'<div class="fail">The run is <b>{esc(run.info.get("status"))}</b>{": " + esc(why) if why else ""}. Not every workload finished; '
                   'what was measured is shown.</div>')
    for name, w in run.workloads.items():
        err = w.summary.get("error") or (w.error and {"phase": w.error.get("phase"), "reason": w.error.get("reason")})
        if err:
            out.append(f'<div class="fail"><b>{esc(name)}</b> failed in phase <code>{esc(err.get("phase"))}</code>: {esc(err.get("reason"))}'
                       f' <span class="muted">(traceback in {esc(w.path.name)}/error.json)</span></div>')
        for warning in w.summary.get("warnings", []):
            out.append(f'<div class="warn"><b>{esc(name)}</b>: {esc(warning)}</div>')
        for p in w.summary.get("problems", []):
            out.append(f'<div class="warn"><b>{esc(name)}</b>: {esc(p)}</div>')
    for p in problems:
        out.append(f'<div class="warn">could not read {esc(p)}</div>')
    return "".join(out)


def running_note(info: dict[str, Any]) -> str:
    """What a run.json still saying `running` means: in progress, or a profiler that died."""
    pid, host = info.get("profiler_pid"), info.get("host")
    if pid is None or host != socket.gethostname():
        return f"The run says running: it is in progress{f' on {host}' if host else ''}, or its profiler process died without closing it."
    try:
        alive = "profiler" in " ".join(psutil.Process(int(pid)).cmdline())  # a reused pid runs something else
    except (psutil.Error, ValueError):
        alive = False
    if alive:
        return f"The run is in progress (profiler pid {pid}): this report shows what was measured so far."
    return (f"The run never finished: its profiler process (pid {pid}) is gone without closing it (killed, e.g. by SIGKILL or "
            "the out-of-memory killer, or the machine stopped). What was measured is shown.")


VERDICT_STYLE = {"higher": "#0b5394", "lower": "#0b5394", "differs": "#0b5394", "present": "#0b5394", "no difference": "#777", "same": "#777"}


def _differences_section(diffs: Any) -> str:
    if diffs is None or diffs.empty:
        return '<p class="na">No differences: the baseline did not run, or no other workload succeeded.</p>'
    head = ('<tr><th class="l">workload</th><th class="l">characteristic</th><th>baseline</th><th>value</th><th>ratio [95% CI]</th>'
            '<th class="l">verdict</th><th class="l">reading · lever · source</th></tr>')
    rows = []
    for r in diffs.to_dict("records"):
        ratio = r.get("ratio")
        if isinstance(ratio, float) and ratio == ratio:
            lo, hi = r.get("ci_low"), r.get("ci_high")
            ci = f" [{lo:.3g}, {hi:.3g}]" if isinstance(lo, float) and lo == lo and isinstance(hi, float) and hi == hi and lo != hi else ""
            ratio_text = "≈0×" if abs(ratio) < 1e-6 else f"{ratio:.3g}×{ci}"
        else:
            ratio_text = "—"
        color = VERDICT_STYLE.get(r["verdict"], "#999")
        extra = "".join(f'<br><span class="muted">{label}: {esc(r[k])}</span>' for k, label in (("lever", "lever"), ("source", "source")) if r.get(k))
        rows.append(f'<tr><td class="l">{esc(r["workload"])}</td><td class="l">{esc(r["label"])}</td><td>{esc(fmt(r["baseline_value"], r["unit"]))}</td>'
                    f'<td>{esc(fmt(r["value"], r["unit"]))}</td><td>{esc(ratio_text)}</td>'
                    f'<td class="l" style="color:{color}"><b>{esc(r["verdict"])}</b></td><td class="l">{esc(r["reading"])}{extra}</td></tr>')
    return (f"<table>{head}{''.join(rows)}</table><p class=\"muted\">Ratios are workload ÷ baseline with 95% bootstrap intervals; a "
            "difference whose interval includes 1 is shown as \"no difference\", never as a finding. Counted values (intensity, shares) are "
            "exact and compared with a ±10% band. Readings come from reports/rules.yaml; also in differences.csv and differences.json.</p>")


def _overview_section(run: Run, chars_by_workload: dict[str, dict[str, Char]]) -> str:
    head = ('<tr><th class="l">workload</th><th class="l">status</th><th class="l">headline (domain units)</th><th class="l">bound class (main phase)</th>'
            '<th>state growth</th><th>energy per output</th></tr>')
    rows = []
    for name, w in run.workloads.items():
        s = w.summary
        m = s.get("metrics") or {}
        unit = (s.get("facts") or {}).get("output_unit", "unit")
        if "deadline_miss_rate" in m:
            headline = (f"control rate {m['control_rate_hz']['median']:.1f} Hz; deadline misses {m['deadline_miss_rate']['mean']:.1%}; "
                        f"inference {_fmt_ms((m.get('obs_to_output_s') or {}).get('median'))} ms")
        elif "tpot_s" in m:
            headline = f"TTFT {_fmt_ms(m['ttft_s']['median'])} ms; TPOT {_fmt_ms(m['tpot_s']['median'])} ms; {m['output_units_per_s']['median']:.1f} {unit}/s"
        elif "e2e_s" in m:
            step = ((s.get("phases") or {}).get("denoise_step") or {}).get("latency_s", {}).get("median")
            headline = f"time to {unit} {_fmt_ms(m['e2e_s']['median'])} ms" + (f"; per step {_fmt_ms(step)} ms" if step else "") + f"; {m['output_units_per_s']['median']:.2f} {unit}/s"
        else:
            headline = "no measured iterations"
        chars = chars_by_workload.get(name, {})
        bound = chars["bound"].value if chars else None
        phase = chars["latency_per_step"].extra.get("phase") if chars else None
        state = chars["state_per_token"] if chars else None
        energy = (s.get("energy") or {}).get("j_per_output_unit")
        rows.append(f'<tr><td class="l">{esc(name)}</td><td class="l">{esc(w.status)}</td><td class="l">{esc(headline)}</td>'
                    f'<td class="l">{esc(bound or "—")}{f" ({esc(phase)})" if phase else ""}</td><td>{esc(fmt(state.value, state.unit) if state else "—")}</td>'
                    f'<td>{esc(f"{energy:.4g} J/{unit}") if energy is not None else "<span class=na>unavailable</span>"}</td></tr>')
    return f"<table>{head}{''.join(rows)}</table><p class=\"muted\">Random weights from published architectures; performance does not depend on weight values.</p>"


def _fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1e3:.3f}"


def _summary_section(run: Run) -> str:
    head = "<tr><th class=\"l\">workload</th><th class=\"l\">status</th><th>iters</th>" + "".join(
        f"<th>{label} median ms [95% CI]</th><th>p90</th><th>p99</th>" for _, label in METRIC_ROWS) + "<th>output/s (median)</th></tr>"
    rows = []
    for name, w in run.workloads.items():
        s = w.summary
        m = s.get("metrics", {})
        unavailable = s.get("unavailable", {})
        cells = [f'<td class="l">{esc(name)}</td><td class="l">{esc(s.get("status"))}</td><td>{esc((s.get("loop") or {}).get("measured_iters", "—"))}</td>']
        for key, _ in METRIC_ROWS:
            st = m.get(key)
            if st:
                lo, hi = st["ci95_median"]
                cells.append(f"<td>{_fmt_ms(st['median'])} [{_fmt_ms(lo)}, {_fmt_ms(hi)}]</td><td>{_fmt_ms(st['p90'])}</td><td>{_fmt_ms(st['p99'])}</td>")
            else:
                why = esc(unavailable.get(key, "not measured"))
                cells.append(f'<td class="na" colspan="3" title="{why}">unavailable: {why}</td>')
        rate = m.get("output_units_per_s")
        unit = esc((s.get("facts") or {}).get("output_unit", "unit"))
        cells.append(f"<td>{rate['median']:.2f} {unit}/s</td>" if rate else '<td class="na">—</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    out = f"<table>{head}{''.join(rows)}</table><p class=\"muted\">Times in milliseconds over measured iterations (warmup excluded). See Definitions.</p>"
    return out + _control_table(run)


CONTROL_COLUMNS = [
    ("control_rate_hz", "achieved rate (Hz)", 1.0, "median"),
    ("deadline_miss_rate", "deadline-miss rate", 100.0, "mean"),
    ("lateness_s", "lateness p50 ms", 1e3, "median"),
    ("lateness_s", "lateness p99 ms", 1e3, "p99"),
    ("tick_interval_s", "interval jitter p99−p50 ms", 1e3, "jitter_p99_minus_p50"),
    ("tick_interval_s", "interval std ms", 1e3, "std"),
    ("staleness_s", "action staleness median ms", 1e3, "median"),
    ("obs_to_output_s", "inference latency median ms", 1e3, "median"),
]


def _control_table(run: Run) -> str:
    """Deadline-driven workloads (spans with deadlines): the control-loop metrics of metrics.md."""
    rows = []
    for name, w in run.workloads.items():
        m = w.summary.get("metrics", {})
        if "deadline_miss_rate" not in m:
            continue
        cells = [f'<td class="l">{esc(name)}</td>']
        for key, _, scale, stat in CONTROL_COLUMNS:
            value = (m.get(key) or {}).get(stat)
            suffix = "%" if key == "deadline_miss_rate" else ""
            cells.append(f"<td>{value * scale:.3g}{suffix}</td>" if value is not None else '<td class="na">—</td>')
        duty = (w.summary.get("phases", {}).get("infer") or {}).get("share_of_iteration")
        cells.append(f"<td>{duty:.1%}</td>" if duty is not None else '<td class="na">—</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        return ""
    head = '<tr><th class="l">workload</th>' + "".join(f"<th>{esc(label)}</th>" for _, label, _, _ in CONTROL_COLUMNS) + "<th>inference duty cycle</th></tr>"
    return ("<h3>Control loops</h3><table>" + head + "".join(rows) + "</table>"
            '<p class="muted">Lateness = action sent − deadline (the next tick); negative is slack. A tick whose action was not ready is a miss.</p>')


def _workload_section(name: str, w: Any) -> str:
    s = w.summary
    parts = []
    phases = s.get("phases", {})
    if phases:
        head = "<tr><th class=\"l\">phase</th><th>count</th><th>median ms [95% CI]</th><th>p90</th><th>p99</th><th>mean</th><th>std</th><th>IQR</th><th>device median ms</th><th>units/span</th></tr>"
        rows = []
        for phase, e in phases.items():
            lat = e["latency_s"]
            dev = e.get("device_s")
            lo, hi = lat["ci95_median"]
            device_cell = _fmt_ms(dev["median"]) if dev else f'<span class="na" title="{esc(s.get("unavailable", {}).get("device_s", ""))}">unavailable</span>'
            rows.append(
                f'<tr><td class="l">{esc(phase)}</td><td>{lat["count"]}</td><td>{_fmt_ms(lat["median"])} [{_fmt_ms(lo)}, {_fmt_ms(hi)}]</td>'
                f"<td>{_fmt_ms(lat['p90'])}</td><td>{_fmt_ms(lat['p99'])}</td><td>{_fmt_ms(lat['mean'])}</td><td>{_fmt_ms(lat['std'])}</td>"
                f"<td>{_fmt_ms(lat['iqr'])}</td><td>{device_cell}</td><td>{e['units_per_span']:.3g}</td></tr>"
            )
        parts.append(f"<h3>Phases</h3><table>{head}{''.join(rows)}</table>")
    facts = s.get("facts") or {}
    meta = {"type": s.get("type"), "plugin": s.get("plugin"), "params": json.dumps(s.get("params", {})), "setup (s)": s.get("setup_s"),
            "loop": json.dumps(s.get("loop")), "spans": s.get("span_count"), "sampler rows": s.get("sample_count"),
            "sampler rate achieved (Hz)": s.get("sample_hz_achieved")}
    parts.append("<h3>Facts and settings</h3>" + _kv_table({**meta, **facts}))
    mem = s.get("memory") or {}
    if mem:
        parts.append("<h3>Memory</h3>" + _kv_table({k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in mem.items()}))
    if s.get("unavailable"):
        parts.append("<h3>Unavailable on this run</h3>" + _kv_table(s["unavailable"]))
    return "".join(parts)


def _kv_table(d: dict[str, Any]) -> str:
    return "<table>" + "".join(f'<tr><th class="l">{esc(k)}</th><td class="l">{esc("—" if v is None else v)}</td></tr>' for k, v in d.items()) + "</table>"


def _calibration(run: Run) -> dict[str, Any]:
    return read_json(run.path / "calibration.json") or {}


def _fmt_si(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _work_section(run: Run) -> str:
    cal = _calibration(run)
    parts = []
    if cal.get("matmul_flops_per_s"):
        peaks = ", ".join(f"{k}: {_fmt_si(v, 'FLOP/s')}" for k, v in cal["matmul_flops_per_s"].items())
        parts.append(f"<p>Ceilings measured on this machine ({esc(cal.get('measured_utc'))}): peak matmul {esc(peaks)}; copy bandwidth "
                     f"{esc(_fmt_si(cal.get('copy_bytes_per_s'), 'B/s'))}. <span class=\"muted\">{esc('; '.join((cal.get('method') or {}).values()))}</span></p>")
    else:
        parts.append(f'<p class="na">No ceilings: {esc(cal.get("unavailable", "calibration.json is missing"))}. MFU, MBU and bound class are unavailable.</p>')
    head = ("<tr><th class=\"l\">workload</th><th class=\"l\">phase</th><th>FLOPs counted</th><th>FLOPs analytic</th><th>bytes</th>"
            "<th>intensity FLOP/B</th><th>time (source)</th><th>achieved FLOP/s</th><th>MFU</th><th>MBU</th><th class=\"l\">bound</th></tr>")
    rows = []
    notes: list[str] = []
    rule = None
    for name, w in run.workloads.items():
        work = w.summary.get("work") or {}
        rule = rule or work.get("bound_rule")
        if not work.get("phases"):
            why = (w.summary.get("unavailable") or {}).get("work", "not counted")
            rows.append(f'<tr><td class="l">{esc(name)}</td><td class="na l" colspan="10">unavailable: {esc(why)}</td></tr>')
            continue
        partial = work.get("partial_phases") or {}
        for phase, e in work["phases"].items():
            if phase == "iteration":
                continue
            intensity = e.get("intensity_flop_per_byte")
            note = f' <span class="muted" title="{esc(partial[phase])}">(this thread only)</span>' if phase in partial else ""
            rows.append(
                f'<tr><td class="l">{esc(name)}</td><td class="l">{esc(phase)}{note}</td><td>{_fmt_si(e.get("flops_counted"), "")}</td>'
                f'<td>{_fmt_si(e.get("flops_analytic"), "") if e.get("flops_analytic") else "0"}</td><td>{_fmt_si(e.get("bytes"), "B")}</td>'
                f'<td>{"—" if intensity is None else f"{intensity:.3g}"}</td><td>{_fmt_ms(e.get("time_s"))} ms ({esc(e.get("time_source", ""))})</td>'
                f'<td>{_fmt_si(e.get("achieved_flops_per_s"), "FLOP/s")}</td><td>{_pct(e.get("mfu"))}</td><td>{_pct(e.get("mbu"))}</td>'
                f'<td class="l">{esc(e.get("bound", "unavailable"))}</td></tr>')
        for phase, why in (work.get("uncounted_phases") or {}).items():
            rows.append(f'<tr><td class="l">{esc(name)}</td><td class="l">{esc(phase)}</td><td class="na l" colspan="9">not counted: {esc(why)}</td></tr>')
        if partial:
            notes.append(f"{name}: {', '.join(partial)} counted on their own thread only ({next(iter(partial.values()))})")
    parts.append(f"<table>{head}{''.join(rows)}</table>")
    parts.extend(f'<p class="muted">{esc(n)}.</p>' for n in notes)
    parts.append('<p class="muted">FLOPs: counted by torch.utils.flop_counter.FlopCounterMode in one extra untimed iteration (SDPA counts ignore causal '
                 'masking); analytic: workload-declared formulas for what the counter cannot see (the selective scan). Bytes: unfused op-level '
                 f'traffic (inputs + outputs of every op; an upper bound for fused kernels). Bound rule: {esc(rule or "")}.</p>')
    points = []
    for name, w in run.workloads.items():
        for phase, e in ((w.summary.get("work") or {}).get("phases") or {}).items():
            if phase != "iteration":
                points.append({"workload": name, "phase": phase, "intensity": e.get("intensity_flop_per_byte"), "achieved": e.get("achieved_flops_per_s")})
    dtypes = {(w.summary.get("facts") or {}).get("dtype") for w in run.workloads.values()}
    peak = max(((cal.get("matmul_flops_per_s") or {}).get(d) or 0 for d in dtypes), default=0) or None
    fig = figures.roofline(points, peak, cal.get("copy_bytes_per_s"))
    if fig is not None:
        parts.append(_fig(fig))
    return "".join(parts)


def _energy_section(run: Run) -> str:
    rows = []
    for name, w in run.workloads.items():
        e = w.summary.get("energy") or {}
        unit = esc((w.summary.get("facts") or {}).get("output_unit", "unit"))
        if not e:
            why = (w.summary.get("unavailable") or {}).get("energy", "not measured")
            rows.append(f'<tr><td class="l">{esc(name)}</td><td class="l na" colspan="5">unavailable: {esc(why)}</td></tr>')
            continue
        per_unit = e.get("j_per_output_unit")
        above = e.get("energy_above_idle_j")
        rows.append(f'<tr><td class="l">{esc(name)}</td><td>{per_unit:.4g} J/{unit}</td><td>{e["average_power_w"]:.1f} W</td>'
                    f'<td>{e["energy_j"]:.1f} J over {e["window_s"]:.1f} s</td><td>{"—" if above is None else f"{above:.1f} J"}</td>'
                    f'<td>{_watts(e.get("idle_power_w"))}</td></tr>'
                    if per_unit is not None else f'<tr><td class="l">{esc(name)}</td><td class="na">no output units</td><td>{e["average_power_w"]:.1f} W</td><td colspan="3"></td></tr>')
    head = '<tr><th class="l">workload</th><th>energy per output</th><th>average power</th><th>measured window</th><th>above idle</th><th>idle power</th></tr>'
    return (f"<table>{head}{''.join(rows)}</table><p class=\"muted\">NVML total-energy counter differences over windows of at least 1 s "
            "(never integrated power readings); per-phase energy in summary.json where a phase totals at least 1 s.</p>")


def _opmix_section(run: Run) -> str:
    rows, bars = [], []
    for name, w in run.workloads.items():
        mix = w.summary.get("operator_mix") or {}
        if not mix.get("phases"):
            why = (w.summary.get("unavailable") or {}).get("operator_mix", "not traced")
            rows.append(f'<tr><td class="l">{esc(name)}</td><td class="l na" colspan="5">unavailable: {esc(why)}</td></tr>')
            continue
        ratio = mix.get("traced_over_timed_e2e")
        for phase, e in mix["phases"].items():
            if phase == "iteration":
                continue
            shares = e.get("share_by_category") or {}
            top = ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:4])
            extra = ""
            if mix.get("device_unavailable"):
                extra = f"unavailable: {mix['device_unavailable']}"
            elif e.get("kernel_launches") is not None:
                idle = e.get("device_idle_fraction")
                extra = f"{e['kernel_launches']} launches; device idle {idle:.0%}" if idle is not None else f"{e['kernel_launches']} launches"
            rows.append(f'<tr><td class="l">{esc(name)}</td><td class="l">{esc(phase)}</td><td class="l">{esc(e.get("dominant_category"))}</td>'
                        f'<td class="l">{esc(top)}</td><td class="l">{esc(extra) or "—"}</td><td>{f"{ratio:.2f}x" if ratio else "—"}</td></tr>')
            bars.append({"label": f"{name} · {phase}", "shares": shares})
    head = ('<tr><th class="l">workload</th><th class="l">phase</th><th class="l">dominant</th><th class="l">shares (top 4)</th>'
            '<th class="l">CUDA launches / idle</th><th>traced ÷ timed E2E</th></tr>')
    out = f"<table>{head}{''.join(rows)}</table>"
    out += ('<p class="muted">From one extra iteration under torch.profiler (never the timed ones): self time of each op, attributed to its '
            'innermost phase and to the category of the outermost op the model called; host/framework is the phase\'s own time outside any '
            'op (Python, glue). On the PyTorch reference path of Mamba the scan runs as elementwise ops and is counted there. '
            'Traced ÷ timed E2E shows how much the profiler slows the traced iteration: traced timings are not the measurements.</p>')
    fig = figures.operator_mix(bars)
    return out + (_fig(fig) if fig is not None else "")


def _fit_cell(fit: dict[str, Any] | None, scale: float, unit: str) -> str:
    if not fit:
        return '<td class="na">—</td>'
    return f"<td>{fit['slope'] * scale:.4g} {esc(unit)} <span class=\"muted\">(r² {fit['r2']:.3f}, {fit['points']} pts)</span></td>"


def _scaling_section(run: Run) -> str:
    rows = []
    for name, w in run.workloads.items():
        for phase, fit in (w.summary.get("scaling") or {}).items():
            rows.append(f'<tr><td class="l">{esc(name)}</td><td class="l">{esc(phase)}</td>'
                        + _fit_cell(fit.get("state_bytes_per_position"), 1.0, "B / token")
                        + _fit_cell(fit.get("latency_s_per_position"), 1e6, "µs / token") + "</tr>")
    out = ""
    if rows:
        out += ('<h3>Growth with context (linear fits within each run)</h3><table><tr><th class="l">workload</th><th class="l">phase</th>'
                "<th>state bytes per token of context</th><th>latency per token of context</th></tr>" + "".join(rows) + "</table>")
    sweeps = read_json(run.path / "sweeps.json")
    batch_rows, curves = [], {}
    for group, data in (sweeps or {}).items():
        for r in data.get("batch", []):
            gain, growth = r["throughput_gain"], r["e2e_growth"]
            batch_rows.append(f'<tr><td class="l">{esc(r["point"])}</td><td class="l">{esc(r["base"])}</td><td>{_ratio_cell(gain)}</td><td>{_ratio_cell(growth)}</td></tr>')
            curves.setdefault(r["base"], [(r["base_batch_size"], 1.0)]).append((r["batch_size"], gain.get("ratio")))
    if batch_rows:
        out += ('<h3>Batching (sweep points that differ only in batch_size)</h3><table><tr><th class="l">point</th><th class="l">against</th>'
                "<th>throughput gain [95% CI]</th><th>E2E growth [95% CI]</th></tr>" + "".join(batch_rows) + "</table>")
        fig = figures.batching(curves)
        if fig is not None:
            out += _fig(fig)
    return out or '<p class="na">No scaling data: no span carried a position and no sweep ran.</p>'


def _ratio_cell(r: dict[str, Any]) -> str:
    if r.get("ratio") is None:
        return "—"
    lo, hi = r["ci95"]
    return f"{r['ratio']:.2f}× [{lo:.2f}, {hi:.2f}]"


def _watts(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} W"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _figures_section(run: Run) -> str:
    pos_tables: dict[str, dict[str, Any]] = {}  # position unit -> workload -> table
    cdf_itl, cdf_e2e = {}, {}
    timeline_html = []
    reduced = False
    for name, w in run.workloads.items():
        spans = w.measured
        if not spans.empty:
            t = position_table(spans)
            if not t.empty:
                unit = (w.summary.get("facts") or {}).get("position_unit", "token of context")
                pos_tables.setdefault(unit, {})[name] = t
            rm = request_metrics(spans)
            cdf_itl[name] = rm["itl_s"]
            cdf_e2e[name] = rm["e2e_s"]
        fig, r = figures.sampler_timeline(name, w.samples, w.iterations)
        reduced |= r
        if fig is not None:
            timeline_html.append(_fig(fig))
    out = []
    by_unit = []
    for unit, tables in pos_tables.items():  # one figure per unit: tokens and denoising steps never share an axis
        by_unit.append(figures.latency_vs_position({k: v.loc[v["phase"] != "prefill"] for k, v in tables.items()}, unit))
        by_unit.append(figures.state_vs_position(tables, unit))
    for fig in (
        *by_unit,
        figures.latency_cdf(cdf_itl, "Inter-token (inter-delivery) latency, CDF", "ITL (ms)"),
        figures.latency_cdf(cdf_e2e, "End-to-end latency per iteration, CDF", "E2E (ms)"),
    ):
        if fig is not None:
            out.append(_fig(fig))
    late = {name: w.measured for name, w in run.workloads.items() if not w.measured.empty and "deadline_ns" in w.measured}
    fig = figures.tick_lateness(late)
    if fig is not None:
        out.append(_fig(fig))
    out.extend(timeline_html)
    if reduced:
        out.append('<p class="muted">Long sampler series are reduced for display by min-max bucketing (4,000 points); the raw rows are in each workload\'s samples.parquet.</p>')
    if not out:
        out.append('<p class="na">No figures: no measured spans or samples were recorded.</p>')
    return "".join(out)


def _fig(fig: Any) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def _environment_section(run: Run) -> str:
    env = dict(run.env)
    packages = env.pop("packages", {}) or {}
    gpus = env.pop("gpus", []) or []
    out = _kv_table({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in env.items()})
    out += "<h3>Packages</h3>" + _kv_table({k: v or "not installed" for k, v in packages.items()})
    if gpus:
        out += "<h3>GPUs</h3>" + "".join(_kv_table(g) for g in gpus)
    return out


def _definitions_section() -> str:
    return "<dl>" + "".join(f"<dt><b>{esc(t)}</b></dt><dd>{esc(d)}</dd>" for t, d in DEFINITIONS) + "</dl>"


__all__ = ["write_report", "build_html"]
