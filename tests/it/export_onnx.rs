//! `ismf export-onnx`: the exported fp32 and fp16 graphs give the shipped model's outputs in
//! onnxruntime (the reference runtime a GPU consumer would use), and contract.json describes them.

use crate::common;
use crate::common::{ismf, model_card, onnxruntime_python, stdout_of};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `ismf export-onnx --card CARD --out OUT`.
fn export(card: &Path, out: &Path) -> Output {
    ismf()
        .args(["export-onnx", "--card"])
        .arg(card)
        .arg("--out")
        .arg(out)
        .output()
        .expect("ismf runs")
}

fn argmax(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |best, i| if p[i] > p[best] { i } else { best })
}

#[test]
fn exported_graphs_match_the_shipped_model_in_onnxruntime() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("export");
    let card = model_card();
    let run = export(&card, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // The contract names the card's inputs in order and the files as written.
    let contract = read_json(&out.join("contract.json"));
    let card_json = read_json(&card);
    assert_eq!(contract["inputs"], card_json["inputs"]);
    assert_eq!(contract["classes"], card_json["classes"]);
    assert_eq!(contract["preprocessing"], card_json["preprocessing"]);
    let files = contract["files"].as_array().expect("files");
    assert_eq!(files.len(), 2);
    for f in files {
        let path = out.join(f["path"].as_str().expect("path"));
        let bytes = std::fs::read(&path).expect("exported file");
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(f["sha256"], sha, "{}", path.display());
        assert_eq!(f["io_dtype"], "float32");
    }

    // The same studies through the shipped file and both exports, in onnxruntime.
    let data = dir.path().join("studies");
    stdout_of(
        ismf()
            .args([
                "dataset",
                "--studies",
                "3",
                "--seed",
                "77",
                "--site",
                "internal",
                "--out",
            ])
            .arg(&data),
    );
    let shipped = card.with_file_name("ismf-net-f32.onnx");
    let (fp32, fp16) = (
        out.join("ismf-net-fp32.onnx"),
        out.join("ismf-net-fp16.onnx"),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/ort_probabilities.py");
    let ort = stdout_of(
        onnxruntime_python()
            .arg(&script)
            .arg(&data)
            .args([&shipped, &fp32, &fp16]),
    );
    let probs: Value = serde_json::from_str(&ort).expect("json");
    let rows = |p: &Path| -> Vec<Vec<f64>> {
        serde_json::from_value(probs[p.to_str().expect("utf-8")].clone()).expect("rows")
    };
    let (reference, a, b) = (rows(&shipped), rows(&fp32), rows(&fp16));
    assert_eq!(reference.len(), 3);
    for ((r, x), y) in reference.iter().zip(&a).zip(&b) {
        let diff = |p: &[f64]| {
            r.iter()
                .zip(p)
                .map(|(u, v)| (u - v).abs())
                .fold(0.0, f64::max)
        };
        assert!(diff(x) <= 1e-4, "fp32 export differs by {}", diff(x));
        assert!(diff(y) <= 1e-2, "fp16 export differs by {}", diff(y));
        assert_eq!(
            argmax(r),
            argmax(y),
            "fp16 export changes the top class: {r:?} vs {y:?}"
        );
    }
}

#[test]
fn export_refuses_a_card_whose_file_does_not_match() {
    let dir = tempfile::tempdir().expect("dir");
    let card = common::card_copy(dir.path(), |dir, _| {
        let f32_file = dir.join("ismf-net-f32.onnx");
        let mut bytes = std::fs::read(&f32_file).expect("copy");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&f32_file, bytes).expect("tamper");
    });
    let out = dir.path().join("export");
    let run = export(&card, &out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sha256") && stderr.contains("ismf-net-f32.onnx"),
        "{stderr}"
    );
    assert!(
        !out.join("ismf-net-fp16.onnx").exists(),
        "nothing written for a bad card"
    );
}
