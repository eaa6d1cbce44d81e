//! # ISMF Edge
//!
//! A scanner-side appliance that classifies intraspinal tumours (schwannoma, meningioma,
//! astrocytoma, ependymoma, metastasis) with ISMF-Net from four spine MRI sequences and clinical
//! data. **Research software: not for diagnostic use.**
//!
//! ## Layout
//!
//! The crate follows `shared/ARCHITECTURE.md`; only the stages built so far exist.
//!
//! | module | holds |
//! |---|---|
//! | [`ingest`] | header-only reads, the Study → Series → Instance catalog, folder scans |
//! | [`series`] | sequence identification rules (sag T1W/T2W/T2FS, ax T2W) with reasons |
//! | [`dicom_guard`] | refuses forged element lengths before dicom-rs allocates for them |
//! | [`pixels`] | DICOM pixel decoding into float volumes (all native codecs), with limits |
//! | [`preprocess`] | volumes → 2.5-D model stacks, normalisation, clinical vector |
//! | [`inspect`] | `ismf inspect`: offline report of studies, sequences and problems |
//! | [`simulate`] | the synthetic scanner: anatomy, lesions, MR signal, DICOM writer, export |
//! | [`alloc`] | the process allocator: mimalloc with a ceiling on single allocations |
//! | [`model`] | the model card check, ISMF-Net on tract (f32 / int8 / f16, CPU or CUDA), ONNX export |
//! | [`eval`] | scores against truth: micro-accuracy with bootstrap CI, per-class F1, confusion |
//! | [`publish`] | the published messages, the durable outbox, the MQTT 5 publisher and subscriber |
//! | [`demo`] | `ismf demo`: embedded broker + realtime simulator + appliance + subscriber |
//! | [`pipeline`] | `ismf run`: watcher → ingest → inference thread → outbox → MQTT, shutdown |
//! | [`config`] | the firmware configuration (TOML, unknown keys refused, every problem listed) |
//! | [`classify`] | one study folder through scan, preprocessing and the model → prediction |
//! | [`dataset`] | `ismf dataset`: training tensors through the serving pipeline |
//! | [`bench`] | `ismf bench`: decode + preprocess timing, header scans, peak memory |
//! | [`npy`] | streaming NumPy `.npy` writer (decode output, training tensors) |
//! | [`logging`] | tracing subscriber set-up shared by the binary and tests |
//!
//! The core is synchronous: rendering and encoding are plain functions over owned data, with
//! rayon for data parallelism; async code (tokio) lives only at the edges: the MQTT publisher
//! and subscriber.

pub mod alloc;
pub mod bench;
pub mod classify;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod dicom_guard;
pub mod eval;
pub mod ingest;
pub mod inspect;
pub mod logging;
pub mod model;
pub mod npy;
pub mod pipeline;
pub mod pixels;
pub mod preprocess;
pub mod publish;
pub mod series;
pub mod simulate;

// tract finds its CUDA runtime through a link-time registry: the crate must be linked in even
// though nothing calls it by name.
#[cfg(feature = "cuda")]
use tract_cuda as _;
