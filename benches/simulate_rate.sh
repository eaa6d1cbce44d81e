#!/usr/bin/env bash
# End-to-end `ismf simulate` rate in both export modes, printed as a Markdown table.
# Usage: benches/simulate_rate.sh [INSTANT_STUDIES] [REALTIME_STUDIES]   (defaults 300, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
n_instant=${1:-300}
n_realtime=${2:-3}
cargo build --release --quiet
bin=target/release/ismf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # mode studies
  local start end
  start=$(date +%s.%N)
  "$bin" simulate --out "$tmp/$1" --studies "$2" --seed 1 --mode "$1" >/dev/null 2>&1
  end=$(date +%s.%N)
  local files bytes
  files=$(find "$tmp/$1" -name '*.dcm' | wc -l)
  bytes=$(du -sb "$tmp/$1" | cut -f1)
  awk -v m="$1" -v n="$2" -v s="$start" -v e="$end" -v f="$files" -v b="$bytes" 'BEGIN {
    t = e - s; printf "| %s | %d | %.1f | %.2f | %.2f | %d | %.1f |\n", m, n, t, n / t, t / n, f / n, b / n / 1e6 }'
  rm -rf "${tmp:?}/$1"
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| mode | studies | seconds | studies/s | s/study | files/study | MB/study |"
echo "|---|---|---|---|---|---|---|"
run instant "$n_instant"
run realtime "$n_realtime"
