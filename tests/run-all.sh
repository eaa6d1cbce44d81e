#!/usr/bin/env bash
# The README's test command: installs the system packages the build and tests need (only those
# missing), then runs formatting, lint and every test. Works on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps test
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
