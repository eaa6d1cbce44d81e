//! DICOM pixel decoding into float volumes, with limits.
//!
//! dicom-pixeldata decodes the transfer syntaxes listed in [`SUPPORTED`] (native little and big
//! endian, deflate, RLE, JPEG baseline and lossless, JPEG-LS through CharLS, JPEG 2000 through
//! openjp2). Anything else — 12-bit lossy JPEG, vendor-private syntaxes — is refused with its
//! UID and the file named, before any pixel is read. The header is read first and the claimed
//! rows × columns × frames checked against a limit, so a forged header cannot make us allocate.
//! Values come out after the modality LUT (rescale slope/intercept), with MONOCHROME1 inverted so
//! that brighter is always larger. Enhanced MR multi-frame files keep per-frame geometry.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use std::path::{Path, PathBuf};

/// Transfer syntaxes we decode, with names for messages.
pub const SUPPORTED: [(&str, &str); 12] = [
    ("1.2.840.10008.1.2", "Implicit VR Little Endian"),
    ("1.2.840.10008.1.2.1", "Explicit VR Little Endian"),
    ("1.2.840.10008.1.2.2", "Explicit VR Big Endian"),
    (
        "1.2.840.10008.1.2.1.99",
        "Deflated Explicit VR Little Endian",
    ),
    ("1.2.840.10008.1.2.5", "RLE Lossless"),
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline (8-bit)"),
    ("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical"),
    ("1.2.840.10008.1.2.4.70", "JPEG Lossless, SV1"),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless"),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless"),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000"),
];

/// Largest volume decoded by default: 64 Mi voxels (256 MiB as f32).
pub const DEFAULT_MAX_VOXELS: u64 = 64 * 1024 * 1024;

/// Errors of pixel decoding, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum PixelError {
    #[error("{path}: cannot read as DICOM: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: transfer syntax {uid} ({name}) is not supported")]
    UnsupportedTransferSyntax {
        path: PathBuf,
        uid: String,
        name: String,
    },
    #[error("{path}: {rows} × {columns} × {frames} voxels exceeds the limit of {limit}")]
    TooLarge {
        path: PathBuf,
        rows: u64,
        columns: u64,
        frames: u64,
        limit: u64,
    },
    #[error("{path}: {attribute} is missing or invalid")]
    BadAttribute {
        path: PathBuf,
        attribute: &'static str,
    },
    #[error("{path}: pixel data could not be decoded: {reason}")]
    Decode { path: PathBuf, reason: String },
}

/// Decoded pixels of one file: `frames × rows × columns` real-world values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub frames: usize,
    pub rows: usize,
    pub columns: usize,
    pub data: Vec<f32>,
    /// ImagePositionPatient per frame (classic images: one; enhanced: from the functional groups).
    pub positions: Vec<Option<[f64; 3]>>,
    /// ImageOrientationPatient (shared or first frame's).
    pub orientation: Option<[f64; 6]>,
    /// PixelSpacing (between rows, between columns), mm.
    pub pixel_spacing: Option<[f64; 2]>,
    /// SOPInstanceUID, SOPClassUID and SeriesInstanceUID, for results that point back at the
    /// source image.
    pub sop_instance_uid: Option<String>,
    pub sop_class_uid: Option<String>,
    pub series_instance_uid: Option<String>,
}

fn name_of(uid: &str) -> String {
    use dicom_encoding::TransferSyntaxIndex;
    dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(uid)
        .map(|ts| ts.name().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn int(obj: &InMemDicomObject, tag: Tag) -> Option<u64> {
    obj.element_opt(tag).ok().flatten()?.to_int::<u64>().ok()
}

fn floats<const N: usize>(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; N]> {
    obj.element_opt(tag)
        .ok()
        .flatten()?
        .to_multi_float64()
        .ok()?
        .try_into()
        .ok()
}

/// First item of a sequence attribute.
fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.element_opt(tag).ok().flatten()?.items()?.first()
}

/// Checks the header of `path` before any pixel is decoded: transfer syntax and size.
fn check_header(path: &Path, head: &DefaultDicomObject, max_voxels: u64) -> Result<(), PixelError> {
    let uid = head
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    if !SUPPORTED.iter().any(|(u, _)| *u == uid) {
        return Err(PixelError::UnsupportedTransferSyntax {
            path: path.to_path_buf(),
            name: name_of(&uid),
            uid,
        });
    }
    let bad = |attribute| PixelError::BadAttribute {
        path: path.to_path_buf(),
        attribute,
    };
    let rows = int(head, tags::ROWS)
        .filter(|&r| r > 0)
        .ok_or_else(|| bad("Rows"))?;
    let columns = int(head, tags::COLUMNS)
        .filter(|&c| c > 0)
        .ok_or_else(|| bad("Columns"))?;
    let frames = int(head, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let samples = int(head, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if samples != 1 {
        return Err(bad("SamplesPerPixel (only monochrome images are read)"));
    }
    if rows.saturating_mul(columns).saturating_mul(frames) > max_voxels {
        return Err(PixelError::TooLarge {
            path: path.to_path_buf(),
            rows,
            columns,
            frames,
            limit: max_voxels,
        });
    }
    Ok(())
}

/// Image-plane geometry of a file.
struct Geometry {
    positions: Vec<Option<[f64; 3]>>,
    orientation: Option<[f64; 6]>,
    pixel_spacing: Option<[f64; 2]>,
}

/// Per-frame geometry of an enhanced multi-frame object, or the classic attributes.
fn geometry(obj: &DefaultDicomObject, frames: usize) -> Geometry {
    let classic_pos = floats::<3>(obj, tags::IMAGE_POSITION_PATIENT);
    let mut orientation = floats::<6>(obj, tags::IMAGE_ORIENTATION_PATIENT);
    let mut spacing = floats::<2>(obj, tags::PIXEL_SPACING);
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame: Vec<&InMemDicomObject> = obj
        .element_opt(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .map(|items| items.iter().collect())
        .unwrap_or_default();
    let group = |item: Option<&InMemDicomObject>, seq: Tag, attr: Tag| -> Option<Vec<f64>> {
        first_item(item?, seq)?
            .element_opt(attr)
            .ok()
            .flatten()?
            .to_multi_float64()
            .ok()
    };
    if orientation.is_none() {
        orientation = group(
            shared,
            tags::PLANE_ORIENTATION_SEQUENCE,
            tags::IMAGE_ORIENTATION_PATIENT,
        )
        .or_else(|| {
            group(
                per_frame.first().copied(),
                tags::PLANE_ORIENTATION_SEQUENCE,
                tags::IMAGE_ORIENTATION_PATIENT,
            )
        })
        .and_then(|v| v.try_into().ok());
    }
    if spacing.is_none() {
        spacing = group(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)
            .or_else(|| {
                group(
                    per_frame.first().copied(),
                    tags::PIXEL_MEASURES_SEQUENCE,
                    tags::PIXEL_SPACING,
                )
            })
            .and_then(|v| v.try_into().ok());
    }
    let positions = if per_frame.len() == frames && frames > 1 {
        per_frame
            .iter()
            .map(|f| {
                group(
                    Some(f),
                    tags::PLANE_POSITION_SEQUENCE,
                    tags::IMAGE_POSITION_PATIENT,
                )
                .and_then(|v| v.try_into().ok())
            })
            .collect()
    } else {
        let mut v = vec![None; frames];
        if let Some(first) = v.first_mut() {
            *first = classic_pos.or_else(|| {
                group(
                    per_frame.first().copied(),
                    tags::PLANE_POSITION_SEQUENCE,
                    tags::IMAGE_POSITION_PATIENT,
                )
                .and_then(|v| v.try_into().ok())
            });
        }
        v
    };
    Geometry {
        positions,
        orientation,
        pixel_spacing: spacing,
    }
}

/// Decodes `path` into real-world values (modality LUT applied), refusing volumes over
/// `max_voxels` before reading pixel data.
pub fn decode_file(path: &Path, max_voxels: u64) -> Result<Volume, PixelError> {
    // The guard bounds what reading the file can allocate by the file's size; the header
    // check then bounds what decoding may allocate, before it does.
    crate::dicom_guard::check(path).map_err(|reason| PixelError::Unreadable {
        path: path.to_path_buf(),
        reason,
    })?;
    let obj = dicom_object::open_file(path).map_err(|e| PixelError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_header(path, &obj, max_voxels)?;
    let decode_err = |e: dicom_pixeldata::Error| PixelError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    /// What decoding yields before geometry.
    struct Decoded {
        rows: usize,
        columns: usize,
        frames: usize,
        data: Vec<f32>,
        /// (lowest, highest) stored value after rescale, for MONOCHROME1 inversion.
        range: (f64, f64),
    }
    // Codecs are third-party code fed hostile bytes: a panic in one (fuzzing found an index out
    // of bounds in the RLE adapter on a short segment) becomes this file's error, not the
    // appliance's crash.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let d = obj.decode_pixel_data()?;
        let bits = d.bits_stored() as i32;
        let signed = d.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
        let (lo, hi) = if signed {
            (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0)
        } else {
            (0.0, 2f64.powi(bits) - 1.0)
        };
        let (slope, intercept) = d
            .rescale()
            .ok()
            .and_then(|r| r.first().map(|r| (r.slope, r.intercept)))
            .unwrap_or((1.0, 0.0));
        Ok::<_, dicom_pixeldata::Error>(Decoded {
            rows: d.rows() as usize,
            columns: d.columns() as usize,
            frames: d.number_of_frames() as usize,
            data: d.to_vec()?,
            range: (lo * slope + intercept, hi * slope + intercept),
        })
    }))
    .map_err(|panic| PixelError::Decode {
        path: path.to_path_buf(),
        reason: format!("decoder panicked: {}", panic_message(&panic)),
    })?
    .map_err(decode_err)?;
    let Decoded {
        rows,
        columns,
        frames,
        mut data,
        range,
    } = decoded;
    if data.len() != rows * columns * frames {
        return Err(PixelError::Decode {
            path: path.to_path_buf(),
            reason: format!(
                "{} values decoded for {rows} × {columns} × {frames}",
                data.len()
            ),
        });
    }
    let monochrome1 = obj
        .element_opt(tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|s| s.trim() == "MONOCHROME1"))
        .unwrap_or(false);
    if monochrome1 {
        // MONOCHROME1 shows the minimum as white: mirror within the stored range after rescale.
        let sum = (range.0 + range.1) as f32;
        for v in &mut data {
            *v = sum - *v;
        }
    }
    let Geometry {
        positions,
        orientation,
        pixel_spacing,
    } = geometry(&obj, frames);
    let uid = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| {
                e.to_str()
                    .ok()
                    .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            })
            .filter(|s| !s.is_empty())
    };
    Ok(Volume {
        frames,
        rows,
        columns,
        data,
        positions,
        orientation,
        pixel_spacing,
        sop_instance_uid: uid(tags::SOP_INSTANCE_UID),
        sop_class_uid: uid(tags::SOP_CLASS_UID),
        series_instance_uid: uid(tags::SERIES_INSTANCE_UID),
    })
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Writes `volume` as a float32 NumPy `.npy` file of shape [frames, rows, cols].
pub fn write_npy(path: &Path, volume: &Volume) -> std::io::Result<()> {
    let mut w =
        crate::npy::NpyWriter::create(path, "<f4", &[volume.frames, volume.rows, volume.columns])?;
    w.write_f32(&volume.data)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_sized() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("a.npy");
        let v = Volume {
            frames: 2,
            rows: 3,
            columns: 4,
            data: (0..24).map(|x| x as f32).collect(),
            positions: vec![None; 2],
            orientation: None,
            pixel_spacing: None,
            sop_instance_uid: None,
            sop_class_uid: None,
            series_instance_uid: None,
        };
        write_npy(&p, &v).expect("write");
        let b = std::fs::read(&p).expect("read");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(b.len(), 10 + hlen + 24 * 4);
        assert!(String::from_utf8_lossy(&b[10..10 + hlen]).contains("'shape': (2, 3, 4)"));
    }
}
