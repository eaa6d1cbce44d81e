//! Ingest: from a scanner export folder to identified, complete studies.
//!
//! [`watch`] finds files that are ready (closed after writing, or size and mtime stable);
//! [`Ingest`] reads their headers into the durable [`catalog`], quarantines bad files
//! ([`quarantine`]), and decides when a study is complete ([`complete`]). [`scan`] is the
//! offline path used by `ismf inspect`. The engine is synchronous and takes the time as an
//! argument, so its decisions are tested without sleeping.

pub mod catalog;
pub mod complete;
mod error;
pub mod quarantine;
pub mod report;
pub mod watch;

pub use error::IngestError;

use crate::logging::Chain;
use crate::preprocess::ClinicalHeader;
use crate::series::{Rules, SequenceKind};
use catalog::{Added, Catalog, Journal, Record};
use complete::{StudyState, Timing};
use quarantine::{Quarantine, QuarantineMode};
use report::{study_report, StudyReport};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A file that did not enter the catalog, or entered it with a remark.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub problem: String,
}

/// Result of scanning a path offline.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    pub catalog: Catalog,
    pub problems: Vec<Problem>,
    /// Files skipped on purpose (DICOMDIR, non-image SOP classes), with the reason.
    pub skipped: Vec<Problem>,
}

/// All regular files under `path` (or `path` itself), sorted; symbolic links are not followed.
fn files_under(path: &Path) -> Result<Vec<PathBuf>, IngestError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| IngestError::Io { path: p, source }
    };
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let kind = entry.file_type().map_err(io(&entry.path()))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the header of every file under `path` into a catalog; nothing is moved or changed.
/// Non-DICOM files (such as `truth.jsonl`) are listed as problems, never fatal.
pub fn scan(path: &Path) -> Result<Scan, IngestError> {
    let mut scan = Scan::default();
    for file in files_under(path)? {
        if file
            .file_name()
            .is_some_and(|n| n.eq_ignore_ascii_case("DICOMDIR"))
        {
            scan.skipped.push(Problem {
                path: file,
                problem: "DICOMDIR (media directory, not an image)".into(),
            });
            continue;
        }
        match catalog::read_header(&file) {
            Ok(h) => match scan.catalog.add(h) {
                Added::New | Added::Updated => {}
                Added::Duplicate { first } => scan.skipped.push(Problem {
                    path: file,
                    problem: format!(
                        "duplicate of {} (same SOP Instance UID, same size)",
                        first.display()
                    ),
                }),
                Added::Conflict { first } => scan.problems.push(Problem {
                    path: file,
                    problem: format!(
                        "same SOP Instance UID as {} but a different file; kept the first",
                        first.display()
                    ),
                }),
            },
            Err(e @ IngestError::NotAnImage { .. }) => scan.skipped.push(Problem {
                path: file,
                problem: e.to_string(),
            }),
            Err(e) => scan.problems.push(Problem {
                path: file,
                problem: Chain(&e).to_string(),
            }),
        }
    }
    Ok(scan)
}

/// What the ingest engine needs to know.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    pub watch_dir: PathBuf,
    pub state_dir: PathBuf,
    pub quarantine_dir: PathBuf,
    pub quarantine_mode: QuarantineMode,
    pub timing: Timing,
    /// A file that fails to read is quarantined only if it is still unchanged and failing this
    /// long after the first failure: a writer stalled mid-file must not lose its file.
    pub quarantine_grace_seconds: f64,
    pub rules: Rules,
}

/// Something ingest did or decided, for logs, MQTT events and the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum IngestEvent {
    Added {
        path: PathBuf,
        study: String,
    },
    /// The same SOP Instance re-sent; ignored.
    Duplicate {
        path: PathBuf,
        first: PathBuf,
    },
    /// Another file under an already catalogued SOP Instance UID; the first is kept.
    Conflict {
        path: PathBuf,
        first: PathBuf,
    },
    Skipped {
        path: PathBuf,
        reason: String,
    },
    Quarantined {
        path: PathBuf,
        to: PathBuf,
        reason: String,
    },
    /// The file disappeared before it could be read.
    Vanished {
        path: PathBuf,
    },
    /// The file could not be read yet; it is retried after the grace period, then quarantined.
    Deferred {
        path: PathBuf,
        reason: String,
    },
    /// An instance for a study already processed or failed: catalogued, not reprocessed.
    Late {
        path: PathBuf,
        study: String,
        state: StudyState,
    },
    Complete {
        study: String,
        sequences: Vec<(SequenceKind, Vec<PathBuf>)>,
        clinical: ClinicalHeader,
    },
    Incomplete {
        study: String,
        problems: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug)]
struct Status {
    state: StudyState,
    last_arrival: f64,
    /// When a DICOM sender last released its association after sending to this study: a hint
    /// logged with the completeness decision (the timer still decides).
    released_at: Option<f64>,
}

/// The ingest engine: durable catalog, quarantine and completeness.
#[derive(Debug)]
pub struct Ingest {
    config: IngestConfig,
    catalog: Catalog,
    journal: Journal,
    studies: BTreeMap<String, Status>,
    /// Files already handled (catalogued or rejected), by path, with their size then.
    handled: HashMap<PathBuf, u64>,
    /// Files that failed to read, by path: (size then, time of the failure, reason).
    deferred: HashMap<PathBuf, (u64, f64, String)>,
    quarantine: Quarantine,
}

impl Ingest {
    /// When the study's last file arrived (seconds since the Unix epoch, as passed to
    /// [`Ingest::offer`]), if the study is known.
    pub fn last_arrival(&self, study: &str) -> Option<f64> {
        self.studies.get(study).map(|s| s.last_arrival)
    }

    /// Opens the state folder and replays its journal. Returns the engine and the events a
    /// restart owes: studies that were complete but never marked processed are announced again.
    pub fn open(config: IngestConfig) -> Result<(Ingest, Vec<IngestEvent>), IngestError> {
        let (journal, records) = Journal::open(&config.state_dir)?;
        let quarantine = Quarantine {
            dir: config.quarantine_dir.clone(),
            mode: config.quarantine_mode,
        };
        let mut ingest = Ingest {
            config,
            catalog: Catalog::default(),
            journal,
            studies: BTreeMap::new(),
            handled: HashMap::new(),
            deferred: HashMap::new(),
            quarantine,
        };
        for r in records {
            match r {
                Record::Instance { at, header } => {
                    ingest.handled.insert(header.path.clone(), header.file_size);
                    let study = header.study_instance_uid.clone();
                    ingest.catalog.add(*header);
                    let s = ingest.studies.entry(study).or_insert(Status {
                        state: StudyState::Receiving,
                        last_arrival: at,
                        released_at: None,
                    });
                    s.last_arrival = s.last_arrival.max(at);
                }
                Record::State { study, state, .. } => {
                    if let Some(s) = ingest.studies.get_mut(&study) {
                        s.state = state;
                    }
                }
                Record::Rejected { path, size, .. } => {
                    ingest.handled.insert(path, size);
                }
            }
        }
        let owed: Vec<String> = ingest
            .studies
            .iter()
            .filter(|(_, s)| s.state == StudyState::Complete)
            .map(|(k, _)| k.clone())
            .collect();
        let events = owed
            .into_iter()
            .filter_map(|study| {
                let entry = ingest.catalog.studies.get(&study)?;
                let report = study_report(entry, &ingest.config.rules);
                ingest.complete_event(&study, &report)
            })
            .collect();
        Ok((ingest, events))
    }

    pub fn state(&self, study: &str) -> Option<StudyState> {
        self.studies.get(study).map(|s| s.state)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn reject(
        &mut self,
        path: &Path,
        size: u64,
        reason: String,
        now: f64,
    ) -> Result<(), IngestError> {
        self.handled.insert(path.to_path_buf(), size);
        self.journal.append(&Record::Rejected {
            at: now,
            path: path.to_path_buf(),
            size,
            reason,
        })
    }

    /// Quarantines `path` with `reason` (also for the pipeline, when decoding fails later).
    pub fn quarantine_file(
        &mut self,
        path: &Path,
        size: u64,
        reason: String,
        now: f64,
    ) -> Result<IngestEvent, IngestError> {
        // A file from outside the export folder (the DICOM receiver's) keeps its own name.
        let root = if path.starts_with(&self.config.watch_dir) {
            self.config.watch_dir.as_path()
        } else {
            path.parent().unwrap_or(path)
        };
        let to = self.quarantine.put(root, path, &reason)?;
        tracing::warn!(file = %path.display(), quarantined = %to.display(), %reason, "file quarantined");
        self.reject(path, size, reason.clone(), now)?;
        Ok(IngestEvent::Quarantined {
            path: path.to_path_buf(),
            to,
            reason,
        })
    }

    /// Takes a file the watcher found ready. Bad files are quarantined; nothing here stops
    /// the process — only a failing state folder is an error.
    pub fn offer(&mut self, path: &Path, now: f64) -> Result<Vec<IngestEvent>, IngestError> {
        let size = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Ok(Vec::new()),
            Err(_) => {
                self.deferred.remove(path);
                return Ok(vec![IngestEvent::Vanished {
                    path: path.to_path_buf(),
                }]);
            }
        };
        if self.handled.get(path) == Some(&size) {
            return Ok(Vec::new());
        }
        if path
            .file_name()
            .is_some_and(|n| n.eq_ignore_ascii_case("DICOMDIR"))
        {
            let reason = "DICOMDIR (media directory, not an image)".to_string();
            self.reject(path, size, reason.clone(), now)?;
            return Ok(vec![IngestEvent::Skipped {
                path: path.to_path_buf(),
                reason,
            }]);
        }
        if size == 0 {
            return self.defer_or_quarantine(path, size, "empty file (0 bytes)".into(), now);
        }
        let header = match catalog::read_header(path) {
            Ok(h) => h,
            Err(e @ IngestError::NotAnImage { .. }) => {
                self.reject(path, size, e.to_string(), now)?;
                return Ok(vec![IngestEvent::Skipped {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }]);
            }
            Err(IngestError::Io { .. }) if !path.exists() => {
                return Ok(vec![IngestEvent::Vanished {
                    path: path.to_path_buf(),
                }])
            }
            Err(e) => return self.defer_or_quarantine(path, size, Chain(&e).to_string(), now),
        };
        self.deferred.remove(path);
        let study = header.study_instance_uid.clone();
        match self.catalog.add(header.clone()) {
            Added::Duplicate { first } => {
                self.reject(path, size, format!("duplicate of {}", first.display()), now)?;
                Ok(vec![IngestEvent::Duplicate {
                    path: path.to_path_buf(),
                    first,
                }])
            }
            Added::Conflict { first } => {
                self.reject(
                    path,
                    size,
                    format!("conflicts with {}", first.display()),
                    now,
                )?;
                tracing::warn!(file = %path.display(), first = %first.display(), "conflicting file under a known SOP Instance UID");
                Ok(vec![IngestEvent::Conflict {
                    path: path.to_path_buf(),
                    first,
                }])
            }
            Added::New | Added::Updated => {
                self.journal.append(&Record::Instance {
                    at: now,
                    header: Box::new(header),
                })?;
                self.handled.insert(path.to_path_buf(), size);
                let status = self.studies.entry(study.clone()).or_insert(Status {
                    state: StudyState::Receiving,
                    last_arrival: now,
                    released_at: None,
                });
                status.last_arrival = now;
                match status.state {
                    StudyState::Receiving => Ok(vec![IngestEvent::Added {
                        path: path.to_path_buf(),
                        study,
                    }]),
                    StudyState::Complete | StudyState::Incomplete => {
                        // A late series re-opens a study that has not been processed yet.
                        status.state = StudyState::Receiving;
                        self.journal.append(&Record::State {
                            at: now,
                            study: study.clone(),
                            state: StudyState::Receiving,
                        })?;
                        Ok(vec![IngestEvent::Added {
                            path: path.to_path_buf(),
                            study,
                        }])
                    }
                    state @ (StudyState::Processed | StudyState::Failed) => {
                        Ok(vec![IngestEvent::Late {
                            path: path.to_path_buf(),
                            study,
                            state,
                        }])
                    }
                }
            }
        }
    }

    /// Takes an instance the DICOM receiver stored. It is complete by construction (fsync'd and
    /// renamed), so there is no grace period: a file that does not read is quarantined at once,
    /// and so is one whose data set is not an image (it came under an image SOP class). A
    /// duplicate of a catalogued instance is removed (the catalog keeps the first).
    pub fn offer_received(
        &mut self,
        path: &Path,
        now: f64,
    ) -> Result<Vec<IngestEvent>, IngestError> {
        let mut out = Vec::new();
        for event in self.offer(path, now)? {
            match event {
                IngestEvent::Deferred { path, reason } | IngestEvent::Skipped { path, reason } => {
                    self.deferred.remove(&path);
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    out.push(self.quarantine_file(&path, size, reason, now)?);
                }
                IngestEvent::Duplicate { path, first } if path != first => {
                    let _ = std::fs::remove_file(&path);
                    out.push(IngestEvent::Duplicate { path, first });
                }
                other => out.push(other),
            }
        }
        Ok(out)
    }

    /// Records that a DICOM sender released its association after sending to `study`.
    pub fn note_released(&mut self, study: &str, now: f64) {
        if let Some(s) = self.studies.get_mut(study) {
            s.released_at = Some(now);
        }
    }

    /// The `Complete` event of `study`, from its already computed `report`.
    fn complete_event(&self, study: &str, report: &StudyReport) -> Option<IngestEvent> {
        let entry = self.catalog.studies.get(study)?;
        let sequences = report.sequences.files();
        Some(IngestEvent::Complete {
            study: study.to_string(),
            sequences,
            clinical: entry.clinical(),
        })
    }

    /// First failure of a file: wait. Still failing, same size, after the grace: quarantine.
    fn defer_or_quarantine(
        &mut self,
        path: &Path,
        size: u64,
        reason: String,
        now: f64,
    ) -> Result<Vec<IngestEvent>, IngestError> {
        match self.deferred.get(path) {
            Some(&(s, since, _))
                if s == size && now - since >= self.config.quarantine_grace_seconds =>
            {
                self.deferred.remove(path);
                Ok(vec![self.quarantine_file(path, size, reason, now)?])
            }
            Some(&(s, _, _)) if s == size => Ok(Vec::new()),
            _ => {
                tracing::debug!(file = %path.display(), %reason, "unreadable for now; retried after the grace period");
                self.deferred
                    .insert(path.to_path_buf(), (size, now, reason.clone()));
                Ok(vec![IngestEvent::Deferred {
                    path: path.to_path_buf(),
                    reason,
                }])
            }
        }
    }

    /// Decides, at `now`, which receiving studies are complete or incomplete, and retries files
    /// whose grace period is over.
    pub fn tick(&mut self, now: f64) -> Result<Vec<IngestEvent>, IngestError> {
        let mut events = Vec::new();
        let due: Vec<PathBuf> = self
            .deferred
            .iter()
            .filter(|(_, (_, since, _))| now - since >= self.config.quarantine_grace_seconds)
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            events.extend(self.offer(&path, now)?);
        }
        let receiving: Vec<(String, f64)> = self
            .studies
            .iter()
            .filter(|(_, s)| s.state == StudyState::Receiving)
            .map(|(k, s)| (k.clone(), s.last_arrival))
            .collect();
        for (study, last) in receiving {
            if now - last < self.config.timing.stable_seconds {
                continue;
            }
            let Some(entry) = self.catalog.studies.get(&study) else {
                continue;
            };
            let report = study_report(entry, &self.config.rules);
            let Some(state) = complete::decide(report.complete, last, now, &self.config.timing)
            else {
                continue;
            };
            if let Some(released) = self.studies.get(&study).and_then(|s| s.released_at) {
                tracing::info!(
                    study = %study,
                    state = ?state,
                    after_release_s = format!("{:.1}", now - released),
                    "study decided after its sender released the association"
                );
            }
            self.set_state(&study, state, now)?;
            match state {
                StudyState::Complete => events.extend(self.complete_event(&study, &report)),
                _ => events.push(IngestEvent::Incomplete {
                    study,
                    problems: report.problems,
                }),
            }
        }
        Ok(events)
    }

    /// Records a study's new state (the pipeline marks studies processed or failed).
    pub fn set_state(
        &mut self,
        study: &str,
        state: StudyState,
        now: f64,
    ) -> Result<(), IngestError> {
        if let Some(s) = self.studies.get_mut(study) {
            s.state = state;
            self.journal.append(&Record::State {
                at: now,
                study: study.to_string(),
                state,
            })?;
        }
        Ok(())
    }
}
