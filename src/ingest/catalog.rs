//! Header-only reads and the Study → Series → Instance index.
//!
//! Reading stops before PixelData, so cataloguing a file costs its header, not its pixels. The
//! index deduplicates by SOP Instance UID: the same instance re-sent is ignored; a different
//! file under an already-seen UID is reported as a conflict (it is the caller's event to raise).

use super::error::IngestError;
use crate::series::SeriesHeader;
use dicom_core::Tag;
use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the catalog keeps of one instance.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceHeader {
    pub path: PathBuf,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub transfer_syntax: String,
    pub modality: String,
    pub instance_number: Option<i64>,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub protocol_name: String,
    pub image_type: Vec<String>,
    pub scanning_sequence: Vec<String>,
    pub sequence_variant: Vec<String>,
    pub scan_options: Vec<String>,
    pub echo_time: Option<f64>,
    pub repetition_time: Option<f64>,
    pub inversion_time: Option<f64>,
    pub image_position: Option<[f64; 3]>,
    pub image_orientation: Option<[f64; 6]>,
    pub contrast_agent: Option<String>,
    pub diffusion_b_value: Option<f64>,
    pub spectral_suppression: Option<String>,
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub patient_age: Option<String>,
    pub patient_sex: Option<String>,
    pub patient_birth_date: Option<String>,
    pub study_date: Option<String>,
    pub body_part: Option<String>,
    pub study_description: Option<String>,
    /// Bytes of the file, to tell a re-send from a different file under the same UID.
    pub file_size: u64,
}

/// SOP classes this appliance reads: classic and enhanced MR images.
const IMAGE_CLASSES: [&str; 3] = [
    uids::MR_IMAGE_STORAGE,
    uids::ENHANCED_MR_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE,
];

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let s = obj
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_str()
        .ok()?
        .trim()
        .trim_end_matches('\0')
        .to_string();
    (!s.is_empty()).then_some(s)
}

fn multi(obj: &DefaultDicomObject, tag: Tag) -> Vec<String> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| {
            e.to_multi_str().ok().map(|v| {
                v.iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn float(obj: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    obj.element_opt(tag).ok().flatten()?.to_float64().ok()
}

fn floats<const N: usize>(obj: &DefaultDicomObject, tag: Tag) -> Option<[f64; N]> {
    let v = obj
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_multi_float64()
        .ok()?;
    v.try_into().ok()
}

fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

/// Reads the header of `path` (stopping before PixelData). Files that are not MR images —
/// DICOMDIR, structured reports, other modalities — are `IngestError::NotAnImage`.
pub fn read_header(path: &Path) -> Result<InstanceHeader, IngestError> {
    let file_size = std::fs::metadata(path)
        .map_err(|source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    crate::dicom_guard::check(path).map_err(|reason| IngestError::Unreadable {
        path: path.to_path_buf(),
        reason,
    })?;
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| IngestError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let meta = obj.meta();
    let sop_class = meta
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        .to_string();
    let transfer_syntax = meta.transfer_syntax().trim_end_matches('\0').to_string();
    let sop_class = text(&obj, tags::SOP_CLASS_UID).unwrap_or(sop_class);
    if !IMAGE_CLASSES.contains(&sop_class.as_str()) {
        return Err(IngestError::NotAnImage {
            path: path.to_path_buf(),
            sop_class,
        });
    }
    let required = |tag: Tag, name: &'static str| {
        text(&obj, tag).ok_or_else(|| IngestError::MissingAttribute {
            path: path.to_path_buf(),
            attribute: name,
        })
    };
    let rows = int(&obj, tags::ROWS).unwrap_or(0);
    let columns = int(&obj, tags::COLUMNS).unwrap_or(0);
    if rows <= 0 || columns <= 0 {
        return Err(IngestError::MissingAttribute {
            path: path.to_path_buf(),
            attribute: "Rows/Columns",
        });
    }
    let frames = int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    // Uncompressed pixel data has a known size: a file too short for what its header claims is
    // truncated or lying about its dimensions, and is refused before anyone allocates for it.
    const NATIVE: [&str; 3] = [
        uids::IMPLICIT_VR_LITTLE_ENDIAN,
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
        "1.2.840.10008.1.2.2", // Explicit VR Big Endian (retired, still sent)
    ];
    if NATIVE.contains(&transfer_syntax.as_str()) {
        let bytes_per_sample =
            (int(&obj, tags::BITS_ALLOCATED).unwrap_or(16).max(1) as u64).div_ceil(8);
        let samples = int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1).max(1) as u64;
        let claimed = (rows as u64)
            .saturating_mul(columns as u64)
            .saturating_mul(frames as u64)
            .saturating_mul(bytes_per_sample * samples);
        if claimed > file_size {
            return Err(IngestError::Unreadable {
                path: path.to_path_buf(),
                reason: format!(
                    "header claims {rows} × {columns} × {frames} pixels ({claimed} bytes) but the file has {file_size} bytes"
                ),
            });
        }
    }
    Ok(InstanceHeader {
        path: path.to_path_buf(),
        sop_instance_uid: required(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        study_instance_uid: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series_instance_uid: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        sop_class_uid: sop_class,
        transfer_syntax,
        modality: text(&obj, tags::MODALITY).unwrap_or_default(),
        instance_number: int(&obj, tags::INSTANCE_NUMBER),
        series_number: int(&obj, tags::SERIES_NUMBER),
        series_description: text(&obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        protocol_name: text(&obj, tags::PROTOCOL_NAME).unwrap_or_default(),
        image_type: multi(&obj, tags::IMAGE_TYPE),
        scanning_sequence: multi(&obj, tags::SCANNING_SEQUENCE),
        sequence_variant: multi(&obj, tags::SEQUENCE_VARIANT),
        scan_options: multi(&obj, tags::SCAN_OPTIONS),
        echo_time: float(&obj, tags::ECHO_TIME),
        repetition_time: float(&obj, tags::REPETITION_TIME),
        inversion_time: float(&obj, tags::INVERSION_TIME),
        image_position: floats(&obj, tags::IMAGE_POSITION_PATIENT),
        image_orientation: floats(&obj, tags::IMAGE_ORIENTATION_PATIENT),
        contrast_agent: text(&obj, tags::CONTRAST_BOLUS_AGENT),
        diffusion_b_value: float(&obj, tags::DIFFUSION_B_VALUE),
        spectral_suppression: text(&obj, tags::SPECTRALLY_SELECTED_SUPPRESSION),
        rows: rows as u32,
        columns: columns as u32,
        frames: frames as u32,
        patient_age: text(&obj, tags::PATIENT_AGE),
        patient_sex: text(&obj, tags::PATIENT_SEX),
        patient_birth_date: text(&obj, tags::PATIENT_BIRTH_DATE),
        study_date: text(&obj, tags::STUDY_DATE),
        body_part: text(&obj, tags::BODY_PART_EXAMINED),
        study_description: text(&obj, tags::STUDY_DESCRIPTION),
        file_size,
    })
}

/// One series of the index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesEntry {
    pub series_instance_uid: String,
    /// Instances by SOP Instance UID.
    pub instances: BTreeMap<String, InstanceHeader>,
}

impl SeriesEntry {
    /// The identification view of this series: attributes of its first instance, every
    /// distinct orientation, and the instance count.
    pub fn header(&self) -> SeriesHeader {
        let mut orientations: Vec<[f64; 6]> = Vec::new();
        for i in self.instances.values() {
            if let Some(o) = i.image_orientation {
                if !orientations
                    .iter()
                    .any(|p| p.iter().zip(&o).all(|(a, b)| (a - b).abs() < 1e-3))
                {
                    orientations.push(o);
                }
            }
        }
        let first = self.instances.values().next();
        let get = |f: fn(&InstanceHeader) -> String| first.map(f).unwrap_or_default();
        SeriesHeader {
            series_number: first.and_then(|i| i.series_number),
            description: get(|i| i.series_description.clone()),
            protocol_name: get(|i| i.protocol_name.clone()),
            image_type: first.map(|i| i.image_type.clone()).unwrap_or_default(),
            scanning_sequence: first
                .map(|i| i.scanning_sequence.clone())
                .unwrap_or_default(),
            sequence_variant: first
                .map(|i| i.sequence_variant.clone())
                .unwrap_or_default(),
            scan_options: first.map(|i| i.scan_options.clone()).unwrap_or_default(),
            echo_time: first.and_then(|i| i.echo_time),
            repetition_time: first.and_then(|i| i.repetition_time),
            inversion_time: first.and_then(|i| i.inversion_time),
            orientations,
            contrast_agent: first.and_then(|i| i.contrast_agent.clone()),
            diffusion_b_value: first.and_then(|i| i.diffusion_b_value),
            spectral_suppression: first.and_then(|i| i.spectral_suppression.clone()),
            instances: self.instances.len(),
        }
    }

    /// File paths in instance-number order.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<&InstanceHeader> = self.instances.values().collect();
        v.sort_by_key(|i| (i.instance_number, i.path.clone()));
        v.into_iter().map(|i| i.path.clone()).collect()
    }
}

impl InstanceHeader {
    /// The header values of the clinical vector.
    pub fn clinical(&self) -> crate::preprocess::ClinicalHeader {
        crate::preprocess::ClinicalHeader {
            patient_age: self.patient_age.clone(),
            patient_birth_date: self.patient_birth_date.clone(),
            study_date: self.study_date.clone(),
            patient_sex: self.patient_sex.clone(),
            body_part: self.body_part.clone(),
            descriptions: self
                .study_description
                .iter()
                .chain([&self.series_description])
                .cloned()
                .collect(),
        }
    }
}

/// One study of the index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StudyEntry {
    pub study_instance_uid: String,
    pub series: BTreeMap<String, SeriesEntry>,
}

impl StudyEntry {
    /// The clinical header values (age, sex, body region, …) from the study's first catalogued
    /// instance: they are study-level, and the catalog already holds them, so no file is reread.
    pub fn clinical(&self) -> crate::preprocess::ClinicalHeader {
        self.series
            .values()
            .flat_map(|s| s.instances.values())
            .next()
            .map(|h| h.clinical())
            .unwrap_or_default()
    }
}

/// What adding an instance did.
#[derive(Clone, Debug, PartialEq)]
pub enum Added {
    New,
    /// The same SOP Instance UID again with the same size: a re-send, ignored.
    Duplicate {
        first: PathBuf,
    },
    /// The same SOP Instance UID in a file of another size: kept the first, report it.
    Conflict {
        first: PathBuf,
    },
    /// The same file (path and SOP Instance UID) read again after it changed; entry replaced.
    Updated,
}

/// The in-memory Study → Series → Instance index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    pub studies: BTreeMap<String, StudyEntry>,
}

impl Catalog {
    pub fn add(&mut self, h: InstanceHeader) -> Added {
        let study = self
            .studies
            .entry(h.study_instance_uid.clone())
            .or_insert_with(|| StudyEntry {
                study_instance_uid: h.study_instance_uid.clone(),
                series: BTreeMap::new(),
            });
        let series = study
            .series
            .entry(h.series_instance_uid.clone())
            .or_insert_with(|| SeriesEntry {
                series_instance_uid: h.series_instance_uid.clone(),
                instances: BTreeMap::new(),
            });
        if let Some(first) = series.instances.get(&h.sop_instance_uid) {
            if first.path == h.path {
                // The same file again, grown or rewritten since it was first read: keep the new.
                let same = first.file_size == h.file_size;
                let key = h.sop_instance_uid.clone();
                series.instances.insert(key.clone(), h);
                return if same {
                    Added::Duplicate {
                        first: series.instances[&key].path.clone(),
                    }
                } else {
                    Added::Updated
                };
            }
            return if first.file_size == h.file_size {
                Added::Duplicate {
                    first: first.path.clone(),
                }
            } else {
                Added::Conflict {
                    first: first.path.clone(),
                }
            };
        }
        series.instances.insert(h.sop_instance_uid.clone(), h);
        Added::New
    }
}

/// One line of the catalog journal.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// An instance entered the catalog at `at` (unix seconds).
    Instance {
        at: f64,
        header: Box<InstanceHeader>,
    },
    /// A study changed state.
    State {
        at: f64,
        study: String,
        state: super::complete::StudyState,
    },
    /// A file was quarantined or skipped; not offered again while its size is unchanged.
    Rejected {
        at: f64,
        path: PathBuf,
        size: u64,
        reason: String,
    },
}

/// The durable side of the catalog: an append-only JSON-lines journal in the state folder,
/// synced after every record, replayed on start. A torn last line (power cut mid-write) is
/// dropped with a warning; everything before it stands.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    /// Opens (creating) `dir/catalog.jsonl` and returns the records already in it.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Record>), IngestError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| IngestError::Io { path: p, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("catalog.jsonl");
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(IngestError::Io { path, source: e }),
        };
        let mut records = Vec::new();
        let mut good_len = 0;
        for line in text.split_inclusive('\n') {
            match serde_json::from_str::<Record>(line.trim_end()) {
                Ok(r) if line.ends_with('\n') => {
                    records.push(r);
                    good_len += line.len();
                }
                _ => {
                    tracing::warn!(journal = %path.display(), "dropping a torn or unreadable journal line");
                    break;
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        // Cut a torn tail so the next record starts on a clean line.
        if good_len < text.len() {
            file.set_len(good_len as u64).map_err(io(&path))?;
        }
        Ok((Journal { path, file }, records))
    }

    /// Appends one record and syncs it to disk.
    pub fn append(&mut self, record: &Record) -> Result<(), IngestError> {
        use std::io::Write;
        let mut line = serde_json::to_string(record).map_err(|e| IngestError::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|source| IngestError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, sop: &str, size: u64) -> InstanceHeader {
        InstanceHeader {
            path: PathBuf::from(path),
            sop_class_uid: uids::MR_IMAGE_STORAGE.into(),
            sop_instance_uid: sop.into(),
            study_instance_uid: "1.2.3".into(),
            series_instance_uid: "1.2.3.4".into(),
            transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN.into(),
            modality: "MR".into(),
            instance_number: Some(1),
            series_number: Some(1),
            series_description: String::new(),
            protocol_name: String::new(),
            image_type: Vec::new(),
            scanning_sequence: Vec::new(),
            sequence_variant: Vec::new(),
            scan_options: Vec::new(),
            echo_time: None,
            repetition_time: None,
            inversion_time: None,
            image_position: None,
            image_orientation: None,
            contrast_agent: None,
            diffusion_b_value: None,
            spectral_suppression: None,
            rows: 4,
            columns: 4,
            frames: 1,
            patient_age: None,
            patient_sex: None,
            patient_birth_date: None,
            study_date: None,
            body_part: None,
            study_description: None,
            file_size: size,
        }
    }

    #[test]
    fn resends_conflicts_and_rewrites_are_told_apart() {
        let mut c = Catalog::default();
        assert_eq!(c.add(header("/a", "9", 100)), Added::New);
        assert_eq!(
            c.add(header("/b", "9", 100)),
            Added::Duplicate { first: "/a".into() }
        );
        assert_eq!(
            c.add(header("/c", "9", 120)),
            Added::Conflict { first: "/a".into() }
        );
        // The same path grown since: the entry follows the file.
        assert_eq!(c.add(header("/a", "9", 150)), Added::Updated);
        let kept = &c.studies["1.2.3"].series["1.2.3.4"].instances["9"];
        assert_eq!(kept.file_size, 150);
    }
}
