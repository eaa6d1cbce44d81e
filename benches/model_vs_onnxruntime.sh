#!/usr/bin/env bash
# The runtime benchmark of issue #5, in one run on the same inputs:
#   - model only: tract f32 / int8 / f16 (`ismf bench`) vs onnxruntime f32 / int8
#     (benches/ort_peer.py) at 1 and 2 threads, interleaved, ROUNDS rounds of 20 runs each;
#   - end to end: `ismf classify STUDY` (whole process) vs the Python pipeline
#     (benches/classify_peer.py: pydicom + numpy + scipy + onnxruntime), interleaved;
#   - model load (card check + tract load + optimise + warm-up) and peak RSS of each.
# Prints markdown tables for BENCHMARKS.md. Usage: benches/model_vs_onnxruntime.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
cargo build --release --quiet
bin=target/release/ismf
venv=benches/.venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q onnxruntime==1.32.0 numpy==2.4.6 scipy==1.16.3 pydicom==3.0.1
fi
py=$venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" dataset --out "$tmp/ref" --studies 1 --seed 77 >/dev/null 2>&1
"$bin" simulate --out "$tmp/study" --studies 1 --seed 11 --distractors none >/dev/null 2>&1
rm "$tmp/study/truth.jsonl"
"$bin" inspect --json "$tmp/study" > "$tmp/inspect.json"

med() { sort -g | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'; }
range() { sort -g | awk '{a[NR]=$1} END {printf "%.2f–%.2f", a[1], a[NR]}'; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }

for r in $(seq "$rounds"); do
    for t in 1 2; do
        for p in f32 int8 f16; do
            # f16 is emulated on x86-64 (~2 s a run): fewer runs.
            runs=20; [ "$p" = f16 ] && runs=3
            "$bin" bench --precision "$p" --threads "$t" --runs "$runs" --json > "$tmp/b.json"
            field median_ms < "$tmp/b.json" >> "$tmp/tract_${p}_$t"
            field load_ms < "$tmp/b.json" >> "$tmp/load_${p}"
            field peak_rss_mib < "$tmp/b.json" >> "$tmp/rss_${p}"
            if [ "$t" = 1 ] && [ "$p" = f32 ]; then field concurrent_halves_ms < "$tmp/b.json" >> "$tmp/halves"; fi
        done
        for p in f32 int8; do
            "$py" benches/ort_peer.py "models/ismf-net-$p.onnx" "$tmp/ref" "$t" 20 > "$tmp/o.json"
            field median_ms < "$tmp/o.json" >> "$tmp/ort_${p}_$t"
            field load_ms < "$tmp/o.json" >> "$tmp/ortload_${p}"
        done
    done
    s=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$tmp/rss" "$bin" classify "$tmp/study" --json > "$tmp/rust_pred.json" 2>/dev/null
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l >> "$tmp/e2e_rust"
    awk '{print $1/1024}' "$tmp/rss" >> "$tmp/e2e_rust_rss"
    s=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$tmp/rss" "$py" benches/classify_peer.py models/ismf-net-f32.onnx "$tmp/study" "$tmp/inspect.json" > "$tmp/py_pred.json" 2>/dev/null
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l >> "$tmp/e2e_py"
    awk '{print $1/1024}' "$tmp/rss" >> "$tmp/e2e_py_rss"
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $rounds rounds, interleaved"
echo
echo "| model only, ms (median of round medians; range) | 1 thread | 2 threads |"
echo "|---|---|---|"
for p in f32 int8 f16; do
    echo "| tract $p | $(med < "$tmp/tract_${p}_1") ($(range < "$tmp/tract_${p}_1")) | $(med < "$tmp/tract_${p}_2") ($(range < "$tmp/tract_${p}_2")) |"
done
for p in f32 int8; do
    echo "| onnxruntime $p | $(med < "$tmp/ort_${p}_1") ($(range < "$tmp/ort_${p}_1")) | $(med < "$tmp/ort_${p}_2") ($(range < "$tmp/ort_${p}_2")) |"
done
for t in 1 2; do
    ratio=$(echo "$(med < "$tmp/tract_f32_$t") / $(med < "$tmp/ort_f32_$t")" | bc -l)
    printf "| tract f32 / onnxruntime f32, %s thread(s) | %.2f× | |\n" "$t" "$ratio"
done
echo "| tract f32, two studies side by side on 2 threads, per study (bound for running encoder halves concurrently) | $(med < "$tmp/halves") ($(range < "$tmp/halves")) | |"
echo
echo "| load, ms (median) | value |"
echo "|---|---|"
for p in f32 int8 f16; do echo "| tract $p: card check + load + optimise + warm-up | $(med < "$tmp/load_$p") |"; done
for p in f32 int8 f16; do echo "| peak RSS of \`ismf bench --precision $p\`, MiB | $(med < "$tmp/rss_$p") |"; done
for p in f32 int8; do echo "| onnxruntime $p session | $(med < "$tmp/ortload_$p") |"; done
echo
echo "| end to end, one study, whole process | seconds (median; range) | peak RSS MiB (median) |"
echo "|---|---|---|"
echo "| ismf classify (release, f32, 1 thread) | $(med < "$tmp/e2e_rust") ($(range < "$tmp/e2e_rust")) | $(med < "$tmp/e2e_rust_rss") |"
echo "| Python: pydicom + numpy + scipy + onnxruntime | $(med < "$tmp/e2e_py") ($(range < "$tmp/e2e_py")) | $(med < "$tmp/e2e_py_rss") |"
printf "| ratio ismf / Python | %.2f | |\n" "$(echo "$(med < "$tmp/e2e_rust") / $(med < "$tmp/e2e_py")" | bc -l)"
python3 - "$tmp/rust_pred.json" "$tmp/py_pred.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["probabilities"]
p = json.load(open(sys.argv[2]))["probabilities"]
d = max(abs(a - b) for a, b in zip([r[k] for k in ["SCN", "MNG", "AST", "EPN", "MET"]], p))
print(f"\nmax probability difference ismf classify vs the Python pipeline: {d:.2e}")
PY
