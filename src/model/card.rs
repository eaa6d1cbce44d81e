//! The model card (`models/model-card.json`): what a model file is and what it expects.
//!
//! The appliance runs any model whose card honours this contract, so the card is checked before a
//! byte of the model is trusted: every file's sha256, the precision asked for, and every input
//! against what [`crate::preprocess`] produces. A mismatch is refused with an error that names
//! the field, what the card says and what the pipeline makes — a hospital dropping in real
//! weights must learn exactly what to fix.

use super::error::ModelError;
use super::variant::Precision;
use crate::preprocess::{Grid, PreprocessParams, CLINICAL_LAYOUT};
use crate::series::SequenceKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Class codes in the order the appliance reports probabilities (the paper's order).
pub const CLASSES: [&str; 5] = ["SCN", "MNG", "AST", "EPN", "MET"];

/// Where an installed appliance keeps its model card (the deployment guide's layout).
pub const INSTALLED_CARD: &str = "/opt/ismf/models/model-card.json";

/// The environment variable that names a model card.
pub const CARD_ENV: &str = "ISMF_MODEL_CARD";

/// The model card an installed tool uses: `explicit` (a `--card` given) as it is; else the file
/// [`CARD_ENV`] names; else [`INSTALLED_CARD`]; else `models/model-card.json` under the working
/// directory (a checkout). When none exists the error lists every place looked at.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ModelError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let mut looked = Vec::new();
    let env = std::env::var_os(CARD_ENV).map(PathBuf::from);
    let candidates = env
        .iter()
        .map(|p| (p.clone(), format!("{} (${CARD_ENV})", p.display())))
        .chain([
            (PathBuf::from(INSTALLED_CARD), INSTALLED_CARD.to_string()),
            (
                PathBuf::from("models/model-card.json"),
                std::path::absolute("models/model-card.json")
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "models/model-card.json".into()),
            ),
        ]);
    for (path, shown) in candidates {
        if path.is_file() {
            return Ok(path);
        }
        looked.push(shown);
    }
    Err(ModelError::NoCard { looked })
}

/// The card as a file holds it. Descriptive sections are kept as JSON values: the appliance
/// republishes them but does not interpret them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub schema_version: u32,
    pub name: String,
    pub version: String,
    /// Shown with every prediction.
    pub notice: String,
    pub intended_use: String,
    pub files: Vec<CardFile>,
    pub inputs: Vec<CardInput>,
    pub outputs: Vec<CardOutput>,
    /// Class codes in output order.
    pub classes: Vec<String>,
    /// The preprocessing the model was trained with, in [`PreprocessParams`] form.
    pub preprocessing: PreprocessParams,
    #[serde(default)]
    pub architecture: serde_json::Value,
    #[serde(default)]
    pub training_data: serde_json::Value,
    #[serde(default)]
    pub evaluation: serde_json::Value,
    #[serde(default)]
    pub limitations: Vec<String>,
}

/// One runnable variant of the model.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CardFile {
    /// Relative to the card's folder.
    pub path: String,
    pub sha256: String,
    pub precision: Precision,
    /// A tract transform applied at load time (`f32_to_f16` runs the f32 file in half precision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
}

/// One model input.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    /// The graph's input name; for a sequence it contains the sequence key.
    pub name: String,
    /// `sag_t1w`, `sag_t2w`, `sag_t2fs` or `ax_t2w`; absent for the clinical vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// True for the clinical vector.
    #[serde(default)]
    pub clinical: bool,
    pub shape: Vec<usize>,
    pub dtype: String,
    /// For a sequence: the grid its stack is resampled to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Grid>,
    /// For the clinical vector: the value names in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Vec<String>>,
    /// Free text: how intensities were normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<String>,
}

/// One model output.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CardOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    pub meaning: String,
}

/// Where each graph input's values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSource {
    Sequence(SequenceKind),
    Clinical,
}

/// A card that passed every check, with the file chosen for one precision.
#[derive(Clone, Debug)]
pub struct CheckedCard {
    pub card: ModelCard,
    pub card_path: PathBuf,
    pub file: CardFile,
    pub file_path: PathBuf,
    /// Graph inputs in card order.
    pub sources: Vec<InputSource>,
    /// `class_order[i]` = index in the card's output of [`CLASSES`]`[i]`.
    pub class_order: [usize; 5],
}

impl ModelCard {
    pub fn read(path: &Path) -> Result<ModelCard, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ModelError::Card {
            path: path.to_path_buf(),
            problems: vec![e.to_string()],
        })
    }
}

/// The sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Reads and checks the card at `path` for `precision` against what `params` make. Every
/// problem found is listed, not just the first.
pub fn check(
    path: &Path,
    precision: Precision,
    params: &PreprocessParams,
) -> Result<CheckedCard, ModelError> {
    let card = ModelCard::read(path)?;
    let mut problems = Vec::new();
    let sources = check_inputs(&card, params, &mut problems);
    let class_order = check_classes(&card, &mut problems);
    if card.outputs.len() != 1 {
        problems.push(format!(
            "outputs: the card lists {} outputs; the appliance reads one (probabilities [1, 5])",
            card.outputs.len()
        ));
    } else if card.outputs[0].shape != [1, CLASSES.len()] {
        problems.push(format!(
            "outputs[0].shape: card says {:?}, the appliance reads [1, {}]",
            card.outputs[0].shape,
            CLASSES.len()
        ));
    }
    let file = card
        .files
        .iter()
        .find(|f| f.precision == precision)
        .cloned();
    if file.is_none() {
        let have: Vec<String> = card.files.iter().map(|f| f.precision.to_string()).collect();
        problems.push(format!(
            "files: no {precision} file (the card has: {})",
            have.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(ModelError::Card {
            path: path.to_path_buf(),
            problems,
        });
    }
    let file = file.expect("checked above");
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_path = dir.join(&file.path);
    let actual = sha256_file(&file_path)?;
    if !actual.eq_ignore_ascii_case(&file.sha256) {
        return Err(ModelError::Hash {
            path: file_path,
            card: file.sha256.clone(),
            actual,
        });
    }
    Ok(CheckedCard {
        card,
        card_path: path.to_path_buf(),
        file,
        file_path,
        sources,
        class_order: class_order.unwrap_or([0, 1, 2, 3, 4]),
    })
}

fn check_inputs(
    card: &ModelCard,
    params: &PreprocessParams,
    problems: &mut Vec<String>,
) -> Vec<InputSource> {
    if card.preprocessing != *params {
        problems.push(format!(
            "preprocessing: card says {}, this appliance makes {}",
            json(&card.preprocessing),
            json(params)
        ));
    }
    let mut sources = Vec::new();
    for (i, input) in card.inputs.iter().enumerate() {
        let at = format!("inputs[{i}] ({})", input.name);
        if input.dtype != "float32" {
            problems.push(format!(
                "{at}.dtype: card says {}, the appliance feeds float32",
                input.dtype
            ));
        }
        match (&input.sequence, input.clinical) {
            (Some(key), false) => {
                let Some(kind) = SequenceKind::REQUIRED.into_iter().find(|k| k.key() == key) else {
                    problems.push(format!("{at}.sequence: unknown sequence {key:?}"));
                    continue;
                };
                if !input.name.contains(key.as_str()) {
                    problems.push(format!(
                        "{at}.name: does not contain its sequence key {key:?}"
                    ));
                }
                let grid = if kind == SequenceKind::AxT2w {
                    &params.axial
                } else {
                    &params.sagittal
                };
                let want = [1, grid.slices, grid.size, grid.size];
                if input.shape != want {
                    problems.push(format!(
                        "{at}.shape: card says {:?}, preprocessing makes {want:?}",
                        input.shape
                    ));
                }
                if input.grid.as_ref() != Some(grid) {
                    problems.push(format!(
                        "{at}.grid: card says {}, preprocessing makes {}",
                        json(&input.grid),
                        json(grid)
                    ));
                }
                sources.push(InputSource::Sequence(kind));
            }
            (None, true) => {
                if input.shape != [1, CLINICAL_LAYOUT.len()] {
                    problems.push(format!(
                        "{at}.shape: card says {:?}, preprocessing makes [1, {}]",
                        input.shape,
                        CLINICAL_LAYOUT.len()
                    ));
                }
                let layout: Vec<&str> = CLINICAL_LAYOUT.to_vec();
                let card_layout: Option<Vec<&str>> = input
                    .layout
                    .as_ref()
                    .map(|l| l.iter().map(String::as_str).collect());
                if card_layout.as_ref() != Some(&layout) {
                    problems.push(format!(
                        "{at}.layout: card says {card_layout:?}, preprocessing makes {layout:?}"
                    ));
                }
                sources.push(InputSource::Clinical);
            }
            _ => problems.push(format!(
                "{at}: must name exactly one of `sequence` or `clinical: true`"
            )),
        }
    }
    for kind in SequenceKind::REQUIRED {
        if !sources.contains(&InputSource::Sequence(kind)) {
            problems.push(format!("inputs: no input for sequence {:?}", kind.key()));
        }
    }
    if sources.len() != card.inputs.len() || sources.len() != 5 {
        problems.push(format!(
            "inputs: the card lists {} inputs; the appliance feeds 5 (four sequences and the clinical vector)",
            card.inputs.len()
        ));
    }
    sources
}

fn check_classes(card: &ModelCard, problems: &mut Vec<String>) -> Option<[usize; 5]> {
    let mut order = [0usize; 5];
    let mut ok = card.classes.len() == CLASSES.len();
    for (i, class) in CLASSES.iter().enumerate() {
        match card.classes.iter().position(|c| c == class) {
            Some(p) => order[i] = p,
            None => ok = false,
        }
    }
    if ok {
        Some(order)
    } else {
        problems.push(format!(
            "classes: card says {:?}, the appliance needs an order of {:?}",
            card.classes, CLASSES
        ));
        None
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("<{e}>"))
}
