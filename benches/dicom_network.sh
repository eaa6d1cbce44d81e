#!/usr/bin/env bash
# DICOM networking on loopback (benches/dicom_network.py): receive throughput of `ismf run`'s
# receiver against dcmtk's storescp (interleaved), peak RSS while a ~100 MB multi-frame instance
# arrives, and the send latency of a study's results to Orthanc. Needs dcmtk, Orthanc and
# python3-pydicom (.ci/install-deps test). Prints the machine and Markdown for BENCHMARKS.md.
# Usage: benches/dicom_network.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ismf
exec python3 benches/dicom_network.py "$@"
