//! The one error type of ingest: every variant names the file and the reason.

use std::path::PathBuf;

/// Errors of ingest, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable DICOM file: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: not an MR image (SOP class {sop_class})")]
    NotAnImage { path: PathBuf, sop_class: String },
    #[error("{path}: required attribute {attribute} is missing or empty")]
    MissingAttribute {
        path: PathBuf,
        attribute: &'static str,
    },
    #[error("{path}: cannot watch: {reason}")]
    Watch { path: PathBuf, reason: String },
}
