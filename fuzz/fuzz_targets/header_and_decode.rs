//! Arbitrary bytes as a DICOM file: the header read (ingest) and the pixel decode must return
//! an error or a value, never panic, hang or allocate past the voxel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The product's allocator, so that the fuzzer sees what the appliance would do.
#[global_allocator]
static ALLOCATOR: ismf::alloc::BoundedAllocator = ismf::alloc::BoundedAllocator;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on every panic, caught or not. `decode_file` deliberately catches
    // codec panics (they become per-file errors), so restore the default hook: a panic that
    // escapes our code still aborts the input through libfuzzer-sys's own catch_unwind.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
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
