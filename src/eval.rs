//! Scores predictions against ground truth the way the paper reports them: micro-accuracy with a
//! 95 % bootstrap confidence interval, per-class precision / recall / F1, and the confusion
//! matrix. Used by `ismf eval`; `models/train.py` computes the same numbers in Python.

use crate::classify::{Classifier, ClassifyError};
use crate::ingest::{scan, IngestError};
use crate::model::CLASSES;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One class's scores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Everything `ismf eval --json` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub n: usize,
    pub micro_accuracy: f64,
    /// Percentile bootstrap over studies (2.5th and 97.5th percentiles).
    pub ci95: [f64; 2],
    pub per_class: BTreeMap<String, ClassScores>,
    /// Rows true class, columns predicted, both in [`CLASSES`] order.
    pub confusion: [[usize; 5]; 5],
}

/// Scores class indices (into [`CLASSES`]); `resamples` bootstrap draws from a fixed `seed`, so
/// the interval is reproducible.
pub fn score(truth: &[usize], predicted: &[usize], resamples: usize, seed: u64) -> Scores {
    let n = truth.len().min(predicted.len());
    let mut confusion = [[0usize; 5]; 5];
    let correct: Vec<bool> = (0..n).map(|i| truth[i] == predicted[i]).collect();
    for i in 0..n {
        if truth[i] < 5 && predicted[i] < 5 {
            confusion[truth[i]][predicted[i]] += 1;
        }
    }
    let hits = correct.iter().filter(|c| **c).count();
    let micro_accuracy = if n == 0 { 0.0 } else { hits as f64 / n as f64 };
    let ci95 = if n == 0 {
        [0.0, 0.0]
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut draws: Vec<f64> = (0..resamples.max(1))
            .map(|_| (0..n).filter(|_| correct[rng.random_range(0..n)]).count() as f64 / n as f64)
            .collect();
        draws.sort_by(f64::total_cmp);
        [percentile(&draws, 2.5), percentile(&draws, 97.5)]
    };
    let per_class = CLASSES
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let tp = confusion[c][c] as f64;
            let predicted: usize = (0..5).map(|t| confusion[t][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let precision = if predicted == 0 {
                0.0
            } else {
                tp / predicted as f64
            };
            let recall = if support == 0 {
                0.0
            } else {
                tp / support as f64
            };
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            (
                name.to_string(),
                ClassScores {
                    precision,
                    recall,
                    f1,
                    support,
                },
            )
        })
        .collect();
    Scores {
        n,
        micro_accuracy,
        ci95,
        per_class,
        confusion,
    }
}

/// Errors of `ismf eval` before any study is scored.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {reason}")]
    Truth { path: PathBuf, reason: String },
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// What `ismf eval --json` prints: the scores of the studies that were classified, and why the
/// others were not.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    #[serde(flatten)]
    pub scores: Scores,
    pub precision: String,
    /// Studies in truth.jsonl that could not be classified, with the reason.
    pub failed: Vec<Failure>,
    pub seconds: f64,
    pub note: &'static str,
}

/// A study that was not scored.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub study_instance_uid: String,
    pub reason: String,
}

/// Each non-empty line of `DIR/truth.jsonl`, parsed, with its 1-based line number; `pick`
/// turns a line into what the caller needs, or says what it lacks.
pub(crate) fn truth_lines<T>(
    dir: &Path,
    mut pick: impl FnMut(&serde_json::Value) -> Result<T, String>,
) -> Result<Vec<T>, EvalError> {
    let path = dir.join("truth.jsonl");
    let err = |reason: String| EvalError::Truth {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(format!("line {}: {e}", i + 1)))?;
        out.push(pick(&v).map_err(|reason| err(format!("line {}: {reason}", i + 1)))?);
    }
    if out.is_empty() {
        return Err(err("no studies listed".into()));
    }
    Ok(out)
}

/// Reads `DIR/truth.jsonl` (one object per study with `study_instance_uid` and `class`).
pub fn read_truth(dir: &Path) -> Result<Vec<(String, usize)>, EvalError> {
    truth_lines(dir, |v| {
        let uid = v["study_instance_uid"].as_str();
        let class = v["class"].as_str();
        let (Some(uid), Some(class)) = (uid, class) else {
            return Err("needs study_instance_uid and class".to_string());
        };
        let index = CLASSES
            .iter()
            .position(|c| *c == class)
            .ok_or_else(|| format!("unknown class {class:?}"))?;
        Ok((uid.to_string(), index))
    })
}

/// Classifies every study listed in `DIR/truth.jsonl` and scores the predictions.
pub fn evaluate_dir(
    classifier: &Classifier,
    dir: &Path,
    progress: bool,
) -> Result<EvalReport, EvalError> {
    let started = std::time::Instant::now();
    let truth = read_truth(dir)?;
    let scanned = scan(dir)?;
    let bar = crate::logging::study_progress("eval", truth.len(), progress);
    let (mut want, mut got, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (uid, class) in &truth {
        let outcome = match scanned.catalog.studies.get(uid) {
            None => Err("no files of this study under the folder".to_string()),
            Some(entry) => classifier
                .classify_entry(entry, 0.0)
                .map_err(|e: ClassifyError| crate::logging::Chain(&e).to_string()),
        };
        match outcome {
            Ok(p) => {
                want.push(*class);
                got.push(CLASSES.iter().position(|c| *c == p.top_class).unwrap_or(0));
            }
            Err(reason) => failed.push(Failure {
                study_instance_uid: uid.clone(),
                reason,
            }),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(EvalReport {
        scores: score(&want, &got, 2000, 0),
        precision: classifier.model.precision().to_string(),
        failed,
        seconds: started.elapsed().as_secs_f64(),
        note: "simulated studies: not clinical accuracy",
    })
}

/// Linear-interpolated percentile (`q` in percent) of sorted values (numpy's default).
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The human-readable table of `ismf eval` (the JSON form is the report itself).
pub fn render_text(report: &EvalReport) -> String {
    use std::fmt::Write as _;
    let s = &report.scores;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} studies ({} precision): micro-accuracy {:.3} (95 % CI {:.3}-{:.3}); simulated studies, not clinical accuracy",
        s.n, report.precision, s.micro_accuracy, s.ci95[0], s.ci95[1]
    );
    let _ = writeln!(out, "class  precision recall f1    support");
    for (i, c) in crate::model::CLASSES.iter().enumerate() {
        let k = &s.per_class[*c];
        let _ = writeln!(
            out,
            "{c:<6} {:.3}     {:.3}  {:.3} {:>4}   confusion {:?}",
            k.precision, k.recall, k.f1, k.support, s.confusion[i]
        );
    }
    for f in &report.failed {
        let _ = writeln!(
            out,
            "not classified: {}: {}",
            f.study_instance_uid, f.reason
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_computed_values() {
        // 10 studies: 7 right; MNG predicted for two SCN and one AST.
        let truth = [0, 0, 0, 1, 1, 2, 2, 3, 4, 4];
        let pred = [0, 1, 1, 1, 1, 2, 1, 3, 4, 4];
        let s = score(&truth, &pred, 2000, 1);
        assert_eq!(s.n, 10);
        assert!((s.micro_accuracy - 0.7).abs() < 1e-12);
        assert_eq!(s.confusion[0], [1, 2, 0, 0, 0]);
        assert_eq!(s.confusion[2], [0, 1, 1, 0, 0]);
        let mng = &s.per_class["MNG"];
        assert!((mng.precision - 2.0 / 5.0).abs() < 1e-12);
        assert!((mng.recall - 1.0).abs() < 1e-12);
        assert!((mng.f1 - 2.0 * 0.4 / 1.4).abs() < 1e-12);
        assert_eq!(s.per_class["SCN"].support, 3);
        assert!(s.ci95[0] < 0.7 && 0.7 < s.ci95[1], "{:?}", s.ci95);
        assert!(s.ci95[0] >= 0.3 && s.ci95[1] <= 1.0);
        assert_eq!(
            score(&truth, &pred, 2000, 1),
            s,
            "a fixed seed gives the same interval"
        );
    }

    #[test]
    fn perfect_and_empty_inputs() {
        let s = score(&[0, 1, 2, 3, 4], &[0, 1, 2, 3, 4], 100, 0);
        assert_eq!((s.micro_accuracy, s.ci95), (1.0, [1.0, 1.0]));
        assert!(s.per_class.values().all(|c| c.f1 == 1.0));
        let e = score(&[], &[], 100, 0);
        assert_eq!((e.n, e.micro_accuracy), (0, 0.0));
    }
}
