#!/usr/bin/env bash
# The reading room under a burst (tests/it/reading_room.rs, `burst_benchmark`): a page open in
# headless Chromium, then N predictions (default 1000) published at once by three appliances'
# worth of mosquitto_pub at QoS 1. Reports when all N are rows of the open page (live, by the
# stream), the time to render the worklist on a fresh load (its first page, 200 rows), and the
# reading room's RSS (idle, after, peak). The reading room is the release binary.
# Needs mosquitto, chromium and chromium-driver (.ci/install-deps test).
# Usage: benches/reading_room.sh [N] [ROUNDS]   (defaults 1000 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
rounds=${2:-3}
cargo build --release --quiet --bin ismf
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), $(chromium --version 2>/dev/null), mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')"
results=()
for r in $(seq "$rounds"); do
  line=$(ISMF_BURST=$n ISMF_RR_BINARY=target/release/ismf cargo test --quiet --test it \
    reading_room::burst_benchmark -- --ignored --nocapture --exact 2>/dev/null | grep '^{')
  echo "round $r: $line"
  results+=("$line")
done
printf '%s\n' "${results[@]}" | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
med = lambda k: statistics.median(r[k] for r in rows)
print()
print("| burst of %d predictions (median of %d) | value | goal |" % (rows[0]["predictions"], len(rows)))
print("|---|---|---|")
print("| all published (PUBACK), 3 publishers | %.2f s | |" % med("published_s"))
print("| all rows on the open page (live) | %.2f s | all on the page |" % med("all_on_open_page_s"))
print("| fresh load: worklist rendered (200 rows) | %.0f ms | responsive |" % med("fresh_render_200_rows_ms"))
print("| with them there: filter by class, rows re-rendered | %.0f ms | responsive |" % med("filter_by_class_ms"))
print("| reading-room RSS idle / after / peak | %.1f / %.1f / %.1f MiB | peak <= 100 MB |" % (med("rss_idle_mib"), med("rss_after_mib"), max(r["rss_peak_mib"] for r in rows)))
'
