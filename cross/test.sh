#!/usr/bin/env bash
# The aarch64 (Jetson) build proven under QEMU user-mode emulation:
#   1. the tests that prove the ARM build, cross-compiled against the glibc baseline and run
#      under qemu-aarch64 (the runner is in .cargo/config.toml; tests wrap what they spawn
#      through ISMF_TARGET_RUNNER), with mosquitto, dcmtk and pydicom running natively beside
#      them: the model's numerics (f32, int8, f16) against onnxruntime's stored outputs, pixel
#      decoding against pydicom and dcmtk, and the daemon's whole flow once (watch, classify,
#      publish). Every other test runs natively only (tests/run-all.sh);
#   2. the binary's glibc requirement checked against the baseline;
#   3. the same simulator studies classified by the x86-64 and the aarch64 build: same class,
#      probabilities within 1e-4 (f32);
#   4. the f16 path on QEMU's `-cpu max` (it has fp16 arithmetic, as Jetson Orin's cores do)
#      against f32: same class, probabilities within 1e-2.
# QEMU is ~100x slower than native: this proves correctness, never speed.
#
#   bash cross/test.sh [extra cargo test arguments, e.g. `-- --nocapture`; a test name filter
#                       adds to the tier's filters]
set -euo pipefail
cd "$(dirname "$0")/.."
GLIBC=${GLIBC:-2.31}
TARGET=aarch64-unknown-linux-gnu
STUDIES=${CROSS_STUDIES:-4}
bash .ci/install-deps test
bash cross/install-deps test
# tract picks kernels by CPU kind; under QEMU there is no real core to detect, so pin it as
# tract's own CI does (a55: the NEON, dot-product and fp16 kernels).
export TRACT_CPU_AARCH64_KIND=${TRACT_CPU_AARCH64_KIND:-a55}
export ISMF_TARGET_RUNNER="qemu-aarch64-static -cpu max -L /usr/aarch64-linux-gnu"
# The tier: libtest name filters on the one whole-flow test binary (tests/it/).
TIER=(
    model::tract_matches_onnxruntime_for_every_committed_variant
    pixels::
    mqtt::mutual_tls_accepts_the_right_client_and_refuses_others
    daemon::run_predicts_each_study_reports_bad_files_and_incomplete_studies_and_stops_on_sigterm
)
# `--test it` builds that binary and the `ismf` binary it runs, nothing else; without the
# `demo` feature, as the Jetson build is (no embedded broker and its HTTP stack to compile).
ARM=(--locked --target "$TARGET.$GLIBC" --no-default-features --test it)
cargo-zigbuild test "${ARM[@]}" --no-run
arm=target/$TARGET/debug/ismf

need=$(aarch64-linux-gnu-objdump -T "$arm" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
if [ "$(printf '%s\n' "GLIBC_$GLIBC" "$need" | sort -V | tail -1)" != "GLIBC_$GLIBC" ]; then
    echo "cross/test.sh: $arm needs $need, newer than the baseline GLIBC_$GLIBC" >&2
    exit 1
fi
echo "cross/test.sh: $arm needs $need (baseline GLIBC_$GLIBC)"

started=$(date +%s)
# "$@" goes before the tier's `--`: a caller's `-- --nocapture` gives the test binary
# `--nocapture -- FILTERS…`, and libtest reads options up to that `--` and filters after it.
cargo-zigbuild test "${ARM[@]}" "$@" -- "${TIER[@]}"
echo "cross/test.sh: QEMU tier took $(($(date +%s) - started)) s"

# The same studies through both builds.
# The x86-64 `ismf` the native tests built (with their feature set: a plain `cargo build`
# resolves features without the dev-dependencies and would rebuild half the tree).
cargo test --locked --test it --no-run
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/debug/ismf simulate --out "$work/studies" --studies "$STUDIES" --seed 8 >/dev/null
target/debug/ismf classify --json "$work/studies" >"$work/x86_64-f32.jsonl"
$ISMF_TARGET_RUNNER "$arm" classify --json "$work/studies" >"$work/aarch64-f32.jsonl"
$ISMF_TARGET_RUNNER "$arm" classify --json --precision f16 "$work/studies" >"$work/aarch64-f16.jsonl"
python3 cross/compare_predictions.py "$work/x86_64-f32.jsonl" "$work/aarch64-f32.jsonl" 1e-4
python3 cross/compare_predictions.py "$work/aarch64-f32.jsonl" "$work/aarch64-f16.jsonl" 1e-2
