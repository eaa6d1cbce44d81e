//! Agreement of every model variant with f32, measured through tract on stored tensors.
//!
//! `cargo run --release --example variant_agreement -- CARD DATASET_DIR SPLITS_JSON SPLIT [OUT] [F16_ROWS]`
//!
//! F16_ROWS limits f16 to the split's first rows (default: all): on x86-64 tract has no native
//! half-precision arithmetic and emulates it (≈ 1 s a study here, against ≈ 6 ms in f32); on
//! aarch64 with FP16 it runs native kernels.
//!
//! Runs each precision the card lists on the rows `SPLITS_JSON[SPLIT]` of a dataset written by
//! `ismf dataset`, and prints (and writes to OUT) per precision: accuracy against the labels,
//! top-1 agreement with f32, and the largest and mean absolute probability difference from f32.
//! `models/train.sh` runs it on the internal test split and the model card quotes the result.

use anyhow::Context;
use ismf::model::{Model, ModelCard, Precision};
use ismf::npy::NpyArray;
use ismf::preprocess::PreprocessParams;
use serde_json::json;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [card, data, splits, split, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: variant_agreement CARD DATASET_DIR SPLITS_JSON SPLIT [OUT]");
    };
    let splits: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(splits).with_context(|| format!("reading {splits}"))?,
    )?;
    let rows: Vec<usize> = splits[split.as_str()]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{split}: no such split"))?
        .iter()
        .filter_map(|v| v.as_u64().map(|v| v as usize))
        .collect();
    let params = PreprocessParams::default();
    let precisions: Vec<Precision> = ModelCard::read(Path::new(card))?
        .files
        .iter()
        .map(|f| f.precision)
        .collect();
    let models: Vec<Model> = precisions
        .iter()
        .map(|p| Model::load(Path::new(card), *p, &params))
        .collect::<Result<_, _>>()?;
    let data = Path::new(data);
    let names: Vec<String> = models[0]
        .card()
        .card
        .inputs
        .iter()
        .map(|i| i.name.clone())
        .collect();
    let arrays: Vec<NpyArray> = names
        .iter()
        .map(|n| NpyArray::open(&data.join(format!("{n}.npy"))))
        .collect::<Result<_, _>>()?;
    let labels = NpyArray::open(&data.join("labels.npy"))?.read_all_i64()?;

    let f16_rows: usize = match rest.get(1) {
        Some(n) => n.parse().with_context(|| format!("F16_ROWS {n:?}"))?,
        None => usize::MAX,
    };
    let mut outputs = vec![Vec::new(); models.len()];
    for (k, &row) in rows.iter().enumerate() {
        let raw: Vec<Vec<f32>> = arrays
            .iter()
            .map(|a| a.read_f32(row, 1))
            .collect::<Result<_, _>>()?;
        for (m, model) in models.iter().enumerate() {
            if precisions[m] != Precision::F16 || k < f16_rows {
                outputs[m].push(model.run_raw(&raw)?);
            }
        }
    }
    let argmax = |p: &[f32; 5]| (0..5).fold(0, |b, i| if p[i] > p[b] { i } else { b });
    let f32_index = precisions
        .iter()
        .position(|p| *p == Precision::F32)
        .ok_or_else(|| anyhow::anyhow!("the card has no f32 file"))?;
    let mut report = serde_json::Map::new();
    for (m, precision) in precisions.iter().enumerate() {
        let (mut agree, mut correct, mut max_diff, mut sum_diff) = (0, 0, 0f32, 0f64);
        let n = outputs[m].len();
        for (k, &row) in rows.iter().take(n).enumerate() {
            let (p, r) = (&outputs[m][k], &outputs[f32_index][k]);
            agree += usize::from(argmax(p) == argmax(r));
            correct += usize::from(argmax(p) as i64 == labels[row]);
            for (a, b) in p.iter().zip(r) {
                max_diff = max_diff.max((a - b).abs());
                sum_diff += f64::from((a - b).abs());
            }
        }
        let n_f = n.max(1) as f64;
        report.insert(
            precision.to_string(),
            json!({
                "n": n,
                "accuracy": correct as f64 / n_f,
                "top1_agreement_with_f32": agree as f64 / n_f,
                "max_probability_difference": max_diff,
                "mean_probability_difference": sum_diff / (n_f * 5.0),
                "load_ms": models[m].load_ms(),
            }),
        );
    }
    let report = json!({ "split": split, "runtime": "tract 0.23.9", "variants": report });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(out) = rest.first() {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
