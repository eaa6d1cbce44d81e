//! Honesty checks of the explanation maps, on simulated studies whose lesion is known.
//!
//! - **Pointing game** (Zhang et al. 2018): a map "hits" when its peak lies inside the lesion's
//!   box (truth `lesion_box_mm`, patient coordinates) grown by the map's resolution — half a
//!   stride in-plane, and never less than half the plane spacing. The **random baseline** is the
//!   hit rate a uniformly random peak would have under the same rule: the exact share of the
//!   stack's grid points that hit, so it carries no sampling noise.
//! - **Model randomisation** (Adebayo et al. 2018): maps from a model whose weights were
//!   shuffled must differ from the trained model's; reported as the Spearman rank correlation
//!   between the two pixel maps of each sequence.
//! - **Mismatched truth**, a negative control: each study's peaks scored against the *next*
//!   study's lesion box; a check that counts hits for maps that cannot know the lesion would show
//!   up here as a rate above its baseline.

use super::{explain, Explanation, Occlusion, SequenceMap};
use crate::classify::Classifier;
use crate::eval::EvalError;
use crate::ingest::scan;
use crate::model::{Model, CLASSES};
use crate::publish::message::top_and_margin;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A lesion box (min corner, max corner), mm.
pub type LesionBox = [[f64; 3]; 2];

/// Tolerance (mm) of the hit rule for a map on `grid`.
pub fn tolerance(map: &SequenceMap, occlusion: Occlusion) -> f64 {
    (0.5 * occlusion.stride as f64 * map.grid.pixel_mm).max(0.5 * map.grid.slice_spacing_mm)
}

/// Whether `p` lies in `b` grown by `tol` on every side.
pub fn inside(p: [f64; 3], b: &LesionBox, tol: f64) -> bool {
    (0..3).all(|k| p[k] >= b[0][k] - tol && p[k] <= b[1][k] + tol)
}

/// Share of the map's grid points that the hit rule accepts (every plane, every other pixel).
pub fn random_hit_rate(map: &SequenceMap, b: &LesionBox, tol: f64) -> f64 {
    let g = &map.grid;
    let (mut hits, mut all) = (0usize, 0usize);
    for s in 0..g.slices {
        for i in (0..g.size).step_by(2) {
            for j in (0..g.size).step_by(2) {
                let p = map.geometry.point(g, s as f64, i as f64, j as f64);
                hits += usize::from(inside(p, b, tol));
                all += 1;
            }
        }
    }
    hits as f64 / all.max(1) as f64
}

/// Spearman rank correlation of two equally long maps (average ranks for ties).
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    fn ranks(v: &[f32]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&x, &y| v[x].total_cmp(&v[y]));
        let mut r = vec![0.0; v.len()];
        let mut k = 0;
        while k < idx.len() {
            let mut e = k;
            while e + 1 < idx.len() && v[idx[e + 1]] == v[idx[k]] {
                e += 1;
            }
            let avg = 0.5 * (k + e) as f64;
            for &i in &idx[k..=e] {
                r[i] = avg;
            }
            k = e + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    sab / (saa * sbb).sqrt()
}

/// Hits and baseline of one group of maps.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    pub maps: usize,
    pub hits: usize,
    /// Sum of the random baseline's hit probability over the maps.
    pub random_hits: f64,
    /// Hits of the mismatched-truth control.
    pub mismatched_hits: usize,
}

impl Tally {
    pub fn hit_rate(&self) -> f64 {
        self.hits as f64 / self.maps.max(1) as f64
    }
    pub fn random_rate(&self) -> f64 {
        self.random_hits / self.maps.max(1) as f64
    }
    pub fn mismatched_rate(&self) -> f64 {
        self.mismatched_hits as f64 / self.maps.max(1) as f64
    }
    fn add(&mut self, other: &Tally) {
        self.maps += other.maps;
        self.hits += other.hits;
        self.random_hits += other.random_hits;
        self.mismatched_hits += other.mismatched_hits;
    }
}

/// What `ismf eval --explain` reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PointingReport {
    pub studies: usize,
    pub all: Tally,
    pub by_sequence: BTreeMap<String, Tally>,
    /// Keyed "site/class" (true class).
    pub by_site_class: BTreeMap<String, Tally>,
    pub by_site: BTreeMap<String, Tally>,
    /// Spearman correlation, trained vs randomised model, per sequence: mean over studies.
    pub randomised_spearman: BTreeMap<String, f64>,
    /// Mean forward runs and seconds a study.
    pub runs_per_study: f64,
    pub seconds_per_study: f64,
    pub failed: Vec<String>,
    pub note: &'static str,
}

/// One study's truth for the pointing game.
#[derive(Clone, Debug)]
struct StudyTruth {
    uid: String,
    class: usize,
    site: String,
    lesion_box: LesionBox,
}

fn read_truth(dir: &Path) -> Result<Vec<StudyTruth>, EvalError> {
    crate::eval::truth_lines(dir, |v| {
        let corner = |k: usize| -> Option<[f64; 3]> {
            let c = v["lesion_box_mm"].get(k)?;
            Some([
                c.get(0)?.as_f64()?,
                c.get(1)?.as_f64()?,
                c.get(2)?.as_f64()?,
            ])
        };
        let (Some(uid), Some(class), Some(lo), Some(hi)) = (
            v["study_instance_uid"].as_str(),
            v["class"]
                .as_str()
                .and_then(|c| CLASSES.iter().position(|k| *k == c)),
            corner(0),
            corner(1),
        ) else {
            return Err("needs study_instance_uid, a known class and lesion_box_mm \
                 (as `ismf simulate` writes it)"
                .to_string());
        };
        Ok(StudyTruth {
            uid: uid.to_string(),
            class,
            site: v["site"].as_str().unwrap_or("unknown").to_string(),
            lesion_box: [lo, hi],
        })
    })
}

/// Explains the studies of `dir` (for their predicted class; the first `limit` of truth.jsonl)
/// and scores the maps; with `randomised`, also explains each study through that model and
/// correlates the maps.
pub fn evaluate_dir(
    classifier: &Classifier,
    occlusion: Occlusion,
    randomised: Option<&Model>,
    dir: &Path,
    limit: Option<usize>,
    progress: bool,
) -> Result<PointingReport, EvalError> {
    let started = std::time::Instant::now();
    let mut truth = read_truth(dir)?;
    truth.truncate(limit.unwrap_or(usize::MAX));
    let scanned = scan(dir)?;
    let bar = crate::logging::study_progress("explain", truth.len(), progress);
    let mut report = PointingReport {
        note: "simulated studies: not clinical evidence",
        ..PointingReport::default()
    };
    let mut spearman_sum: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut runs = 0usize;
    for (n, t) in truth.iter().enumerate() {
        bar.inc(1);
        let mismatched = &truth[(n + 1) % truth.len()].lesion_box;
        let explained = scanned
            .catalog
            .studies
            .get(&t.uid)
            .ok_or_else(|| "no files of this study under the folder".to_string())
            .and_then(|entry| explain_entry(classifier, entry, occlusion, randomised));
        let (explanation, random_maps) = match explained {
            Ok(e) => e,
            Err(reason) => {
                report.failed.push(format!("{}: {reason}", t.uid));
                continue;
            }
        };
        report.studies += 1;
        runs += explanation.runs;
        for (k, map) in explanation.maps.iter().enumerate() {
            let tol = tolerance(map, occlusion);
            let one = Tally {
                maps: 1,
                hits: usize::from(inside(map.peak_lps, &t.lesion_box, tol)),
                random_hits: random_hit_rate(map, &t.lesion_box, tol),
                mismatched_hits: usize::from(
                    truth.len() > 1 && inside(map.peak_lps, mismatched, tol),
                ),
            };
            let key = map.kind.key().to_string();
            report.all.add(&one);
            report.by_sequence.entry(key.clone()).or_default().add(&one);
            report
                .by_site_class
                .entry(format!("{}/{}", t.site, CLASSES[t.class]))
                .or_default()
                .add(&one);
            report.by_site.entry(t.site.clone()).or_default().add(&one);
            if let Some(r) = random_maps.as_ref().and_then(|r| r.maps.get(k)) {
                let rho = spearman(&map.pixels, &r.pixels);
                if rho.is_finite() {
                    let e = spearman_sum.entry(key).or_default();
                    e.0 += rho;
                    e.1 += 1;
                }
            }
        }
    }
    bar.finish_and_clear();
    report.randomised_spearman = spearman_sum
        .into_iter()
        .map(|(k, (s, n))| (k, s / n.max(1) as f64))
        .collect();
    let studies = report.studies.max(1) as f64;
    report.runs_per_study = runs as f64 / studies;
    report.seconds_per_study = started.elapsed().as_secs_f64() / studies;
    Ok(report)
}

type Explained = (Explanation, Option<Explanation>);

fn explain_entry(
    classifier: &Classifier,
    entry: &crate::ingest::catalog::StudyEntry,
    occlusion: Occlusion,
    randomised: Option<&Model>,
) -> Result<Explained, String> {
    let chain = |e: &(dyn std::error::Error + 'static)| crate::logging::Chain(e).to_string();
    let report = classifier.complete_report(entry).map_err(|e| chain(&e))?;
    let inputs = classifier.inputs(entry, &report).map_err(|e| chain(&e))?;
    let p = classifier.model.run(&inputs).map_err(|e| chain(&e))?;
    let (class, _) = top_and_margin(&p);
    let e = explain(&classifier.model, &inputs, class, occlusion).map_err(|e| chain(&e))?;
    let r = match randomised {
        Some(m) => Some(explain(m, &inputs, class, occlusion).map_err(|e| chain(&e))?),
        None => None,
    };
    Ok((e, r))
}

/// The table `ismf eval --explain` prints.
pub fn render_text(r: &PointingReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} studies explained ({:.0} runs, {:.2} s a study); pointing game: map peak inside the lesion box; simulated studies",
        r.studies, r.runs_per_study, r.seconds_per_study
    );
    let _ = writeln!(
        out,
        "{:<16} {:>5} {:>8} {:>8} {:>11}",
        "group", "maps", "hit", "random", "mismatched"
    );
    let row = |out: &mut String, name: &str, t: &Tally| {
        let _ = writeln!(
            out,
            "{:<16} {:>5} {:>8.3} {:>8.3} {:>11.3}",
            name,
            t.maps,
            t.hit_rate(),
            t.random_rate(),
            t.mismatched_rate()
        );
    };
    row(&mut out, "all", &r.all);
    for (k, t) in &r.by_sequence {
        row(&mut out, k, t);
    }
    for (k, t) in &r.by_site {
        row(&mut out, k, t);
    }
    for (k, t) in &r.by_site_class {
        row(&mut out, k, t);
    }
    for (k, rho) in &r.randomised_spearman {
        let _ = writeln!(out, "randomised model, {k}: Spearman {rho:.3}");
    }
    for f in &r.failed {
        let _ = writeln!(out, "not explained: {f}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_reversed_and_tied_maps() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!(spearman(&a, &[1.0, 1.0, 1.0, 1.0]).is_nan());
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!(r > 0.9 && r < 1.0, "{r}");
    }

    #[test]
    fn hit_rule_grows_the_box() {
        let b = [[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]];
        assert!(inside([5.0, 5.0, 5.0], &b, 0.0));
        assert!(!inside([12.0, 5.0, 5.0], &b, 1.0));
        assert!(inside([12.0, 5.0, 5.0], &b, 2.0));
    }
}
