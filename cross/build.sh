#!/usr/bin/env bash
# Builds the release `ismf` for aarch64-unknown-linux-gnu (Jetson) against an old glibc baseline
# (default 2.31 = JetPack 5 / Ubuntu 20.04), installing what it needs when missing: the rustup
# target, the ziglang package from PyPI (zig is the cross C/C++ compiler and links against the
# chosen glibc's symbol versions), cargo-zigbuild, and binutils for aarch64 (strip, objdump).
#
#   bash cross/build.sh            → target/cross/ismf-aarch64 (stripped) + its GLIBC requirement
#   GLIBC=2.35 bash cross/build.sh (JetPack 6)
#   FEATURES=cuda GLIBC=2.35 bash cross/build.sh (JetPack 6 with tract's CUDA backend)
set -euo pipefail
cd "$(dirname "$0")/.."
GLIBC=${GLIBC:-2.31}
TARGET=aarch64-unknown-linux-gnu
bash .ci/install-deps build
bash cross/install-deps build
# The `jetson` profile (Cargo.toml): release with fat LTO, one codegen unit, no debug info; and
# no default features: the appliance never runs `ismf demo` and its embedded broker.
cargo zigbuild --profile jetson --locked --target "$TARGET.$GLIBC" --bin ismf --no-default-features ${FEATURES:+--features "$FEATURES"}
mkdir -p target/cross
aarch64-linux-gnu-strip -o target/cross/ismf-aarch64 "target/$TARGET/jetson/ismf"
need=$(aarch64-linux-gnu-objdump -T target/cross/ismf-aarch64 | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
size=$(stat -c %s target/cross/ismf-aarch64)
echo "target/cross/ismf-aarch64: $(awk -v s="$size" 'BEGIN {printf "%.1f MB", s / 1e6}') stripped, needs $need (baseline $GLIBC)"
