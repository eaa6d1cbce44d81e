#!/usr/bin/env bash
# Reproduces the committed model from scratch: training tensors from the Rust pipeline, the full
# model and its ablations, ONNX export (f32, int8 QOperator), the check through tract, the model
# card and the evaluation tables in models/README.md.
#
#   bash models/train.sh
#
# Environment: INTERNAL_STUDIES (4000), EXTERNAL_STUDIES (600), EPOCHS (30), SKIP_ABLATIONS=1,
# F16_ROWS (200: internal-test studies checked in emulated f16).
# Data (~9 GB) goes to models/data/ (git-ignored); datasets already there with the same
# arguments are reused. Runs on the CPU (2 cores here) with bfloat16 autocast for the training
# steps (AVX512-BF16 makes it ~2x faster; pass --amp none in train() on CPUs without it); a GPU,
# if torch finds one, is not used, so the committed numbers reproduce anywhere. Training is not
# bit-reproducible (thread scheduling changes float sums): expect the same numbers to within
# the confidence intervals, and new hashes.
set -euo pipefail
cd "$(dirname "$0")/.."
INTERNAL_STUDIES=${INTERNAL_STUDIES:-4000}
EXTERNAL_STUDIES=${EXTERNAL_STUDIES:-600}
EPOCHS=${EPOCHS:-30}
INTERNAL_SEED=4000
EXTERNAL_SEED=9000
REFERENCE_SEED=77
PY=models/.venv/bin/python

bash .ci/install-deps build
if [ ! -x "$PY" ]; then
    python3 -m venv models/.venv
    models/.venv/bin/pip install -q -r models/requirements.txt
fi
cargo build --release --bin ismf --example variant_agreement
ISMF=target/release/ismf

# Data made by another simulator version is regenerated, not reused.
SIMULATOR_VERSION=$(sed -n 's/^pub const SIMULATOR_VERSION: &str = "\(.*\)";/\1/p' src/simulate/study.rs)
dataset() { # DIR STUDIES SEED SITE
    local want="$2 $3 \"$4\" $SIMULATOR_VERSION"
    if [ -f "$1/dataset.json" ] && [ "$(python3 -c "import json; d=json.load(open('$1/dataset.json')); print(d['studies'], d['seed'], json.dumps(d['site']), d.get('simulator_version'))")" = "$want" ]; then
        echo "reusing $1"
    else
        rm -rf "$1"
        "$ISMF" dataset --out "$1" --studies "$2" --seed "$3" --site "$4"
    fi
}
dataset models/data/internal "$INTERNAL_STUDIES" "$INTERNAL_SEED" internal
dataset models/data/external "$EXTERNAL_STUDIES" "$EXTERNAL_SEED" external
dataset models/data/reference 4 "$REFERENCE_SEED" internal

mkdir -p models/runs
train() { # NAME THREADS ARGS...
    local name=$1 threads=$2
    shift 2
    (cd models && "../$PY" train.py --data data/internal --external data/external --out "runs/$name.pt" \
        --epochs "$EPOCHS" --threads "$threads" "$@" > "runs/$name.log")
    tail -n 1 "models/runs/$name.log" | sed "s/^/$name: /"
}
train full 2
if [ "${SKIP_ABLATIONS:-0}" != 1 ]; then
    # Two one-thread runs at a time use two cores better than one two-thread run.
    train only_sag_t1w 1 --sequences sag_t1w & train only_sag_t2w 1 --sequences sag_t2w & wait
    train only_sag_t2fs 1 --sequences sag_t2fs & train only_ax_t2w 1 --sequences ax_t2w & wait
    train clinical_only 1 --sequences ""
    train no_clinical 2 --no-clinical
fi

(cd models && "../$PY" export.py --run runs/full.pt --data data/internal --reference data/reference --out-dir .)
(cd models && "../$PY" card.py)
# f16 is emulated on x86-64 (≈ 1 s a study): it runs on the split's first F16_ROWS studies.
target/release/examples/variant_agreement models/model-card.json models/data/internal \
    models/runs/splits.json internal_test models/runs/variants.json "${F16_ROWS:-200}"
(cd models && "../$PY" card.py --variants runs/variants.json)
sha256sum models/*.onnx
