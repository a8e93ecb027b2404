#!/usr/bin/env bash
# One prepared pass on a GPU machine: GPU tests, the default suite on CUDA, larger presets, and the
# overhead benchmark on CUDA. Writes logs and run directories' summaries under ${OUT:-gpu-out}.
# Usage (from the repository root, with the project installed): bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=160
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -m pytest -m gpu tests/gpu -q 2>&1 | tee "$OUT/gpu-tests.log"
python3 -m profiler run configs/llm_decode.yaml --device cuda -o /tmp/gpu-runs 2>&1 | tee "$OUT/default-suite.log"
python3 -m profiler run configs/llm_decode.yaml --device cuda -o /tmp/gpu-runs \
  --set workloads.0.params.preset=llama-3.1-8b --set measure.min_seconds=5 2>&1 | tee "$OUT/llama-8b.log"
python3 benchmarks/overhead.py --device cuda --rounds 20 2>&1 | tee "$OUT/overhead-cuda.log"
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = []
for run in sorted(pathlib.Path("/tmp/gpu-runs").iterdir()):
    for summary in run.glob("*/summary.json"):
        s = json.loads(summary.read_text())
        rows.append({"run": run.name, "workload": s["name"], "status": s["status"], "facts": s["facts"],
                     "metrics": {k: {q: v.get(q) for q in ("median", "p90", "p99", "count", "ci95_median")} for k, v in s["metrics"].items()},
                     "phases": {k: {"host_median_s": v["latency_s"]["median"], "device_median_s": v.get("device_s", {}).get("median")} for k, v in s["phases"].items()},
                     "memory": s["memory"], "unavailable": s["unavailable"], "warnings": s["warnings"], "sample_hz": s.get("sample_hz_achieved")})
(out / "summaries.json").write_text(json.dumps(rows, indent=1))
PY
cp "$(ls -d /tmp/gpu-runs/*/ | head -1)report.html" "$OUT/report-default.html" 2>/dev/null || true
