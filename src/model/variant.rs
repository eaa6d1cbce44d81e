//! Which variant of the model runs ([`Precision`]) and where ([`Backend`]).

use serde::{Deserialize, Serialize};

/// Which variant of the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    Int8,
    F16,
}

crate::named::named_words!(Precision, "precision", { F32 => "f32", Int8 => "int8", F16 => "f16" });

/// Where tract runs the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

crate::named::named_words!(Backend, "backend", { Cpu => "cpu", Cuda => "cuda", Auto => "auto" });
