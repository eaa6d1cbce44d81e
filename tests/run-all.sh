#!/usr/bin/env bash
# The README's test command: installs the system packages the tests need (only those missing),
# then runs formatting, lint and every test. Safe to run on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dcmdump >/dev/null 2>&1 || need+=(dcmtk)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
/usr/bin/python3 -c 'import pydicom, numpy' >/dev/null 2>&1 || need+=(python3-pydicom python3-numpy)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing test dependencies: ${need[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
