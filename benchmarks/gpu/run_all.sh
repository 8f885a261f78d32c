#!/usr/bin/env bash
# Everything a CUDA machine should run, in one go: build with the CUDA kernels, the test suite on the
# GPU (parity of every backend on CUDA tensors, the gpu-marked tests), the Triton check + benchmark
# (both kernels), the pytest-benchmark GPU groups and the static SASS tool. Results go to one folder.
#
#     bash benchmarks/gpu/run_all.sh [OUT_DIR]        (default: ./gpu-results; PYTHON=python to override)
#
# Each step logs to OUT_DIR/<step>.log and the script goes on when one fails; the summary at the
# end (OUT_DIR/summary.txt) lists every step's exit status.
set -u
OUT="${1:-${OUT:-gpu-results}}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
cd "$(dirname "$0")/../.."
: > "$OUT/summary.txt"

step() {  # step NAME COMMAND...
  local name="$1"; shift
  local t0=$SECONDS
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  tail -n 3 "$OUT/$name.log" | sed 's/^/   | /'
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
  lscpu | grep 'Model name'
  git rev-parse HEAD 2>/dev/null
} > "$OUT/machine.txt" 2>&1

step build env MLMETRICS_CUDA=1 "$PY" setup.py -q build_ext --inplace
step tests env MLMETRICS_REQUIRE_EXTENSION=1 "$PY" -m pytest -q -p no:cacheprovider tests/ \
  --junitxml="$OUT/tests.xml"
step triton_bench env PYTHONUNBUFFERED=1 "$PY" -m benchmarks.gpu.bench_triton --kernel both
step triton_sweep env PYTHONUNBUFFERED=1 "$PY" -m benchmarks.gpu.bench_triton --kernel triton --no-check --sweep
step bench_groups env MLMETRICS_BENCH_DEVICES=cuda "$PY" -m pytest benchmarks/ --benchmark-only -p no:cacheprovider \
  --benchmark-json "$OUT/gpu-raw.json"
step bench_report "$PY" benchmarks/report.py "$OUT/gpu-raw.json" --compact-json "$OUT/gpu.json" \
  --md "$OUT/gpu.md" --png "$OUT/gpu-speedup.png" --title "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)"
step static "$PY" -m benchmarks.gpu_static --variants softmax,no-softmax,target \
  --json "$OUT/gpu-static-sm90.json" --md "$OUT/gpu-static-sm90.md"
cat "$OUT/summary.txt"
