//! # ISMF Edge
//!
//! A scanner-side appliance that classifies intraspinal tumours (schwannoma, meningioma,
//! astrocytoma, ependymoma, metastasis) with ISMF-Net from four spine MRI sequences and clinical
//! data. **Research software: not for diagnostic use.**
//!
//! ## Layout
//!
//! The daemon's path, stage by stage (`docs/ARCHITECTURE.md` in the repository has the data flow,
//! threads and channels, the crash-safety write order, the config → component table and the
//! test tiers):
//!
//! ```text
//! ingest::watch → ingest (catalog, quarantine) → ingest::report + series (identify)
//!   → ingest::complete → pixels (decode) → preprocess → model → publish::outbox → publish::mqtt
//! ```
//!
//! | module | holds |
//! |---|---|
//! | [`ingest`] | the folder watcher, header-only reads, the durable Study → Series → Instance catalog, quarantine, completeness, the study report |
//! | [`series`] | sequence identification rules (sag T1W/T2W/T2FS, ax T2W) with reasons |
//! | [`dicom_guard`] | refuses forged element lengths before dicom-rs allocates for them |
//! | [`pixels`] | DICOM pixel decoding into float volumes (all native codecs), with limits |
//! | [`preprocess`] | volumes → 2.5-D model stacks, normalisation, clinical vector |
//! | [`model`] | the model card check, ISMF-Net on tract (f32 / int8 / f16, CPU or CUDA), ONNX export |
//! | [`classify`] | one study (or folder) through the report, preprocessing and the model → prediction |
//! | [`publish`] | the published messages, the durable outbox, the MQTT 5 publisher and subscriber |
//! | [`network`] | DICOM networking: the Storage SCP scanners send to, the durable PACS queue and Storage SCU for the results |
//! | [`pipeline`] | `ismf run`: watcher and DICOM receiver → ingest → inference thread → outbox → MQTT and PACS, [`pipeline::Shutdown`] |
//! | [`config`] | the firmware configuration: merged over the embedded default, checked once into typed settings |
//! | [`inspect`] | `ismf inspect`: offline report of studies, sequences and problems |
//! | [`eval`] | scores against truth: micro-accuracy with bootstrap CI, per-class F1, confusion |
//! | [`bench`] | `ismf bench`: model latency, decode + preprocess timing, header scans, MQTT cost |
//! | [`simulate`] | the synthetic scanner: spine → lesion → anatomy, MR signal, DICOM writer, export |
//! | [`dataset`] | `ismf dataset`: training tensors through the serving pipeline |
//! | `reading_room` | `ismf reading-room` (feature `reading-room`): the web worklist — persistent-session subscriber, schema checks, durable bounded store, axum page, JSON API and live stream |
//! | `demo` | `ismf demo` (feature `demo`): embedded broker + realtime simulator + appliance + subscriber |
//! | [`alloc`] | the process allocator: mimalloc with a ceiling on single allocations |
//! | [`npy`] | streaming NumPy `.npy` writer (decode output, training tensors) |
//! | [`tls`] | TLS from PEM files (rustls, ring), the same for MQTT and DICOM |
//! | [`logging`] | tracing set-up, [`logging::Chain`] for errors with their causes |
//!
//! The core is synchronous: decoding, preprocessing and inference are plain functions over owned
//! data, with rayon for data parallelism. tokio lives at the edges only — the MQTT publisher and
//! subscriber, the reading room's web server, the DICOM receiver and PACS sender, on a runtime the caller (the binary) owns and hands in; signals are the binary's.

pub mod alloc;
pub mod bench;
pub mod classify;
pub mod config;
pub mod dataset;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dicom_guard;
pub mod eval;
pub mod explain;
pub mod ingest;
pub mod inspect;
pub mod logging;
pub mod model;
mod named;
pub mod network;
pub mod npy;
pub mod pipeline;
pub mod pixels;
pub mod preprocess;
pub mod publish;
#[cfg(feature = "reading-room")]
pub mod reading_room;
pub mod results;
pub mod series;
pub mod simulate;
pub mod tls;

// tract finds its CUDA runtime through a link-time registry: the crate must be linked in even
// though nothing calls it by name.
#[cfg(feature = "cuda")]
use tract_cuda as _;
