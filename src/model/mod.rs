//! ISMF-Net behind its model card: [`card`] checks what a model file is and expects,
//! [`runtime`] runs it on tract (f32, int8 QOperator file, or f32 file in f16).

pub mod card;
pub mod export;
pub mod runtime;

pub use card::{CheckedCard, ModelCard};
pub use export::{export_onnx, ExportError};
pub use runtime::{set_threads, Model, Probabilities};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Class codes in the order the appliance reports probabilities (the paper's order).
pub const CLASSES: [&str; 5] = ["SCN", "MNG", "AST", "EPN", "MET"];

/// Which variant of the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    Int8,
    F16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
            Precision::F16 => "f16",
        })
    }
}

/// Where tract runs the model.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// tract on the CPU.
    #[default]
    Cpu,
    /// tract's CUDA runtime (builds with `--features cuda`); fails when CUDA is not usable.
    Cuda,
    /// CUDA when this build and machine have it, else the CPU (logged with the reason).
    Auto,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
            Backend::Auto => "auto",
        })
    }
}

/// Errors of loading and running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
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
    #[error("{path}: tract: {message}")]
    Tract { path: PathBuf, message: String },
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
    #[error("backend {backend}: {reason}")]
    Backend { backend: Backend, reason: String },
}
