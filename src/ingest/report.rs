//! The study report: which series of a study fill the four required sequences, with the reasons
//! of each identification and what is missing. The ingest engine decides completeness from it and
//! the offline `ismf inspect` tool prints it.

use super::catalog::StudyEntry;
use crate::series::{self, FatMethod, Identification, Plane, Rules, SequenceKind};
use serde::Serialize;
use std::path::PathBuf;

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
