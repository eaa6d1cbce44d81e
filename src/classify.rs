//! One study through the whole synchronous core: header scan and identification, pixel decoding
//! and preprocessing, the model — timed per stage and assembled into the published
//! [`Prediction`]. `ismf classify`, `ismf eval` and the daemon all come through here, so what a
//! reader sees on MQTT is what the CLI prints.

use crate::explain::{explain, Explanation, Occlusion};
use crate::ingest::catalog::StudyEntry;
use crate::ingest::report::{study_report, StudyReport};
use crate::ingest::{scan, IngestError, Problem};
use crate::model::{Model, ModelError, Probabilities};
use crate::pixels::DEFAULT_MAX_VOXELS;
use crate::preprocess::{
    study_inputs, ModelInputs, PlaneSource, PreprocessError, PreprocessParams,
};
use crate::publish::message::{Identity, ModelInfo, PhiPolicy, Prediction, SeriesUsed, Timings};
use crate::series::Rules;
use dicom_dictionary_std::tags;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Errors of classifying a study.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("{0}: no DICOM study found")]
    NoStudy(PathBuf),
    #[error("study {uid}: incomplete, not classified: {problems}")]
    Incomplete { uid: String, problems: String },
    #[error("study {uid}")]
    Preprocess {
        uid: String,
        source: PreprocessError,
    },
    #[error("study {uid}")]
    Model { uid: String, source: ModelError },
}

/// What classification needs, loaded once.
#[derive(Clone, Debug)]
pub struct Classifier {
    pub model: Model,
    pub rules: Rules,
    pub params: PreprocessParams,
    pub appliance_id: String,
    pub phi: PhiPolicy,
    pub max_voxels: u64,
    /// Explanation maps for the predicted class (`[results] explain`); `None` skips them.
    pub explain: Option<Occlusion>,
}

/// A prediction with what produced it, for the results that are drawn from it.
#[derive(Clone, Debug)]
pub struct Classified {
    pub prediction: Prediction,
    pub probabilities: Probabilities,
    pub explanation: Option<Explanation>,
    /// Every acquired plane the model read, in sequence order.
    pub sources: Vec<PlaneSource>,
}

/// Every study found under a folder, classified or refused.
#[derive(Debug)]
pub struct FolderResult {
    pub studies: Vec<Result<Prediction, ClassifyError>>,
    /// Files that could not be read as DICOM, with the reason.
    pub problems: Vec<Problem>,
    pub skipped: Vec<Problem>,
}

impl Classifier {
    pub fn new(model: Model, params: PreprocessParams) -> Classifier {
        Classifier {
            model,
            rules: Rules::default(),
            params,
            appliance_id: "cli".to_string(),
            phi: PhiPolicy::default(),
            max_voxels: DEFAULT_MAX_VOXELS,
            explain: None,
        }
    }

    /// Scans `dir` and classifies every study in it (the scan's time is shared among them).
    pub fn classify_dir(&self, dir: &Path) -> Result<FolderResult, ClassifyError> {
        let mut studies = Vec::new();
        let mut result = self.classify_dir_each(dir, |r| {
            studies.push(r);
            std::ops::ControlFlow::Continue(())
        })?;
        result.studies = studies;
        Ok(result)
    }

    /// As [`Classifier::classify_dir`], handing each study's result to `each` as soon as it is
    /// ready (so a publisher can send it before the next study is read); the returned
    /// [`FolderResult`] then holds the scan's problems only.
    pub fn classify_dir_each(
        &self,
        dir: &Path,
        mut each: impl FnMut(Result<Prediction, ClassifyError>) -> std::ops::ControlFlow<()>,
    ) -> Result<FolderResult, ClassifyError> {
        self.classify_dir_each_full(dir, |r| each(r.map(|c| c.prediction)))
    }

    /// [`Classifier::classify_dir_each`] with each study's [`Classified`] (for results).
    pub fn classify_dir_each_full(
        &self,
        dir: &Path,
        mut each: impl FnMut(Result<Classified, ClassifyError>) -> std::ops::ControlFlow<()>,
    ) -> Result<FolderResult, ClassifyError> {
        let started = Instant::now();
        let scanned = scan(dir)?;
        if scanned.catalog.studies.is_empty() {
            return Err(ClassifyError::NoStudy(dir.to_path_buf()));
        }
        let scan_ms = ms(started) / scanned.catalog.studies.len() as f64;
        for entry in scanned.catalog.studies.values() {
            if each(self.classify_entry_full(entry, scan_ms)).is_break() {
                break;
            }
        }
        Ok(FolderResult {
            studies: Vec::new(),
            problems: scanned.problems,
            skipped: scanned.skipped,
        })
    }

    /// Classifies one catalogued study; `ingest_ms` is what cataloguing it already cost.
    pub fn classify_entry(
        &self,
        entry: &StudyEntry,
        ingest_ms: f64,
    ) -> Result<Prediction, ClassifyError> {
        self.classify_entry_full(entry, ingest_ms)
            .map(|c| c.prediction)
    }

    /// The study's identification report; an incomplete study is an error naming what is
    /// missing.
    pub fn complete_report(&self, entry: &StudyEntry) -> Result<StudyReport, ClassifyError> {
        let report = study_report(entry, &self.rules);
        if !report.complete {
            return Err(ClassifyError::Incomplete {
                uid: entry.study_instance_uid.clone(),
                problems: report.problems.join("; "),
            });
        }
        Ok(report)
    }

    /// The model inputs of a complete study (its selected files decoded and preprocessed).
    pub fn inputs(
        &self,
        entry: &StudyEntry,
        report: &StudyReport,
    ) -> Result<ModelInputs, ClassifyError> {
        study_inputs(
            &report.sequences.files(),
            &entry.clinical(),
            &self.params,
            self.max_voxels,
        )
        .map_err(|source| ClassifyError::Preprocess {
            uid: entry.study_instance_uid.clone(),
            source,
        })
    }

    /// [`Classifier::classify_entry`], keeping the probabilities and the explanation.
    pub fn classify_entry_full(
        &self,
        entry: &StudyEntry,
        ingest_ms: f64,
    ) -> Result<Classified, ClassifyError> {
        let uid = entry.study_instance_uid.clone();
        let t = Instant::now();
        let report = self.complete_report(entry)?;
        let ingest_ms = ingest_ms + ms(t);

        let t = Instant::now();
        let inputs = self.inputs(entry, &report)?;
        let preprocess_ms = ms(t);

        let t = Instant::now();
        let probabilities: Probabilities =
            self.model
                .run(&inputs)
                .map_err(|source| ClassifyError::Model {
                    uid: uid.clone(),
                    source,
                })?;
        let inference_ms = ms(t);
        let model_err = |source| ClassifyError::Model {
            uid: uid.clone(),
            source,
        };
        let t = Instant::now();
        let explanation = match self.explain {
            Some(occlusion) => {
                let (top, _) = crate::publish::message::top_and_margin(&probabilities);
                Some(explain(&self.model, &inputs, top, occlusion).map_err(model_err)?)
            }
            None => None,
        };
        let explain_ms = ms(t);
        let sources: Vec<PlaneSource> = inputs
            .stacks
            .iter()
            .flat_map(|(_, s)| s.geometry.planes.iter().map(|p| p.source.clone()))
            .collect();

        let series = crate::series::SequenceKind::REQUIRED
            .iter()
            .filter_map(|kind| {
                report.sequences.get(*kind).map(|s| SeriesUsed {
                    sequence: kind.key().to_string(),
                    series_instance_uid: s.series_instance_uid.clone(),
                    series_number: s.series_number,
                    series_description: s.series_description.clone(),
                    instances: s.files.len(),
                    reasons: s.reasons.clone(),
                })
            })
            .collect();
        let identity = match self.phi {
            PhiPolicy::Uids => Identity::default(),
            _ => report
                .sequences
                .files()
                .first()
                .and_then(|(_, f)| f.first())
                .map(|f| read_identity(f))
                .unwrap_or_default(),
        };
        let mut prediction = Prediction::new(
            &uid,
            probabilities,
            series,
            ModelInfo::of(&self.model),
            &self.appliance_id,
            Timings {
                ingest_ms,
                preprocess_ms,
                inference_ms,
                explain_ms,
                total_ms: ingest_ms + preprocess_ms + inference_ms + explain_ms,
            },
            inputs.warnings,
            identity,
            self.phi,
        );
        if let (Some(e), Some(o)) = (&explanation, self.explain) {
            prediction.explanation = Some(e.summary(o));
        }
        Ok(Classified {
            prediction,
            probabilities,
            explanation,
            sources,
        })
    }
}

/// AccessionNumber, PatientName and PatientID of a file, read only when the PHI policy allows
/// them (the catalog never stores them). Unreadable values are left out.
fn read_identity(path: &Path) -> Identity {
    let Ok(obj) = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
    else {
        return Identity::default();
    };
    let text = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Identity {
        accession_number: text(tags::ACCESSION_NUMBER),
        patient_name: text(tags::PATIENT_NAME),
        patient_id: text(tags::PATIENT_ID),
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The readable summary `ismf classify` prints.
pub fn render_text(p: &Prediction) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let probs = &p.probabilities;
    let _ = writeln!(
        s,
        "study {}\n  prediction: {} (margin {:.2} over the runner-up)",
        p.study_instance_uid, p.top_class, p.margin
    );
    let _ = writeln!(
        s,
        "  probabilities: SCN {:.3}  MNG {:.3}  AST {:.3}  EPN {:.3}  MET {:.3}",
        probs.SCN, probs.MNG, probs.AST, probs.EPN, probs.MET
    );
    for series in &p.series {
        let _ = writeln!(
            s,
            "  {:<8} series {} \"{}\" ({} images): {}",
            series.sequence,
            series
                .series_number
                .map_or("-".to_string(), |n| n.to_string()),
            series.series_description,
            series.instances,
            series.reasons.join("; ")
        );
    }
    for w in &p.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    let _ = writeln!(
        s,
        "  model: {} {} ({}, sha256 {})",
        p.model.name,
        p.model.version,
        p.model.precision,
        &p.model.sha256[..p.model.sha256.len().min(12)]
    );
    let t = &p.timings;
    let _ = writeln!(
        s,
        "  timings: ingest {:.0} ms, preprocess {:.0} ms, inference {:.0} ms, total {:.0} ms",
        t.ingest_ms, t.preprocess_ms, t.inference_ms, t.total_ms
    );
    let _ = write!(s, "  {}", p.notice);
    s
}
