//! Arbitrary bytes as a DICOM file: the header read (ingest) and the pixel decode must return
//! an error or a value, never panic, hang or allocate past the voxel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    // The readers take paths, as ingest does: write the bytes to a per-process temp file.
    let path = std::env::temp_dir().join(format!("ismf-fuzz-{}.dcm", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else { return };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    let _ = ismf::ingest::catalog::read_header(&path);
    let _ = ismf::pixels::decode_file(&path, 4 * 1024 * 1024);
});
