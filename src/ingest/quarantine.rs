//! Quarantine: a bad file is moved (or copied, by config) into the quarantine folder beside a
//! `<name>.reason.txt` naming the error. Nothing is deleted: a moved file lives on in quarantine.

use super::error::IngestError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Whether quarantining takes the file out of the export folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineMode {
    Move,
    Copy,
}

/// The quarantine folder.
#[derive(Clone, Debug)]
pub struct Quarantine {
    pub dir: PathBuf,
    pub mode: QuarantineMode,
}

impl Quarantine {
    /// Puts `path` (found under `root`) into quarantine with `reason`; returns where it went.
    /// The quarantined name flattens the path below `root` (`a/b.dcm` → `a__b.dcm`) and gets a
    /// numeric suffix if that name is taken.
    pub fn put(&self, root: &Path, path: &Path, reason: &str) -> Result<PathBuf, IngestError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| IngestError::Io { path: p, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let rel = path.strip_prefix(root).unwrap_or(path);
        let flat: String = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("__");
        let mut target = self.dir.join(&flat);
        let mut n = 1;
        while target.exists() {
            target = self.dir.join(format!("{flat}.{n}"));
            n += 1;
        }
        match self.mode {
            QuarantineMode::Copy => {
                std::fs::copy(path, &target).map_err(io(path))?;
            }
            QuarantineMode::Move => {
                if std::fs::rename(path, &target).is_err() {
                    // Across file systems: copy, then remove the original.
                    std::fs::copy(path, &target).map_err(io(path))?;
                    std::fs::remove_file(path).map_err(io(path))?;
                }
            }
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let note = target.with_file_name(format!("{name}.reason.txt"));
        let text = format!("file: {}\nreason: {reason}\n", path.display());
        std::fs::write(&note, text).map_err(io(&note))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_and_copies_with_a_reason_and_no_overwrite() {
        let d = tempfile::tempdir().expect("dir");
        let root = d.path().join("in");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        let f = root.join("sub").join("x.dcm");
        std::fs::write(&f, b"bad").expect("write");
        let q = Quarantine {
            dir: d.path().join("q"),
            mode: QuarantineMode::Copy,
        };
        let a = q.put(&root, &f, "not DICOM").expect("copy");
        assert!(f.exists(), "copy keeps the original");
        assert_eq!(a.file_name().and_then(|n| n.to_str()), Some("sub__x.dcm"));
        let reason = std::fs::read_to_string(d.path().join("q").join("sub__x.dcm.reason.txt"))
            .expect("reason");
        assert!(reason.contains("not DICOM") && reason.contains("x.dcm"));
        let q = Quarantine {
            mode: QuarantineMode::Move,
            ..q
        };
        let b = q.put(&root, &f, "again").expect("move");
        assert!(
            !f.exists() && b.exists() && b != a,
            "moved under a new name"
        );
    }
}
