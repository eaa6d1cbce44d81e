#!/usr/bin/env bash
# What the Jetson binary is made of: code and data size by crate, from the symbol table of an
# unstripped `jetson`-profile build (the shipped binary is the same build, stripped). The same
# idea as `cargo bloat --crates` (which cannot drive cargo-zigbuild's cross link): each symbol's
# size is charged to the crate its demangled path starts with; C/C++ symbols (CharLS, OpenJPEG,
# mimalloc, ring's assembly, libjpeg-turbo) are grouped by their library's prefixes.
#
#   bash cross/size-by-crate.sh [UNSTRIPPED_BINARY]   (default: builds one)
set -euo pipefail
cd "$(dirname "$0")/.."
GLIBC=${GLIBC:-2.31}
TARGET=aarch64-unknown-linux-gnu
bin=${1:-}
if [ -z "$bin" ]; then
    bash .ci/install-deps build
    bash cross/install-deps build
    CARGO_PROFILE_JETSON_STRIP=false cargo zigbuild --profile jetson --locked \
        --target "$TARGET.$GLIBC" --bin ismf --no-default-features
    bin=target/$TARGET/jetson/ismf
fi
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
aarch64-linux-gnu-strip -o "$stripped" "$bin"
total=$(stat -c %s "$stripped")
aarch64-linux-gnu-nm --size-sort -S -C "$bin" | python3 -c '
import re, sys
total = int(sys.argv[1])
sizes = {}
c_prefixes = [
    ("charls (JPEG-LS, C++)", ("charls", "CharLS", "jpegls")),
    ("openjpeg (JPEG 2000, C)", ("opj_", "j2k_", "jp2_", "t1_", "t2_", "tcd_", "mqc_", "pi_", "tgt_", "dwt_", "mct_", "bio_", "cio_", "sparse_array", "ht_dec")),
    ("libjpeg-turbo (C)", ("jpeg_", "jinit_", "jsimd_", "jcopy_", "jzero_", "jdiv_", "jround_")),
    ("mimalloc (C)", ("mi_", "_mi_")),
    ("ring (C/asm)", ("ring_core_", "GFp_", "ecp_nistz", "sha256_block", "sha512_block", "ChaCha20", "aes_", "gcm_", "bn_")),
]
for line in sys.stdin:
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 4:
        continue
    size, kind, name = int(parts[1], 16), parts[2], parts[3]
    if kind not in "tTrRdDbB":
        continue
    n = name.lstrip("<&*")
    n = re.sub(r"^(impl |dyn |\(|\[|mut |const )+", "", n)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", n)
    crate = None
    if m:
        crate = m.group(1)
    else:
        for label, prefixes in c_prefixes:
            if n.startswith(prefixes):
                crate = label
                break
    if crate is None:
        crate = "[other C / runtime symbols]"
    # Rust paths use the crate name with underscores; `core`/`alloc`/`std` are the standard library.
    sizes[crate] = sizes.get(crate, 0) + size
named = sum(sizes.values())
print(f"stripped binary: {total / 1e6:.1f} MB; symbols below add up to {named / 1e6:.1f} MB (the rest: section headers, unwind tables, dynamic symbols, relocations)")
print()
print("| crate | size (MB) | share of symbols |")
print("|---|---:|---:|")
for crate, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:25]:
    print(f"| {crate} | {size / 1e6:.2f} | {100 * size / named:.1f} % |")
rest = sorted(sizes.items(), key=lambda kv: -kv[1])[25:]
if rest:
    print(f"| {len(rest)} smaller crates | {sum(s for _, s in rest) / 1e6:.2f} | {100 * sum(s for _, s in rest) / named:.1f} % |")
' "$total"
