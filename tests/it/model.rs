//! The committed model files against their card and against onnxruntime.
//!
//! `models/reference-outputs.json` holds onnxruntime's probabilities (written by
//! `models/export.py`) for a few simulated studies made by `ismf dataset`. The inputs are not
//! committed: the simulator is deterministic, so the test regenerates them through the same
//! pipeline and first checks that their sums still match what onnxruntime was fed.

use crate::common::{card_copy, model_card};
use ismf::dataset::study_tensors;
use ismf::model::{Model, ModelError, Precision, CLASSES};
use ismf::preprocess::PreprocessParams;
use ismf::simulate::{Site, StudyOptions};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(model_card().with_file_name("reference-outputs.json"))
        .expect("reference");
    serde_json::from_str(&text).expect("reference json")
}

fn probs(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| p.as_f64().expect("number") as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(p: &[f32]) -> usize {
    (0..p.len()).fold(0, |best, i| if p[i] > p[best] { i } else { best })
}

#[test]
fn tract_matches_onnxruntime_for_every_committed_variant() {
    let reference = reference();
    let ds = &reference["dataset"];
    let site = match ds["site"].as_str().expect("site") {
        "external" => Site::External,
        _ => Site::Internal,
    };
    let opts = StudyOptions {
        seed: ds["seed"].as_u64().expect("seed"),
        site,
        classes: Vec::new(),
        vendor: None,
        distractors: Default::default(),
    };
    let params = PreprocessParams::default();
    let scratch = tempfile::tempdir().expect("scratch");
    let studies = ds["studies"].as_u64().expect("studies") as usize;
    let inputs: Vec<_> = (0..studies)
        .map(|i| {
            study_tensors(&opts, i, scratch.path(), &params)
                .expect("study")
                .0
        })
        .collect();
    // The regenerated inputs are the ones onnxruntime saw.
    for (i, input) in inputs.iter().enumerate() {
        let sums = &reference["input_sums"][i];
        for (kind, stack) in &input.stacks {
            let sum: f64 = stack.data.iter().map(|&v| v as f64).sum();
            let want = sums[kind.key()].as_f64().expect("sum");
            assert!(
                (sum - want).abs() < 1e-2,
                "study {i} {}: sum {sum}, reference {want}",
                kind.key()
            );
        }
        let sum: f64 = input.clinical.iter().map(|&v| v as f64).sum();
        assert!((sum - sums["clinical"].as_f64().expect("sum")).abs() < 1e-5);
    }
    assert_eq!(reference["classes"], serde_json::json!(CLASSES));

    let ort = &reference["onnxruntime"];
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(model_card()).expect("card")).expect("json");
    let precisions: Vec<Precision> = card["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| serde_json::from_value(f["precision"].clone()).expect("precision"))
        .collect();
    assert!(precisions.contains(&Precision::F32) && precisions.contains(&Precision::Int8));
    for precision in precisions {
        let model = Model::load(&model_card(), precision, &params).expect("load");
        // f32 and int8 are compared with onnxruntime on the same file; f16 is the f32 file in
        // half precision, compared with onnxruntime's f32.
        let (peer, tolerance) = match precision {
            Precision::F32 => ("f32", 1e-4),
            Precision::Int8 => ("int8", 2e-2),
            Precision::F16 => ("f32", 2e-2),
        };
        let mut worst = 0f32;
        for (i, input) in inputs.iter().enumerate() {
            let got = model.run(input).expect("run");
            let want = probs(&ort[peer][i]);
            let diff = max_diff(&got, &want);
            worst = worst.max(diff);
            assert!(
                diff <= tolerance,
                "{precision} study {i}: tract {got:?} vs onnxruntime {peer} {want:?} (max diff {diff})"
            );
            assert_eq!(
                argmax(&got),
                argmax(&want),
                "{precision} study {i}: top class differs"
            );
            assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-2);
        }
        eprintln!(
            "{precision}: max |tract - onnxruntime {peer}| = {worst:.2e} over {studies} studies"
        );
    }
}

#[test]
fn card_mismatches_are_refused_with_what_differs() {
    let dir = tempfile::tempdir().expect("dir");
    let params = PreprocessParams::default();

    let path = card_copy(dir.path(), |_, c| {
        c["files"][0]["sha256"] = Value::String("0".repeat(64));
    });
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("card")).expect("json");
    let precision: Precision =
        serde_json::from_value(card["files"][0]["precision"].clone()).expect("precision");
    match Model::load(&path, precision, &params) {
        Err(ModelError::Hash { card, actual, .. }) => {
            assert_eq!(card, "0".repeat(64));
            assert_eq!(actual.len(), 64);
        }
        other => panic!("expected a hash error, got {other:?}"),
    }

    let path = card_copy(dir.path(), |_, c| {
        c["inputs"][3]["grid"]["pixel_mm"] = serde_json::json!(1.0);
        c["inputs"][0]["name"] = Value::String("t1".into());
        c["classes"] = serde_json::json!(["SCN", "MNG", "AST", "EPN", "LYM"]);
    });
    let err = Model::load(&path, Precision::F32, &params).expect_err("refused");
    let text = err.to_string();
    for needle in [
        "inputs[3]",
        "pixel_mm",
        "inputs[0] (t1).name",
        "classes",
        "LYM",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }

    let mut other = params.clone();
    other.sagittal.size = 128;
    let err = Model::load(&model_card(), Precision::F32, &other).expect_err("refused");
    assert!(err.to_string().contains("preprocessing"), "{err}");
}
