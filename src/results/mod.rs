//! What the radiologist sees and the hospital stores: the key-image montage (PNG) and the result
//! as DICOM in the source study — a Comprehensive 3D SR (TID 1500, IHE AI Results), a Secondary
//! Capture of the montage, and a Key Object Selection pointing at the key slices and the SC.
//!
//! Every UID is derived from the study UID and the model's sha256 (UUIDv5 under `2.25`), so a
//! re-run — after a crash, or `ismf classify` twice — writes the same objects, and PACS files
//! them as the same instances instead of duplicates. Files are written to a temporary name,
//! fsync'd, then renamed, so a reader never sees half a file.

pub mod dicom;
mod inputs;
pub mod key_images;

pub use inputs::{derived_uid, ResultInputs, ResultsError, PNG_MAX_BYTES};

use std::io::Write;
use std::path::{Path, PathBuf};

/// The files of one study's results, as written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Written {
    pub sr: Option<PathBuf>,
    pub sc: Option<PathBuf>,
    pub kos: Option<PathBuf>,
    pub png: Option<PathBuf>,
    /// The montage, for publishing (absent when rendering failed).
    pub png_bytes: Option<Vec<u8>>,
    /// What could not be made, and why (the SR is still written when the key image fails).
    pub problems: Vec<String>,
}

impl Written {
    /// How a prediction points at this montage published on `topic`; `None` without one, or
    /// when it is over [`PNG_MAX_BYTES`] (then it stays on disk only).
    pub fn key_images_ref(&self, topic: &str) -> Option<crate::publish::message::KeyImagesRef> {
        let png = self.png_bytes.as_ref()?;
        (png.len() <= PNG_MAX_BYTES).then(|| crate::publish::message::KeyImagesRef::of(png, topic))
    }
}

/// File stem of a study's results: the study UID (UIDs are digits and dots, safe in names).
pub fn stem(study_uid: &str) -> String {
    study_uid
        .chars()
        .map(|c| {
            if c.is_ascii_digit() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Renders and writes the results of one study into `dir`: `<study>.sr.dcm`,
/// `<study>.key-images.dcm`, `<study>.kos.dcm` and `<study>.key-images.png`. Without maps, or
/// when the key image cannot be rendered (the reason is in `problems`), the PNG, SC and KOS are
/// left out; the SR is written regardless. An unwritable folder is an error.
pub fn write_results(dir: &Path, inputs: &ResultInputs) -> Result<Written, ResultsError> {
    std::fs::create_dir_all(dir).map_err(|source| ResultsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let stem = stem(&inputs.prediction.study_instance_uid);
    let mut written = Written::default();
    let caption = key_images::Caption {
        model: inputs.prediction.model.name.clone(),
        version: inputs.prediction.model.version.clone(),
        precision: inputs.prediction.model.precision.clone(),
    };
    let montage = inputs
        .explanation
        .map(|e| key_images::render(e, inputs.probabilities, &caption, inputs.max_voxels));
    let objects =
        dicom::ResultObjects::build(inputs, montage.as_ref().and_then(|m| m.as_ref().ok()))?;
    let sr = dir.join(format!("{stem}.sr.dcm"));
    write_atomic(&sr, &objects.sr)?;
    written.sr = Some(sr);
    match montage {
        None => {}
        Some(Ok(m)) => {
            let (png, scale) = m.png_within(PNG_MAX_BYTES)?;
            if scale < 1.0 {
                tracing::info!(
                    scale,
                    bytes = png.len(),
                    "key-image PNG scaled to fit its budget"
                );
            }
            let path = dir.join(format!("{stem}.key-images.png"));
            write_atomic(&path, &png)?;
            written.png = Some(path);
            written.png_bytes = Some(png);
            if let (Some(sc), Some(kos)) = (&objects.sc, &objects.kos) {
                let path = dir.join(format!("{stem}.key-images.dcm"));
                write_atomic(&path, sc)?;
                written.sc = Some(path);
                let path = dir.join(format!("{stem}.kos.dcm"));
                write_atomic(&path, kos)?;
                written.kos = Some(path);
            }
        }
        Some(Err(e)) => {
            tracing::warn!(study = %inputs.prediction.study_instance_uid, error = %e, "key images left out");
            written.problems.push(e.to_string());
        }
    }
    sync_dir(dir)?;
    Ok(written)
}

/// Writes `bytes` to `path` through a temporary file that is fsync'd and renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ResultsError::Io { path, source }
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), ResultsError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ResultsError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uids_are_valid_stable_and_distinct() {
        let a = derived_uid("1.2.3", "abc", "sr");
        assert_eq!(a, derived_uid("1.2.3", "abc", "sr"));
        assert_ne!(a, derived_uid("1.2.3", "abc", "sc"));
        assert_ne!(a, derived_uid("1.2.3", "abd", "sr"));
        assert!(a.len() <= 64 && a.starts_with("2.25."));
        assert!(a[5..].chars().all(|c| c.is_ascii_digit()) && !a[5..].starts_with('0'));
    }
}
