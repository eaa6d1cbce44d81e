//! Scores predictions against ground truth the way the paper reports them: micro-accuracy with a
//! 95 % bootstrap confidence interval, per-class precision / recall / F1, and the confusion
//! matrix. Used by `ismf eval`; `models/train.py` computes the same numbers in Python.

use crate::model::CLASSES;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;

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
            let precision = if predicted == 0 { 0.0 } else { tp / predicted as f64 };
            let recall = if support == 0 { 0.0 } else { tp / support as f64 };
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

/// Linear-interpolated percentile of sorted values (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
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
        assert_eq!(score(&truth, &pred, 2000, 1), s, "a fixed seed gives the same interval");
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
