#!/usr/bin/env bash
# One prepared pass on a GPU machine: GPU tests, eager against compiled Llama-3.1-8B decode, the
# cross-domain suite on CUDA (tiny presets), the same suite at published scale (LLM decode compiled
# over a static cache), and the overhead benchmark on CUDA. Writes logs and a digest of every
# summary.json under ${OUT:-gpu-out}.
# The GPU machine has no network (Python 3.12, torch 2.11, transformers 5.17; no pydantic, plotly or diffusers):
# first, here, `bash benchmarks/gpu_wheels.sh` (30 MB of wheels into gpu-wheels/), then carry them:
#   run(command="bash benchmarks/gpu_check.sh", carry=["gpu-wheels"], timeout_s=600)
# It installs only from gpu-wheels/ and never reaches the network. Its time on an H200 has not been measured
# (issue 16's budget: 6 minutes); each step has its own timeout so one slow step cannot take the others down.
set -uo pipefail
OUT=${OUT:-gpu-out}
RUNS=${RUNS:-/tmp/gpu-runs}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=160
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/nvidia-smi.txt"
if [ -d gpu-wheels ]; then
  python3 -m pip install -q --no-index --find-links gpu-wheels pydantic plotly diffusers jinja2 rich psutil nvidia-ml-py pytest hypothesis 2>&1 | tail -3 | tee "$OUT/install.log"
  python3 -m pip install -q --no-index --no-deps gpu-wheels/ml_workload_profiler-*.whl 2>&1 | tail -3 | tee -a "$OUT/install.log"
fi
python3 - <<'PY' | tee -a "$OUT/install.log"
import importlib.util
missing = [m for m in ("torch", "transformers", "diffusers", "pydantic", "plotly", "pandas", "pyarrow", "scipy", "jinja2", "rich", "psutil", "pynvml") if importlib.util.find_spec(m) is None]
print("missing modules:", ", ".join(missing) or "none", "(scipy only serves --repeats)")
PY
timeout 150 python3 -m pytest -m gpu tests/gpu -q 2>&1 | tail -5 | tee "$OUT/gpu-tests.log"
# issue 16: Llama-3.1-8B bf16 batch 1, eager DynamicCache against a static cache under torch.compile (CUDA graphs)
timeout 120 python3 benchmarks/compiled_decode.py --device cuda --preset llama-3.1-8b --prompt 128 --gen 128 -o "$RUNS/compiled" 2>&1 | tee "$OUT/compiled-decode.log"
timeout 90 python3 -m profiler run configs/cross_domain.yaml --device cuda -o "$RUNS" 2>&1 | grep -v '^\[transformers\]' | tee "$OUT/cross-domain-tiny.log"
timeout 150 python3 -m profiler run configs/cross_domain.yaml --device cuda -o "$RUNS" \
  --set name=cross-domain-published --set measure.min_iters=3 --set measure.min_seconds=1 \
  --set workloads.0.params.preset=llama-3.1-8b --set workloads.0.params.cache=static --set workloads.0.params.compile=true \
  --set workloads.1.params.preset=mamba-2.8b \
  --set workloads.2.params.preset=sd15 --set workloads.3.params.preset=pi0 \
  --set workloads.3.params.ticks=100 --set workloads.3.params.control_hz=50 --set workloads.3.params.chunk_len=50 --set workloads.3.params.compile=true \
  2>&1 | grep -v '^\[transformers\]' | tee "$OUT/cross-domain-published.log"
python3 - "$OUT" "$RUNS" <<'PY'
import json, pathlib, sys
out, runs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
rows = []
for run in sorted(runs.iterdir()):
    for summary in sorted(run.glob("*/summary.json")):
        s = json.loads(summary.read_text())
        rows.append({"run": run.name, "workload": s["name"], "status": s["status"], "error": s["error"], "facts": s["facts"],
                     "metrics": {k: {q: v.get(q) for q in ("median", "mean", "p90", "p99", "count", "ci95_median")} for k, v in s["metrics"].items()},
                     "phases": {k: {"host_median_s": v["latency_s"]["median"], "device_median_s": v.get("device_s", {}).get("median"),
                                    "share": v.get("share_of_iteration")} for k, v in s["phases"].items()},
                     "memory": s["memory"], "unavailable": s["unavailable"], "warnings": s["warnings"], "sample_hz": s.get("sample_hz_achieved")})
(out / "summaries.json").write_text(json.dumps(rows, indent=1))
PY
cp "$(ls -d "$RUNS"/*cross-domain-published*/ | head -1)report.html" "$OUT/report-published.html" 2>/dev/null || true
