//! ISMF-Net behind its model card: [`card`] checks what a model file is and expects,
//! [`runtime`] runs it on tract (f32, int8 QOperator file, or f32 file in f16).

pub mod card;
pub mod export;
pub mod randomise;
pub mod runtime;

mod error;
mod variant;

pub use card::{locate as locate_card, CheckedCard, ModelCard, CLASSES};
pub use error::ModelError;
pub use export::{export_onnx, ExportError};
pub use runtime::{set_threads, Model, Probabilities};
pub use variant::{Backend, Precision};
