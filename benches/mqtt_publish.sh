#!/usr/bin/env bash
# Publishing cost on loopback: a fresh mosquitto on a free port, then `ismf bench mqtt`
# (submit → PUBACK latency of single predictions, back-to-back throughput, the durable outbox
# alone). Prints the machine and a Markdown row for BENCHMARKS.md.
# Usage: benches/mqtt_publish.sh [LATENCY_MESSAGES] [THROUGHPUT_MESSAGES]   (defaults 500, 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/ismf
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\n' "$port" > "$tmp/mosquitto.conf"
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto" -c "$tmp/mosquitto.conf" >/dev/null 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); disk: $(df -h "$tmp" | awk 'NR==2 {print $1}'); $("$mosquitto" -h | head -1)"
TMPDIR="$tmp" "$bin" bench mqtt --broker "mqtt://127.0.0.1:$port" \
    --latency-messages "${1:-500}" --throughput-messages "${2:-2000}" --json |
python3 -c '
import json, sys
r = json.load(sys.stdin)
print("| payload B | submit→PUBACK p50 ms | p99 ms | max ms | back-to-back msg/s | outbox alone commits/s |")
print("|---|---|---|---|---|---|")
print("| %d | %.2f | %.2f | %.2f | %.0f | %.0f |" % (r["payload_bytes"], r["latency_p50_ms"], r["latency_p99_ms"],
      r["latency_max_ms"], r["throughput_per_second"], r["outbox_pushes_per_second"]))
'
