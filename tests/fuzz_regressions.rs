//! Inputs the fuzzer once crashed on: each must now be an error naming the file, with memory
//! bounded (run under a 1 GiB address-space limit by nothing but their own size).

use ismf::ingest::catalog::read_header;
use ismf::pixels::{decode_file, DEFAULT_MAX_VOXELS};
use std::path::PathBuf;

#[test]
fn fuzz_crashes_are_errors() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fuzz"));
    for name in [
        "oom-forged-length-1.dcm",
        "oom-forged-length-2.dcm",
        "rle-short-segment.dcm",
        "j2k-short-fragment.dcm",
        "oom-encapsulated-fragment.dcm",
        "oom-un-sequence-item.dcm",
    ] {
        let path = dir.join(name);
        assert!(path.exists(), "{} missing", path.display());
        let _ = read_header(&path);
        let e = decode_file(&path, DEFAULT_MAX_VOXELS).expect_err(name);
        assert!(e.to_string().contains(name), "{e}");
    }
    let peak = ismf::bench::peak_rss_mib().unwrap_or(0.0);
    assert!(peak < 1024.0, "peak RSS {peak} MiB");
}
