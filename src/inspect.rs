//! `ismf inspect`: an offline report of what ingest makes of a file or folder — studies, series,
//! the identified sequence of each with its reasons, completeness, and problems.
//!
//! The JSON form is a contract other tools rely on (issue 3): `{"studies": [{"study_instance_uid",
//! "complete", "sequences": {"sag_t1w": S|null, …}, "series": […], "problems": […]}]}` with
//! `S = {"series_instance_uid", "series_description", "files", "reasons"}`. Offline, `complete`
//! means all four sequences are identified.

use crate::ingest::catalog::StudyEntry;
use crate::ingest::{self, IngestError, Problem, Scan};
use crate::series::{self, FatMethod, Identification, Plane, Rules, SequenceKind};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The series chosen for one required sequence.
#[derive(Clone, Debug, Serialize)]
pub struct Selected {
    pub series_instance_uid: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub files: Vec<PathBuf>,
    pub reasons: Vec<String>,
}

/// The four required sequences of a study.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sequences {
    pub sag_t1w: Option<Selected>,
    pub sag_t2w: Option<Selected>,
    pub sag_t2fs: Option<Selected>,
    pub ax_t2w: Option<Selected>,
}

impl Sequences {
    fn slot(&mut self, kind: SequenceKind) -> Option<&mut Option<Selected>> {
        match kind {
            SequenceKind::SagT1w => Some(&mut self.sag_t1w),
            SequenceKind::SagT2w => Some(&mut self.sag_t2w),
            SequenceKind::SagT2fs => Some(&mut self.sag_t2fs),
            SequenceKind::AxT2w => Some(&mut self.ax_t2w),
            SequenceKind::Other => None,
        }
    }

    /// The selected files of each identified sequence, in model-input order; a sequence not
    /// identified is left out.
    pub fn files(&self) -> Vec<(SequenceKind, Vec<PathBuf>)> {
        SequenceKind::REQUIRED
            .iter()
            .filter_map(|&k| self.get(k).map(|s| (k, s.files.clone())))
            .collect()
    }

    pub fn get(&self, kind: SequenceKind) -> Option<&Selected> {
        match kind {
            SequenceKind::SagT1w => self.sag_t1w.as_ref(),
            SequenceKind::SagT2w => self.sag_t2w.as_ref(),
            SequenceKind::SagT2fs => self.sag_t2fs.as_ref(),
            SequenceKind::AxT2w => self.ax_t2w.as_ref(),
            SequenceKind::Other => None,
        }
    }
}

/// Every series of a study with its identification.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesReport {
    pub series_instance_uid: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub instances: usize,
    pub kind: SequenceKind,
    pub plane: Option<Plane>,
    pub fat_suppression: Option<FatMethod>,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StudyReport {
    pub study_instance_uid: String,
    pub complete: bool,
    pub sequences: Sequences,
    pub series: Vec<SeriesReport>,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub studies: Vec<StudyReport>,
    /// Files that could not be catalogued, each with its reason.
    pub problems: Vec<Problem>,
    /// Files left out on purpose (DICOMDIR, non-image SOP classes, re-sent duplicates).
    pub skipped: Vec<Problem>,
}

/// Identifies the series of one study, picks the four sequences and lists what is missing.
pub fn study_report(study: &StudyEntry, rules: &Rules) -> StudyReport {
    let entries: Vec<_> = study.series.values().collect();
    let headers: Vec<_> = entries.iter().map(|s| s.header()).collect();
    let ids: Vec<Identification> = headers.iter().map(|h| series::identify(h, rules)).collect();
    let mut sequences = Sequences::default();
    let mut problems = Vec::new();
    for (kind, chosen) in series::select(&headers, &ids, rules) {
        match chosen {
            Some((i, why)) => {
                let mut reasons = ids[i].reasons.clone();
                reasons.push(why);
                if let Some(slot) = sequences.slot(kind) {
                    *slot = Some(Selected {
                        series_instance_uid: entries[i].series_instance_uid.clone(),
                        series_number: headers[i].series_number,
                        series_description: headers[i].description.clone(),
                        files: entries[i].files(),
                        reasons,
                    });
                }
            }
            None => {
                let rejected: Vec<String> = headers
                    .iter()
                    .zip(&ids)
                    .filter(|(_, id)| id.kind == SequenceKind::Other)
                    .map(|(h, id)| {
                        format!(
                            "series {} '{}': {}",
                            h.series_number.unwrap_or(-1),
                            h.description,
                            id.reasons.last().cloned().unwrap_or_default()
                        )
                    })
                    .collect();
                problems.push(format!(
                    "missing {kind}: no series qualified; rejected: [{}]",
                    rejected.join("; ")
                ));
            }
        }
    }
    let mut series: Vec<SeriesReport> = entries
        .iter()
        .zip(&headers)
        .zip(&ids)
        .map(|((e, h), id)| SeriesReport {
            series_instance_uid: e.series_instance_uid.clone(),
            series_number: h.series_number,
            series_description: h.description.clone(),
            instances: h.instances,
            kind: id.kind,
            plane: id.plane,
            fat_suppression: id.fat,
            reasons: id.reasons.clone(),
        })
        .collect();
    series.sort_by_key(|s| s.series_number);
    StudyReport {
        study_instance_uid: study.study_instance_uid.clone(),
        complete: problems.is_empty(),
        sequences,
        series,
        problems,
    }
}

/// Builds the report for an already scanned path.
pub fn report(scan: &Scan, rules: &Rules) -> Report {
    let studies = scan
        .catalog
        .studies
        .values()
        .map(|s| study_report(s, rules))
        .collect();
    Report {
        studies,
        problems: scan.problems.clone(),
        skipped: scan.skipped.clone(),
    }
}

/// Scans `path` and reports on it.
pub fn inspect(path: &Path, rules: &Rules) -> Result<Report, IngestError> {
    Ok(report(&ingest::scan(path)?, rules))
}

/// The human-readable table.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    for s in &r.studies {
        let _ = writeln!(
            out,
            "study {}  {}",
            s.study_instance_uid,
            if s.complete { "COMPLETE" } else { "INCOMPLETE" }
        );
        for kind in SequenceKind::REQUIRED {
            match s.sequences.get(kind) {
                Some(sel) => {
                    let _ = writeln!(
                        out,
                        "  {:<9} series {:>4}  {:<24} {} files",
                        kind.key(),
                        sel.series_number.unwrap_or(-1),
                        sel.series_description,
                        sel.files.len()
                    );
                }
                None => {
                    let _ = writeln!(out, "  {:<9} MISSING", kind.key());
                }
            }
        }
        let _ = writeln!(
            out,
            "  {:>6}  {:<26} {:>5}  {:<9} reasons",
            "series", "description", "files", "kind"
        );
        for se in &s.series {
            let _ = writeln!(
                out,
                "  {:>6}  {:<26} {:>5}  {:<9} {}",
                se.series_number.unwrap_or(-1),
                se.series_description,
                se.instances,
                se.kind.key(),
                se.reasons.join("; ")
            );
        }
        for p in &s.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
    }
    for p in &r.problems {
        let _ = writeln!(out, "problem: {}", p.problem);
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(
            out,
            "skipped {} file(s) (DICOMDIR, non-image, duplicates); --json lists them",
            r.skipped.len()
        );
    }
    out
}
