//! Inputs the fuzzer once crashed on: each must now be an error naming the file, with the peak
//! memory of the whole test far below the gigabytes they once claimed.

// The appliance's allocator: its ceiling is the backstop for paths the guard does not model.
#[global_allocator]
static ALLOCATOR: ismf::alloc::BoundedAllocator = ismf::alloc::BoundedAllocator;

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
        "oom-unmodelled-path.dcm",
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
