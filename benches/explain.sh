#!/usr/bin/env bash
# Explanation maps: what they cost and whether they point at the lesion.
#   1. cost: `ismf classify --explain` on COST_STUDIES fresh studies, the prediction's
#      `timings.explain_ms` per study at 1 and 2 rayon threads (tract itself single-threaded);
#   2. honesty: `ismf eval --explain` on STUDIES fresh studies per site (internal, external):
#      pointing-game hit rate by sequence, site and class against the exact random-peak baseline
#      and the mismatched-truth control; the randomised-model check (Spearman) on the first
#      RANDOMISED studies of each site.
# Seeds 20001 (internal) and 30001 (external) are outside every training and test split
# (models/train.sh: internal 4000…7999, external 9000…9599). Simulated studies: not clinical
# evidence.
#
#   bash benches/explain.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
STUDIES=${STUDIES:-200}
RANDOMISED=${RANDOMISED:-20}
COST_STUDIES=${COST_STUDIES:-10}
cargo build --release --locked --bin ismf >&2
ismf=target/release/ismf
for site in internal external; do
    seed=$([ "$site" = internal ] && echo 20001 || echo 30001)
    [ -f "$work/$site/truth.jsonl" ] || "$ismf" simulate --out "$work/$site" --studies "$STUDIES" --seed "$seed" --site "$site" >&2
done

echo "## cost (ms a study, $COST_STUDIES internal studies; tract single-threaded)"
"$ismf" simulate --out "$work/cost" --studies "$COST_STUDIES" --seed 40001 >&2
for threads in 1 2; do
    RAYON_NUM_THREADS=$threads "$ismf" classify --explain --json "$work/cost" 2>/dev/null |
        python3 -c '
import json, sys, statistics
t = [json.loads(l)["timings"] for l in sys.stdin if l.strip()]
e = sorted(x["explain_ms"] for x in t)
i = statistics.median(x["inference_ms"] for x in t)
print(f"rayon threads {sys.argv[1]}: explain median {statistics.median(e):.0f} ms, max {e[-1]:.0f} ms; one inference {i:.1f} ms")
' "$threads"
done

for site in internal external; do
    echo "## pointing game, $site ($STUDIES studies)"
    "$ismf" eval --explain --randomise-seed 0 "$work/$site"
    echo "## randomised-model check, $site (first $RANDOMISED studies)"
    "$ismf" eval --explain --randomise-seed 1 "$work/$site" --limit "$RANDOMISED" | grep -i "spearman"
done
