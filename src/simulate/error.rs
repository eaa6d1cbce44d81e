//! The one error type of the simulator.

use std::path::PathBuf;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("output folder {path} cannot be written")]
    OutputNotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding DICOM file {path}: {message}")]
    Dicom { path: PathBuf, message: String },
    #[error("writing preview {path}")]
    Preview {
        path: PathBuf,
        source: image::ImageError,
    },
}

impl SimulateError {
    /// True for errors in what the user asked for (exit code 2) rather than in running it.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SimulateError::InvalidOption(_) | SimulateError::OutputNotWritable { .. }
        )
    }
}
