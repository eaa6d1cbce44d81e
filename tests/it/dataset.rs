//! `ismf dataset` writes exactly what the serving path computes for the same studies.

use crate::common;
use crate::common::{python, sim, stdout_of};
use ismf::dataset::{self, DatasetOptions};
use ismf::ingest::catalog::read_header;
use ismf::inspect;
use ismf::pixels::DEFAULT_MAX_VOXELS;
use ismf::preprocess::{study_inputs, PreprocessParams};
use ismf::series::Rules;

#[test]
fn dataset_rows_equal_the_serving_pipeline() {
    let root = tempfile::tempdir().expect("dir");
    let sim_opts = sim(&root.path().join("sim"), 3, 8);
    let opts = DatasetOptions {
        out: root.path().join("ds"),
        studies: 3,
        study: sim_opts.study.clone(),
        scratch: root.path().join("scratch"),
        progress: false,
    };
    dataset::run(&opts).expect("dataset");
    let truth = common::run_sim(&sim_opts);
    let report = inspect::inspect(&sim_opts.out, &Rules::default()).expect("inspect");
    let params = PreprocessParams::default();
    // Load the dataset with numpy and print one checksum per (row, input) to compare.
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
labels = np.load(d + "/labels.npy")
clin = np.load(d + "/clinical.npy")
for i in range(len(labels)):
    parts = [str(int(labels[i]))] + ["%.6f" % float(np.load(d + "/" + k + ".npy", mmap_mode="r")[i].astype(np.float64).sum()) for k in ["sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w"]]
    parts += ["%.6f" % float(x) for x in clin[i]]
    print(" ".join(parts))
"#;
    let out = stdout_of(python().arg("-c").arg(script).arg(&opts.out));
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3);
    for (i, t) in truth.iter().enumerate() {
        let uid = t["study_instance_uid"].as_str().unwrap_or_default();
        let study = report
            .studies
            .iter()
            .find(|s| s.study_instance_uid == uid)
            .expect("study");
        let files = study.sequences.files();
        let clinical = read_header(&files[0].1[0]).expect("header").clinical();
        let inputs = study_inputs(&files, &clinical, &params, DEFAULT_MAX_VOXELS).expect("inputs");
        let label = ["SCN", "MNG", "AST", "EPN", "MET"]
            .iter()
            .position(|c| Some(*c) == t["class"].as_str())
            .unwrap_or(9);
        let mut expected = vec![label.to_string()];
        expected.extend(
            inputs
                .stacks
                .iter()
                .map(|(_, s)| format!("{:.6}", s.data.iter().map(|&v| v as f64).sum::<f64>())),
        );
        expected.extend(inputs.clinical.iter().map(|&x| format!("{:.6}", x as f64)));
        assert_eq!(lines[i], expected.join(" "), "row {i}");
    }
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(opts.out.join("dataset.json")).expect("meta"),
    )
    .expect("json");
    assert_eq!(
        meta["classes"],
        serde_json::json!(["SCN", "MNG", "AST", "EPN", "MET"])
    );
    assert_eq!(meta["preprocess"]["sagittal"]["size"], 160);
    assert_eq!(
        std::fs::read_to_string(opts.out.join("studies.jsonl"))
            .map(|s| s.lines().count())
            .ok(),
        Some(3)
    );
    assert!(
        std::fs::read_dir(&opts.scratch)
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "scratch cleaned"
    );
}
