#!/usr/bin/env bash
# Device check for the GPU path (issue 9), on an x86-64 machine with an NVIDIA GPU and CUDA 12
# (driver, cuBLAS, NVRTC): simulates STUDIES studies, classifies them with `--backend cpu` and
# `--backend cuda`, prints the largest probability difference and the top-1 agreement, then
# tract's model latency on each backend and their ratio.
#
#   bash cross/gpu-check.sh                 # builds target/release/ismf with --features cuda
#   bash cross/gpu-check.sh path/to/ismf    # a carried binary (the lent machines have no
#                                           # crates.io: build it beforehand with
#                                           # cargo zigbuild --release --features cuda
#                                           #   --target x86_64-unknown-linux-gnu.2.31)
# It needs the model card and files (models/) beside it, as in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
STUDIES=${STUDIES:-20}
RUNS=${RUNS:-50}
bin=${1:-}
if [ -z "$bin" ]; then
    cargo build --release --locked --features cuda --bin ismf
    bin=target/release/ismf
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" simulate --out "$work/studies" --studies "$STUDIES" --seed 21 >/dev/null
"$bin" classify --json --backend cpu "$work/studies" >"$work/cpu.jsonl"
"$bin" classify --json --backend cuda "$work/studies" >"$work/cuda.jsonl"
status=0
python3 cross/compare_predictions.py "$work/cpu.jsonl" "$work/cuda.jsonl" 1e-3 || status=1
for backend in cpu cuda; do
    "$bin" bench --runs "$RUNS" --json --backend "$backend" >"$work/bench-$backend.json"
done
python3 - "$work/bench-cpu.json" "$work/bench-cuda.json" <<'PY'
import json, sys
cpu, cuda = (json.load(open(p)) for p in sys.argv[1:])
print(f"tract f32 median over {cpu['runs']} runs: cpu {cpu['median_ms']:.2f} ms (load {cpu['load_ms']:.0f} ms), "
      f"cuda {cuda['median_ms']:.2f} ms (load {cuda['load_ms']:.0f} ms); cuda/cpu latency ratio {cuda['median_ms'] / cpu['median_ms']:.2f}")
PY
exit $status
