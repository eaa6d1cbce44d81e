//! `ismf classify`, `ismf eval` and `ismf bench` on simulated studies with the committed model,
//! and every bad-input case the runtime must refuse with a clear error.

use crate::common;
use crate::common::{card_copy, ismf, model_card, run_sim, series_with_role, sim};
use ismf::model::{Model, ModelError, Precision};
use ismf::preprocess::PreprocessParams;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

/// `ismf ARGS… --card CARD`.
fn run(card: &Path, args: &[&str]) -> Output {
    ismf()
        .args(args)
        .arg("--card")
        .arg(card)
        .output()
        .expect("ismf runs")
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn classify_prints_the_published_message_deterministically() {
    let dir = tempfile::tempdir().expect("dir");
    let truth = run_sim(&sim(dir.path(), 2, 31));
    let card = model_card();
    let d = utf8(dir.path());
    let one = run(&card, &["classify", d, "--json"]);
    assert!(one.status.success(), "{}", stderr(&one));
    let first = json_lines(&one);
    assert_eq!(first.len(), 2, "one prediction per study");
    let card_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&card).expect("card")).expect("json");
    for p in &first {
        assert_eq!(p["schema_version"], 2);
        assert!(truth
            .iter()
            .any(|t| t["study_instance_uid"] == p["study_instance_uid"]));
        let probs = p["probabilities"].as_object().expect("probabilities");
        let keys: Vec<&String> = probs.keys().collect();
        assert_eq!(keys.len(), 5);
        let sum: f64 = probs.values().map(|v| v.as_f64().expect("number")).sum();
        assert!((sum - 1.0).abs() < 1e-3, "{sum}");
        assert_eq!(p["series"].as_array().expect("series").len(), 4);
        assert_eq!(p["model"]["sha256"], card_json["files"][0]["sha256"]);
        assert_eq!(p["model"]["precision"], "f32");
        assert!(p["notice"]
            .as_str()
            .expect("notice")
            .contains("NOT FOR DIAGNOSTIC USE"));
        assert!(p["timings"]["total_ms"].as_f64().expect("ms") > 0.0);
        assert!(p.get("patient_name").is_none() && p.get("patient_id").is_none());
    }
    // Same study, same model: same id and probabilities, on one thread or two.
    let two = run(&card, &["classify", d, "--json", "--threads", "2"]);
    assert!(two.status.success(), "{}", stderr(&two));
    for (a, b) in first.iter().zip(json_lines(&two)) {
        assert_eq!(a["prediction_id"], b["prediction_id"]);
        for class in ["SCN", "MNG", "AST", "EPN", "MET"] {
            let (x, y) = (
                a["probabilities"][class].as_f64().expect("p"),
                b["probabilities"][class].as_f64().expect("p"),
            );
            assert!((x - y).abs() < 1e-5, "{class}: {x} vs {y}");
        }
    }
    let text = run(&card, &["classify", d]);
    let text_out = String::from_utf8_lossy(&text.stdout);
    assert!(text_out.contains("prediction:") && text_out.contains("NOT FOR DIAGNOSTIC USE"));
    // A reader that leaves after the first line (`| head -1`) ends the run quietly.
    let mut child = ismf()
        .args(["classify", d, "--json", "--card"])
        .arg(&card)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ismf runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    assert!(line.contains("prediction_id"), "{line}");
    let closed = child.wait_with_output().expect("ismf ends");
    assert!(
        closed.status.success() && !stderr(&closed).contains("panicked"),
        "{:?}: {}",
        closed.status,
        stderr(&closed)
    );
    backends_fail_clearly_or_agree(&card, d, &first);
}

/// `--backend cuda` either runs (a CUDA build on a GPU machine) and agrees with the CPU, or
/// fails naming what is missing; `--backend auto` always classifies, on the CPU when it must.
fn backends_fail_clearly_or_agree(card: &Path, dir: &str, cpu: &[Value]) {
    let agree = |out: &Output, tolerance: f64| {
        for (a, b) in cpu.iter().zip(json_lines(out)) {
            assert_eq!(a["top_class"], b["top_class"]);
            for class in ["SCN", "MNG", "AST", "EPN", "MET"] {
                let (x, y) = (
                    a["probabilities"][class].as_f64().expect("p"),
                    b["probabilities"][class].as_f64().expect("p"),
                );
                assert!((x - y).abs() <= tolerance, "{class}: {x} vs {y}");
            }
        }
    };
    let cuda = run(card, &["classify", dir, "--json", "--backend", "cuda"]);
    let err = stderr(&cuda);
    if cuda.status.success() {
        if !cfg!(feature = "cuda") {
            panic!("a CPU-only build ran --backend cuda");
        }
        agree(&cuda, 1e-3);
    } else {
        assert_eq!(cuda.status.code(), Some(1), "{err}");
        let why = if cfg!(feature = "cuda") {
            "CUDA is not usable on this machine"
        } else {
            "this build has no CUDA backend (rebuild with `--features cuda`)"
        };
        assert!(err.contains("backend cuda: ") && err.contains(why), "{err}");
    }
    let auto = run(card, &["classify", dir, "--json", "--backend", "auto"]);
    assert!(auto.status.success(), "{}", stderr(&auto));
    agree(&auto, if cuda.status.success() { 1e-3 } else { 0.0 });
    if !cuda.status.success() {
        assert!(
            stderr(&auto).contains("running on the CPU"),
            "{}",
            stderr(&auto)
        );
    }
}

#[test]
fn eval_scores_against_truth() {
    let dir = tempfile::tempdir().expect("dir");
    run_sim(&sim(dir.path(), 5, 32));
    let card = model_card();
    let out = run(&card, &["eval", utf8(dir.path()), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &json_lines(&out)[0];
    assert_eq!(r["n"], 5);
    let acc = r["micro_accuracy"].as_f64().expect("accuracy");
    let ci = r["ci95"].as_array().expect("ci");
    assert!(ci[0].as_f64().expect("lo") <= acc && acc <= ci[1].as_f64().expect("hi"));
    let confusion: u64 = r["confusion"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_u64().expect("n"))
        })
        .sum();
    assert_eq!(confusion, 5);
    assert_eq!(r["per_class"].as_object().expect("classes").len(), 5);
}

#[test]
fn bench_reports_latency_per_precision() {
    let card = model_card();
    let out = run(
        &card,
        &["bench", "--runs", "3", "--json", "--precision", "int8"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &json_lines(&out)[0];
    assert!(r["tract_int8_ms"].as_f64().expect("ms") > 0.0);
    assert!(r["median_ms"].as_f64().expect("ms") <= r["p90_ms"].as_f64().expect("ms"));
    assert!(r["load_ms"].as_f64().expect("ms") > 0.0);
    let out = run(&card, &["bench", "--runs", "2", "--profile", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let nodes = json_lines(&out)[0].as_array().expect("nodes").clone();
    assert!(nodes.len() > 20, "every node of the plan is timed");
    let ms: Vec<f64> = nodes
        .iter()
        .map(|n| n["ms"].as_f64().expect("ms"))
        .collect();
    assert!(ms.windows(2).all(|w| w[0] >= w[1]), "largest first");
    assert!(nodes
        .iter()
        .any(|n| n["node"].as_str().expect("name").contains("sag_t1w")));
}

#[test]
fn a_study_missing_a_sequence_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("dir");
    let truth = run_sim(&sim(dir.path(), 1, 33));
    let ax = series_with_role(&truth[0], "ax_t2w").expect("axial series")["series_instance_uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let mut removed = 0;
    for f in common::dicom_files(dir.path()) {
        let h = ismf::ingest::catalog::read_header(&f).expect("header");
        if h.series_instance_uid == ax {
            std::fs::remove_file(f).expect("rm");
            removed += 1;
        }
    }
    assert!(removed > 0);
    let card = model_card();
    let out = run(&card, &["classify", utf8(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("incomplete") && err.contains("ax_t2w"),
        "{err}"
    );
}

#[test]
fn bad_model_files_are_refused_with_the_cause() {
    let params = PreprocessParams::default();
    // Truncated file, with a card that vouches for the truncated bytes: tract must refuse it.
    let dir = tempfile::tempdir().expect("dir");
    let path = card_copy(dir.path(), |d, card| {
        let f = d.join(card["files"][0]["path"].as_str().expect("path"));
        let bytes = std::fs::read(&f).expect("read");
        std::fs::write(&f, &bytes[..bytes.len() / 3]).expect("truncate");
        card["files"][0]["sha256"] =
            Value::String(ismf::model::card::sha256_file(&f).expect("hash"));
    });
    match Model::load(&path, Precision::F32, &params) {
        Err(e @ ModelError::Tract { .. }) => assert!(e.to_string().contains(".onnx"), "{e}"),
        other => panic!("expected a tract error, got {other:?}"),
    }
    // Flipped bytes with the card's original hash: refused before tract sees them.
    let dir = tempfile::tempdir().expect("dir");
    let path = card_copy(dir.path(), |d, card| {
        let f = d.join(card["files"][1]["path"].as_str().expect("path"));
        let mut bytes = std::fs::read(&f).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&f, bytes).expect("write");
    });
    let err = Model::load(&path, Precision::Int8, &params).expect_err("refused");
    assert!(
        matches!(err, ModelError::Hash { .. }) && err.to_string().contains("sha256"),
        "{err}"
    );
    // Missing file.
    let dir = tempfile::tempdir().expect("dir");
    let path = card_copy(dir.path(), |d, card| {
        std::fs::remove_file(d.join(card["files"][0]["path"].as_str().expect("path"))).expect("rm");
    });
    let err = Model::load(&path, Precision::F32, &params).expect_err("refused");
    assert!(
        matches!(err, ModelError::Io { .. }) && err.to_string().contains(".onnx"),
        "{err}"
    );
    // The CLI says the same and exits 1.
    let out = run(&path, &["bench", "--runs", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(".onnx"), "{}", stderr(&out));
    // Inputs of the wrong size.
    let model = Model::load(&model_card(), Precision::F32, &params).expect("load");
    let mut raw: Vec<Vec<f32>> = model
        .card()
        .card
        .inputs
        .iter()
        .map(|i| vec![0.0; i.shape.iter().product()])
        .collect();
    raw[4].pop();
    let err = model.run_raw(&raw).expect_err("refused");
    assert!(
        matches!(
            err,
            ModelError::InputSize {
                expected: 9,
                actual: 8,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn threads_share_one_runnable_and_agree() {
    let params = PreprocessParams::default();
    let model = Model::load(&model_card(), Precision::F32, &params).expect("load");
    let opts = ismf::simulate::StudyOptions {
        seed: 34,
        site: ismf::simulate::Site::Internal,
        classes: Vec::new(),
        vendor: None,
        distractors: Default::default(),
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let inputs: Vec<_> = (0..3)
        .map(|i| {
            ismf::dataset::study_tensors(&opts, i, scratch.path(), &params)
                .expect("study")
                .0
        })
        .collect();
    let sequential: Vec<_> = inputs.iter().map(|x| model.run(x).expect("run")).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let model = model.clone();
                let inputs = &inputs;
                s.spawn(move || {
                    (0..6)
                        .map(|k| {
                            let i = (t + k) % inputs.len();
                            (i, model.run(&inputs[i]).expect("run"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, p) in h.join().expect("thread") {
                assert_eq!(p, sequential[i], "study {i}: concurrent run differs");
            }
        }
    });
}
