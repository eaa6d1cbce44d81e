//! What the results are made from, how their UIDs are derived, and their errors: the leaf the
//! other results modules share.

use crate::explain::Explanation;
use crate::model::Probabilities;
use crate::preprocess::PlaneSource;
use crate::publish::message::Prediction;
use std::path::PathBuf;

/// Errors of producing results, naming the series or file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{series}: cannot render the key image: {reason}")]
    Render { series: String, reason: String },
    #[error("{path}: cannot read the source header: {reason}")]
    Source { path: PathBuf, reason: String },
    #[error("cannot encode the {kind}: {reason}")]
    Encode { kind: &'static str, reason: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

const UID_NAMESPACE: uuid::Uuid = uuid::uuid!("0f3c7f5e-2d7b-4b8e-a3f1-6c1d9e4b7a52");

/// A DICOM UID for `kind` ("sr", "sr-series", …) of the study's results under this model:
/// `2.25.` + the UUIDv5 of (study UID, model sha256, kind) as a decimal integer (PS3.5 B.2).
pub fn derived_uid(study_uid: &str, model_sha256: &str, kind: &str) -> String {
    let name = format!("{study_uid}\n{model_sha256}\n{kind}");
    let u = uuid::Uuid::new_v5(&UID_NAMESPACE, name.as_bytes());
    format!("2.25.{}", u.as_u128())
}

/// Largest key-image PNG (it travels over MQTT to reading-room clients).
pub const PNG_MAX_BYTES: usize = 300 * 1024;

impl<'a> ResultInputs<'a> {
    /// The inputs of a classified study.
    pub fn of(c: &'a crate::classify::Classified, max_voxels: u64) -> ResultInputs<'a> {
        ResultInputs {
            prediction: &c.prediction,
            probabilities: &c.probabilities,
            explanation: c.explanation.as_ref(),
            sources: &c.sources,
            max_voxels,
        }
    }
}

/// What results are made from.
#[derive(Clone, Copy, Debug)]
pub struct ResultInputs<'a> {
    pub prediction: &'a Prediction,
    pub probabilities: &'a Probabilities,
    /// The maps; without them there is no key image (`[results] explain = false`).
    pub explanation: Option<&'a Explanation>,
    /// Every acquired plane the model read (the SR's image library and evidence).
    pub sources: &'a [PlaneSource],
    pub max_voxels: u64,
}
