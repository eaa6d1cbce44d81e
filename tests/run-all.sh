#!/usr/bin/env bash
# The README's test command: installs the system packages the build and tests need (only those
# missing), then runs formatting, lint and every test on x86-64, the lint of the CUDA build
# (`--features cuda` compiles without CUDA installed), and the aarch64 suite under QEMU.
# Works on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps test
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
cargo clippy --all-targets --locked --features cuda -- -D warnings
bash cross/test.sh
