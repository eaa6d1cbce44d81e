//! A copy of a model whose learned weights are destroyed, for the explanation maps'
//! model-randomisation check (Adebayo et al., "Sanity checks for saliency maps", 2018): every
//! float initializer of the f32 file is permuted within itself by a seeded shuffle, so each
//! tensor keeps its values' distribution (and the activations their scale) while what the
//! weights learned is gone. The copy is written beside a card naming it, with its own sha256.

use super::card::{CardFile, ModelCard};
use super::error::ModelError;
use super::variant::Precision;
use prost::Message;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tract_onnx::pb::{tensor_proto::DataType, ModelProto};

/// Writes `<out>/randomised.onnx` and `<out>/model-card.json` from the card at `card_path`;
/// returns the new card's path.
pub fn write_randomised(card_path: &Path, out: &Path, seed: u64) -> Result<PathBuf, ModelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    let card = ModelCard::read(card_path)?;
    let f32_file = card
        .files
        .iter()
        .find(|f| f.precision == Precision::F32 && f.transform.is_none())
        .ok_or_else(|| ModelError::Card {
            path: card_path.to_path_buf(),
            problems: vec!["files: no f32 file to randomise".into()],
        })?;
    let src = card_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&f32_file.path);
    let bytes = std::fs::read(&src).map_err(io(&src))?;
    let mut model = ModelProto::decode(bytes.as_slice()).map_err(|e| ModelError::Card {
        path: src.clone(),
        problems: vec![format!("not an ONNX model: {e}")],
    })?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    if let Some(graph) = model.graph.as_mut() {
        for t in graph.initializer.iter_mut() {
            if t.data_type != DataType::Float as i32 {
                continue;
            }
            if !t.float_data.is_empty() {
                t.float_data.shuffle(&mut rng);
            } else if !t.raw_data.is_empty() {
                let mut v: Vec<[u8; 4]> = t
                    .raw_data
                    .chunks_exact(4)
                    .map(|c| [c[0], c[1], c[2], c[3]])
                    .collect();
                v.shuffle(&mut rng);
                t.raw_data = v.concat();
            }
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let onnx = out.join("randomised.onnx");
    let encoded = model.encode_to_vec();
    std::fs::write(&onnx, &encoded).map_err(io(&onnx))?;
    let mut copy = card;
    copy.name = format!("{}-randomised", copy.name);
    copy.files = vec![CardFile {
        path: "randomised.onnx".into(),
        sha256: format!("{:x}", Sha256::digest(&encoded)),
        precision: Precision::F32,
        transform: None,
    }];
    let card_out = out.join("model-card.json");
    let text = serde_json::to_string_pretty(&copy).map_err(|e| ModelError::Card {
        path: card_out.clone(),
        problems: vec![e.to_string()],
    })?;
    std::fs::write(&card_out, text).map_err(io(&card_out))?;
    Ok(card_out)
}
