//! The one error type of the model stage; each variant names the file or input, and keeps the
//! cause (an I/O error, tract's error) as its source.

use super::variant::Backend;
use std::path::PathBuf;
use tract_onnx::prelude::TractError;

/// Errors of loading and running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the model card is not usable here:\n  - {}", problems.join("\n  - "))]
    Card {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("{path}: sha256 is {actual}, the model card says {card}; refusing a file the card does not describe")]
    Hash {
        path: PathBuf,
        card: String,
        actual: String,
    },
    #[error("{path}: tract")]
    Tract {
        path: PathBuf,
        #[source]
        source: TractError,
    },
    #[error("the study's inputs have no {0} stack")]
    MissingInput(&'static str),
    #[error("input {name}: {actual} values given, the model takes {expected}")]
    InputSize {
        name: String,
        expected: usize,
        actual: usize,
    },
    #[error("the model output {0} values; the appliance expects 5 class probabilities")]
    OutputSize(usize),
    #[error("no model card found; looked in: {}", looked.join(", "))]
    NoCard { looked: Vec<String> },
    #[error("backend {backend}: {reason}")]
    Backend { backend: Backend, reason: String },
}
