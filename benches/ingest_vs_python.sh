#!/usr/bin/env bash
# Decode + preprocess of one 4-series study, ISMF Edge (release) against the pydicom + numpy +
# scipy peer (benches/preprocess_peer.py), interleaved; header scan of >= 1000 files; peak RSS.
# Usage: benches/ingest_vs_python.sh [ROUNDS]   (needs python3-pydicom, python3-scipy)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
cargo build --release --quiet
bin=target/release/ismf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" simulate --out "$tmp/study" --studies 1 --seed 11 --distractors none >/dev/null 2>&1
rm "$tmp/study/truth.jsonl"
"$bin" inspect --json "$tmp/study" > "$tmp/inspect.json"
: > "$tmp/rust.txt"; : > "$tmp/py.txt"
for _ in $(seq "$rounds"); do
  "$bin" bench preprocess "$tmp/study" --repeat 3 | grep -v peak >> "$tmp/rust.txt"
  /usr/bin/python3 benches/preprocess_peer.py "$tmp/inspect.json" 3 >> "$tmp/py.txt"
done
rss=$("$bin" bench preprocess "$tmp/study" --repeat 1 | awk '/peak/ {print $2}')
stats() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%.3f (%.3f–%.3f)", a[int((NR+1)/2)], a[1], a[NR]}'; }
med() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
files=$(find "$tmp/study" -name '*.dcm' | wc -l)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| decode + preprocess, one study ($files files) | median s (min–max), $((rounds * 3)) runs |"
echo "|---|---|"
echo "| ISMF Edge (release) | $(stats "$tmp/rust.txt") |"
echo "| pydicom + numpy + scipy | $(stats "$tmp/py.txt") |"
awk -v r="$(med "$tmp/rust.txt")" -v p="$(med "$tmp/py.txt")" 'BEGIN {printf "| ratio ISMF / Python | %.3f |\n", r / p}'
echo "| peak RSS, one study (MiB) | $rss |"
"$bin" simulate --out "$tmp/many" --studies 12 --seed 12 >/dev/null 2>&1
rm "$tmp/many/truth.jsonl"
sync
echo "| header scan | $("$bin" bench headers "$tmp/many") |"
