//! The whole-flow tests, one module per flow, in one test binary: tract and the rest of the
//! crate are linked once instead of once per flow. `cargo test --test it -- MODULE::` runs one
//! flow (`cross/test.sh` runs a few this way under QEMU). The fuzz regressions are a binary of
//! their own (`tests/fuzz_regressions.rs`): they install the appliance's allocator.

mod common;

mod classify;
mod daemon;
mod dataset;
mod dicom;
mod export_onnx;
mod ingest;
mod malformed;
mod model;
mod mqtt;
mod pixels;
mod preprocess;
// The reading room is not part of the appliance (feature `reading-room`); its browser test
// needs x86-64 (the dev-dependencies that drive Chromium are x86-64 only).
#[cfg(all(feature = "reading-room", target_arch = "x86_64"))]
mod reading_room;
mod results;
mod simulate;
mod watch;
