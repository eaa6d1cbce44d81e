//! `ismf inspect`: an offline report of what ingest makes of a file or folder — studies, series,
//! the identified sequence of each with its reasons, completeness, and problems.
//!
//! The JSON form is a contract other tools rely on (issue 3): `{"studies": [{"study_instance_uid",
//! "complete", "sequences": {"sag_t1w": S|null, …}, "series": […], "problems": […]}]}` with
//! `S = {"series_instance_uid", "series_description", "files", "reasons"}`. Offline, `complete`
//! means all four sequences are identified.

pub use crate::ingest::report::{study_report, Selected, Sequences, SeriesReport, StudyReport};
use crate::ingest::{self, IngestError, Problem, Scan};
use crate::series::{Rules, SequenceKind};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub studies: Vec<StudyReport>,
    /// Files that could not be catalogued, each with its reason.
    pub problems: Vec<Problem>,
    /// Files left out on purpose (DICOMDIR, non-image SOP classes, re-sent duplicates).
    pub skipped: Vec<Problem>,
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
