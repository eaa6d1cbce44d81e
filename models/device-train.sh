#!/usr/bin/env bash
# The GPU route to the same runs as train.sh (the CPU route, which stays the documented one):
# on a lent GPU machine with PyTorch, numpy and no Rust toolchain, a carried `ismf` binary writes
# the training tensors on every core, then the full model and its six ablations train side by
# side on the one GPU. Export, the tract check and the card stay on the appliance side (train.sh
# steps after training), where the same seeds give the same tensors.
#
#   bash models/device-train.sh ISMF_BINARY OUT_DIR
#
# Writes OUT_DIR/<run>.{pt,json,log}, OUT_DIR/splits.json and OUT_DIR/datasets.json (sizes,
# rates and sha256 of the tensors, to compare with the ones written locally).
set -euo pipefail
cd "$(dirname "$0")"
BIN=$(realpath "$1")
OUT=$(realpath -m "$2")
DATA=${DATA:-/tmp/ismf-data}
EPOCHS=${EPOCHS:-30}
INTERNAL_STUDIES=${INTERNAL_STUDIES:-4000}
EXTERNAL_STUDIES=${EXTERNAL_STUDIES:-600}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
mkdir -p "$DATA" "$OUT"
export PYTHONUNBUFFERED=1
nproc
nvidia-smi -L || true
"$PY" -c 'import torch, numpy; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'

# Each study's DICOM files pass through a scratch folder: /dev/shm when it has room.
scratch=()
if [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')" -lt 2000000 ] 2>/dev/null; then
    mkdir -p "$DATA/scratch" && scratch=(--scratch "$DATA/scratch")
fi
start=$(date +%s)
"$BIN" dataset --out "$DATA/internal" --studies "$INTERNAL_STUDIES" --seed 4000 --site internal "${scratch[@]}"
"$BIN" dataset --out "$DATA/external" --studies "$EXTERNAL_STUDIES" --seed 9000 --site external "${scratch[@]}"
echo "datasets written in $(($(date +%s) - start)) s"
"$PY" - "$DATA" "$OUT/datasets.json" <<'EOF'
import hashlib, json, os, sys
data, out = sys.argv[1:]
result = {}
for site in ("internal", "external"):
    d = os.path.join(data, site)
    result[site] = {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                    for f in sorted(os.listdir(d)) if f.endswith(".npy")}
json.dump(result, open(out, "w"), indent=1)
EOF

train() { # NAME ARGS...
    local name=$1
    shift
    "$PY" train.py --data "$DATA/internal" --external "$DATA/external" --out "$OUT/$name.pt" \
        --epochs "$EPOCHS" --threads 2 --device "$DEVICE" "$@" > "$OUT/$name.log" 2>&1 \
        || { echo "$name failed:"; tail -n 20 "$OUT/$name.log"; return 1; }
    echo "$name: $(tail -n 1 "$OUT/$name.log")"
}
start=$(date +%s)
pids=()
train full & pids+=($!)
train only_sag_t1w --sequences sag_t1w & pids+=($!)
train only_sag_t2w --sequences sag_t2w & pids+=($!)
train only_sag_t2fs --sequences sag_t2fs & pids+=($!)
train only_ax_t2w --sequences ax_t2w & pids+=($!)
train clinical_only --sequences "" & pids+=($!)
train no_clinical --no-clinical & pids+=($!)
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "seven runs trained in $(($(date +%s) - start)) s"
exit $status
