#!/usr/bin/env bash
# The README's test command: installs the system packages the build and tests need (only those
# missing), then runs formatting, lint (the default build, and the Jetson CUDA build: no `demo`
# feature, `--features cuda`, which compiles without CUDA installed), the import-cycle check,
# every test on x86-64, and the aarch64 tier under QEMU. Works on a fresh Debian 12 machine.
# Ends with a table of each stage's wall time (CI must stay well inside its limit).
set -euo pipefail
cd "$(dirname "$0")/.."
stages=()
stage() {
    local name=$1
    shift
    local started=$SECONDS
    echo "=== $name: $*"
    "$@"
    stages+=("$(printf '%-34s %6d s' "$name" $((SECONDS - started)))")
}
report() {
    echo
    echo "stage                              wall time"
    printf '%s\n' "${stages[@]}"
    echo "total                              $(printf '%6d' "$SECONDS") s"
}
trap report EXIT
stage "install dependencies" bash .ci/install-deps test
stage "rustfmt" cargo fmt --check
stage "import cycles" python3 tests/tools/import_cycles.py
stage "clippy" cargo clippy --all-targets --locked -- -D warnings
stage "clippy (jetson: no demo, cuda)" cargo clippy --all-targets --locked --no-default-features --features cuda -- -D warnings
stage "cargo test (x86-64)" cargo test --locked
stage "aarch64 build + QEMU tier" bash cross/test.sh
