//! Preprocessing on simulator studies: the model inputs have the card's shapes and statistics,
//! do not depend on file order, report missing slices, and the clinical vector matches the truth.

use crate::common::{run_sim, sim};
use ismf::ingest::catalog::read_header;
use ismf::inspect;
use ismf::pixels::DEFAULT_MAX_VOXELS;
use ismf::preprocess::{study_inputs, PreprocessParams};
use ismf::series::{Rules, SequenceKind};
use ismf::simulate::Site;
use std::path::{Path, PathBuf};

fn simulate_into(dir: &Path, site: Site, seed: u64) -> Vec<serde_json::Value> {
    let mut o = sim(dir, 3, seed);
    o.study.site = site;
    run_sim(&o)
}

fn selected(report: &inspect::StudyReport) -> Vec<(SequenceKind, Vec<PathBuf>)> {
    report.sequences.files()
}

#[test]
fn simulated_studies_become_model_inputs() {
    let params = PreprocessParams::default();
    for (site, seed) in [(Site::Internal, 21), (Site::External, 22)] {
        let dir = tempfile::tempdir().expect("dir");
        let truth = simulate_into(dir.path(), site, seed);
        let report = inspect::inspect(dir.path(), &Rules::default()).expect("inspect");
        for t in &truth {
            let study = report
                .studies
                .iter()
                .find(|s| Some(s.study_instance_uid.as_str()) == t["study_instance_uid"].as_str())
                .expect("study");
            let files = selected(study);
            let header = read_header(&files[0].1[0]).expect("header");
            let inputs = study_inputs(&files, &header.clinical(), &params, DEFAULT_MAX_VOXELS)
                .expect("inputs");
            assert!(inputs.warnings.is_empty(), "{:?}", inputs.warnings);
            assert_eq!(inputs.stacks.len(), 4);
            for (kind, stack) in &inputs.stacks {
                let g = stack.grid;
                assert_eq!(stack.data.len(), g.slices * g.size * g.size, "{kind}");
                assert!(stack.data.iter().all(|v| v.is_finite()));
                let n = stack.data.len() as f32;
                let mean = stack.data.iter().sum::<f32>() / n;
                let var = stack.data.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
                assert!(
                    mean.abs() < 1e-3 && (var - 1.0).abs() < 1e-2,
                    "{kind}: mean {mean} var {var}"
                );
            }
            // Clinical vector against the truth.
            let c = inputs.clinical;
            let age = t["age"].as_f64().unwrap_or(-1.0);
            assert!(
                (c[0] as f64 - age / 100.0).abs() < 0.011 || c[1] == 1.0,
                "age {age} vs {c:?}"
            );
            let sex = t["sex"].as_str().unwrap_or_default();
            assert_eq!(
                (c[2], c[3]),
                if sex == "M" { (1.0, 0.0) } else { (0.0, 1.0) }
            );
            let region = ["cervical", "thoracic", "lumbar"]
                .iter()
                .position(|r| Some(*r) == t["region"].as_str());
            assert_eq!(
                region.map(|r| c[5 + r]),
                Some(1.0),
                "{c:?} for {}",
                t["region"]
            );
            // File order does not matter: slices are sorted by position, not InstanceNumber.
            let reversed: Vec<_> = files
                .iter()
                .map(|(k, f)| (*k, f.iter().rev().cloned().collect()))
                .collect();
            let again = study_inputs(&reversed, &header.clinical(), &params, DEFAULT_MAX_VOXELS)
                .expect("inputs");
            assert!(
                again.stacks == inputs.stacks,
                "file order changed the inputs"
            );
        }
        // A missing middle slice is reported.
        let study = &report.studies[0];
        let mut files = selected(study);
        let t2 = &mut files[1].1;
        let gone = t2.remove(t2.len() / 2);
        std::fs::remove_file(&gone).expect("remove");
        let header = read_header(&files[0].1[0]).expect("header");
        let inputs =
            study_inputs(&files, &header.clinical(), &params, DEFAULT_MAX_VOXELS).expect("inputs");
        assert!(
            inputs
                .warnings
                .iter()
                .any(|w| w.starts_with("sag_t2w: missing slice")),
            "{:?}",
            inputs.warnings
        );
        // A corrupt file is skipped with a warning naming it; the study still goes through.
        let bad = files[0].1[0].clone();
        std::fs::write(&bad, b"garbage").expect("write");
        let inputs =
            study_inputs(&files, &header.clinical(), &params, DEFAULT_MAX_VOXELS).expect("inputs");
        let name = bad
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        assert!(
            inputs.warnings.iter().any(|w| w.contains(&name)),
            "{:?}",
            inputs.warnings
        );
    }
}
