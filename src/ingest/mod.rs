//! Ingest: from a scanner export folder to identified, complete studies.
//!
//! Built so far: header-only reading and the Study → Series → Instance index ([`catalog`]),
//! and an offline scan of a folder ([`scan`]) used by `ismf inspect`.

pub mod catalog;

use catalog::{Added, Catalog};
use std::path::{Path, PathBuf};

/// Errors of ingest, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable DICOM file: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: not an MR image (SOP class {sop_class})")]
    NotAnImage { path: PathBuf, sop_class: String },
    #[error("{path}: required attribute {attribute} is missing or empty")]
    MissingAttribute {
        path: PathBuf,
        attribute: &'static str,
    },
}

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
                Added::New => {}
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
                problem: e.to_string(),
            }),
        }
    }
    Ok(scan)
}
