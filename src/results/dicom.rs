//! The result as DICOM objects filed into the source study: a Comprehensive 3D SR with the
//! TID 1500 Measurement Report (the IHE AI Results profile's encoding of a qualitative AI
//! finding), a Secondary Capture of the key-image montage, and a Key Object Selection (TID 2010)
//! pointing at the key source slices and the SC. dicom-rs has no SR builder: the content tree is
//! built here as nested `InMemDicomObject` sequences, as PS3.3 C.17.3 lays it out.
//!
//! Each object copies the source study's Patient and General Study modules (they must, to file
//! into the study), starts its own series, and names the appliance in Contributing Equipment.

use super::inputs::{derived_uid, ResultInputs, ResultsError};
use super::key_images::{KeyImages, BANNER_ASCII as BANNER, CLASS_NAMES};
use crate::model::CLASSES;
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use std::path::Path;

/// A coded concept (code value, coding scheme designator, code meaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    pub value: &'static str,
    pub scheme: &'static str,
    pub meaning: &'static str,
}

const fn code(value: &'static str, scheme: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        scheme,
        meaning,
    }
}

/// Our private coding scheme (PS3.16 8.2: designators beginning "99" are private).
pub const PRIVATE_SCHEME: &str = "99ISMF";

/// The finding for each class in [`CLASSES`] order: SNOMED CT morphologic abnormality concepts,
/// each checked (2026-12-04) in a published source:
/// - 985004 "Schwannoma", 1157043006 "Astrocytoma", 1186904005 "Ependymoma", 14799000
///   "Neoplasm, metastatic": the eHDSI Morphologic Abnormality value set (hl7-eu
///   EHDSI-Terminology-package, `eHDSIMorphologicAbnormality.fsh`, SNOMED CT International
///   2025-02); 14799000 also in pydicom's `sr/_concepts_dict.py` (from DICOM PS3.16);
/// - 1373614004 "Meningioma": new in the SNOMED CT International release of October 2025 (its
///   release notes); before it, meningioma had no morphology concept of its own (127579001
///   "Meningeal neoplasm" was the nearest).
///
/// A reader that predates a code still gets the meaning from CodeMeaning.
pub const FINDING_CODES: [Code; 5] = [
    code("985004", "SCT", "Schwannoma"),
    code("1373614004", "SCT", "Meningioma"),
    code("1157043006", "SCT", "Astrocytoma"),
    code("1186904005", "SCT", "Ependymoma"),
    code("14799000", "SCT", "Neoplasm, metastatic"),
];

/// A probability: dimensionless, UCUM unit "1".
const UNIT_ONE: Code = code("1", "UCUM", "no units");

mod concept {
    use crate::results::dicom::{code, Code};
    pub const REPORT: Code = code("126000", "DCM", "Imaging Measurement Report");
    pub const LANGUAGE: Code = code("121049", "DCM", "Language of Content Item and Descendants");
    pub const ENGLISH: Code = code("en-US", "RFC5646", "English (United States)");
    pub const OBSERVER_TYPE: Code = code("121005", "DCM", "Observer Type");
    pub const DEVICE: Code = code("121007", "DCM", "Device");
    pub const DEVICE_UID: Code = code("121012", "DCM", "Device Observer UID");
    pub const DEVICE_NAME: Code = code("121013", "DCM", "Device Observer Name");
    pub const DEVICE_MANUFACTURER: Code = code("121014", "DCM", "Device Observer Manufacturer");
    pub const DEVICE_MODEL: Code = code("121015", "DCM", "Device Observer Model Name");
    pub const PROCEDURE: Code = code("121058", "DCM", "Procedure reported");
    pub const IMAGE_LIBRARY: Code = code("111028", "DCM", "Image Library");
    pub const IMAGE_LIBRARY_GROUP: Code = code("126200", "DCM", "Image Library Group");
    pub const MEASUREMENTS: Code = code("126010", "DCM", "Imaging Measurements");
    pub const GROUP: Code = code("125007", "DCM", "Measurement Group");
    pub const TRACKING_ID: Code = code("112039", "DCM", "Tracking Identifier");
    pub const TRACKING_UID: Code = code("112040", "DCM", "Tracking Unique Identifier");
    pub const FINDING: Code = code("121071", "DCM", "Finding");
    pub const ALGORITHM_NAME: Code = code("111001", "DCM", "Algorithm Name");
    pub const ALGORITHM_VERSION: Code = code("111003", "DCM", "Algorithm Version");
    pub const ALGORITHM_PARAMETERS: Code = code("111002", "DCM", "Algorithm Parameters");
    /// Concept name of Image Library entries (as highdicom writes them).
    pub const SOURCE: Code = code("260753009", "SCT", "Source");
    /// Images a measurement group's values were derived from.
    pub const SOURCE_OF_MEASUREMENT: Code = code("121112", "DCM", "Source of Measurement");
    /// The procedure the report is about: an MRI. CID 100 (TID 1500's context group for
    /// Procedure reported) has no spine-specific MR member; this is its MR entry.
    pub const MR_PROCEDURE: Code = code("25056-3", "LN", "MRI unspecified body region");
    pub const OF_INTEREST: Code = code("113000", "DCM", "Of Interest");
    pub const KEY_OBJECT_DESCRIPTION: Code = code("113012", "DCM", "Key Object Description");
    /// Contributing Equipment's purpose (CID 7005 has no "algorithm" member; processing is
    /// what the appliance does to the study).
    pub const PROCESSING_EQUIPMENT: Code = code("109102", "DCM", "Processing Equipment");
}

/// Probability concept of each class, in our private scheme (no standard concept exists).
const PROBABILITY_CODES: [Code; 5] = [
    code("P-SCN", PRIVATE_SCHEME, "Probability of schwannoma"),
    code("P-MNG", PRIVATE_SCHEME, "Probability of meningioma"),
    code("P-AST", PRIVATE_SCHEME, "Probability of astrocytoma"),
    code("P-EPN", PRIVATE_SCHEME, "Probability of ependymoma"),
    code("P-MET", PRIVATE_SCHEME, "Probability of metastasis"),
];

/// Manufacturer written into every object.
pub const MANUFACTURER: &str = "ISMF Edge project";
/// Software name in Contributing Equipment and the device observer.
pub const SOFTWARE: &str = "ismf";

/// Encoded Part-10 files of one study's results.
#[derive(Clone, Debug)]
pub struct ResultObjects {
    pub sr: Vec<u8>,
    pub sc: Option<Vec<u8>>,
    pub kos: Option<Vec<u8>>,
}

/// A referenced instance.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Instance {
    series: String,
    class: String,
    instance: String,
}

/// Everything the objects share, read once from the inputs.
struct Context<'a> {
    inputs: &'a ResultInputs<'a>,
    source: InMemDicomObject,
    study: String,
    sha: String,
    date: String,
    time: String,
    device_uid: String,
    /// Every acquired plane the model read (the SR's image library and evidence).
    evaluated: Vec<Instance>,
    /// The key source slices (one per sequence, through the map's peak).
    key_slices: Vec<Instance>,
    /// Index of the predicted class in [`CLASSES`].
    top: usize,
}

/// Every acquired plane the model read, once each, in sequence order.
fn evaluated(inputs: &ResultInputs) -> Vec<Instance> {
    let mut out: Vec<Instance> = Vec::new();
    for s in inputs.sources {
        if let (Some(series), Some(class), Some(instance)) = (
            s.series_instance_uid.clone(),
            s.sop_class_uid.clone(),
            s.sop_instance_uid.clone(),
        ) {
            let i = Instance {
                series,
                class,
                instance,
            };
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    out
}

/// The evaluated instances the maps' peaks lie on.
fn key_slices(inputs: &ResultInputs, evaluated: &[Instance]) -> Vec<Instance> {
    let Some(explanation) = inputs.explanation else {
        return Vec::new();
    };
    explanation
        .maps
        .iter()
        .filter_map(|m| {
            let uid = m.source_sop_instance_uid.as_ref()?;
            evaluated.iter().find(|i| &i.instance == uid).cloned()
        })
        .collect()
}

impl ResultObjects {
    /// Builds the SR always, and the SC and KOS when the montage was rendered.
    pub fn build(
        inputs: &ResultInputs,
        montage: Option<&KeyImages>,
    ) -> Result<ResultObjects, ResultsError> {
        let first = inputs
            .sources
            .first()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let source = read_header(&first)?;
        let (date, time) = now_da_tm();
        let evaluated = evaluated(inputs);
        let ctx = Context {
            inputs,
            source,
            study: inputs.prediction.study_instance_uid.clone(),
            sha: inputs.prediction.model.sha256.clone(),
            date,
            time,
            device_uid: derived_uid("ismf-device", &inputs.prediction.model.sha256, "device"),
            key_slices: key_slices(inputs, &evaluated),
            evaluated,
            top: CLASSES
                .iter()
                .position(|c| *c == inputs.prediction.top_class)
                .unwrap_or(0),
        };
        let sr = encode(ctx.sr(), "SR")?;
        let (sc, kos) = match montage {
            Some(m) => (
                Some(encode(ctx.sc(m), "Secondary Capture")?),
                Some(encode(ctx.kos(m), "Key Object Selection")?),
            ),
            None => (None, None),
        };
        Ok(ResultObjects { sr, sc, kos })
    }
}

fn read_header(path: &Path) -> Result<InMemDicomObject, ResultsError> {
    dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map(|f| f.into_inner())
        .map_err(|e| ResultsError::Source {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// A Part-10 file (Explicit VR Little Endian), through the same encoder the simulator uses.
fn encode(obj: InMemDicomObject, kind: &'static str) -> Result<Vec<u8>, ResultsError> {
    crate::simulate::dicom_writer::encode(obj)
        .map_err(|reason| ResultsError::Encode { kind, reason })
}

/// Current UTC date and time as DA and TM.
fn now_da_tm() -> (String, String) {
    let s = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // 2026-12-04T01:02:03Z
    let date = s[..10].replace('-', "");
    let time = s[11..19].replace(':', "");
    (date, time)
}

// ---- element helpers ----

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

fn put_multi(obj: &mut InMemDicomObject, tag: Tag, vr: VR, values: &[&str]) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::Strs(values.iter().map(|s| s.to_string()).collect()),
    ));
}

fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(
        tag,
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
}

fn code_item(c: Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::CODE_VALUE, VR::SH, c.value);
    put(&mut o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, c.scheme);
    put(&mut o, tags::CODE_MEANING, VR::LO, c.meaning);
    o
}

fn copy(from: &InMemDicomObject, to: &mut InMemDicomObject, tag: Tag, vr: VR) {
    match from.element_opt(tag).ok().flatten() {
        Some(e) => {
            to.put(e.clone());
        }
        None => put(to, tag, vr, ""),
    }
}

// ---- SR content items (PS3.3 C.17.3) ----

fn content(rel: Option<&str>, value_type: &str, name: Option<Code>) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    if let Some(rel) = rel {
        put(&mut o, tags::RELATIONSHIP_TYPE, VR::CS, rel);
    }
    put(&mut o, tags::VALUE_TYPE, VR::CS, value_type);
    if let Some(name) = name {
        put_seq(
            &mut o,
            tags::CONCEPT_NAME_CODE_SEQUENCE,
            vec![code_item(name)],
        );
    }
    o
}

fn container(
    rel: Option<&str>,
    name: Code,
    template: Option<&str>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut o = content(rel, "CONTAINER", Some(name));
    put(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    if let Some(t) = template {
        let mut id = InMemDicomObject::new_empty();
        put(&mut id, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
        put(&mut id, tags::TEMPLATE_IDENTIFIER, VR::CS, t);
        put_seq(&mut o, tags::CONTENT_TEMPLATE_SEQUENCE, vec![id]);
    }
    if !children.is_empty() {
        put_seq(&mut o, tags::CONTENT_SEQUENCE, children);
    }
    o
}

fn text_item(rel: &str, name: Code, text: &str) -> InMemDicomObject {
    let mut o = content(Some(rel), "TEXT", Some(name));
    put(&mut o, tags::TEXT_VALUE, VR::UT, text);
    o
}

fn code_value_item(rel: &str, name: Code, value: Code) -> InMemDicomObject {
    let mut o = content(Some(rel), "CODE", Some(name));
    put_seq(&mut o, tags::CONCEPT_CODE_SEQUENCE, vec![code_item(value)]);
    o
}

fn uid_item(rel: &str, name: Code, uid: &str) -> InMemDicomObject {
    let mut o = content(Some(rel), "UIDREF", Some(name));
    put(&mut o, tags::UID, VR::UI, uid);
    o
}

fn num_item(rel: &str, name: Code, value: f64, unit: Code) -> InMemDicomObject {
    let mut o = content(Some(rel), "NUM", Some(name));
    let mut mv = InMemDicomObject::new_empty();
    put(&mut mv, tags::NUMERIC_VALUE, VR::DS, &format!("{value:.4}"));
    put_seq(
        &mut mv,
        tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
        vec![code_item(unit)],
    );
    put_seq(&mut o, tags::MEASURED_VALUE_SEQUENCE, vec![mv]);
    o
}

fn image_item(rel: &str, name: Option<Code>, inst: &Instance) -> InMemDicomObject {
    let mut o = content(Some(rel), "IMAGE", name);
    put_seq(&mut o, tags::REFERENCED_SOP_SEQUENCE, vec![sop_ref(inst)]);
    o
}

fn sop_ref(inst: &Instance) -> InMemDicomObject {
    let mut r = InMemDicomObject::new_empty();
    put(&mut r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &inst.class);
    put(
        &mut r,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &inst.instance,
    );
    r
}

/// Hierarchical SOP Instance Reference Macro: study → series → instances.
fn evidence(study: &str, instances: &[Instance]) -> InMemDicomObject {
    let mut series: Vec<(String, Vec<InMemDicomObject>)> = Vec::new();
    for inst in instances {
        match series.iter_mut().find(|(s, _)| *s == inst.series) {
            Some((_, v)) => v.push(sop_ref(inst)),
            None => series.push((inst.series.clone(), vec![sop_ref(inst)])),
        }
    }
    let mut st = InMemDicomObject::new_empty();
    put(&mut st, tags::STUDY_INSTANCE_UID, VR::UI, study);
    let items = series
        .into_iter()
        .map(|(uid, refs)| {
            let mut s = InMemDicomObject::new_empty();
            put(&mut s, tags::SERIES_INSTANCE_UID, VR::UI, &uid);
            put_seq(&mut s, tags::REFERENCED_SOP_SEQUENCE, refs);
            s
        })
        .collect();
    put_seq(&mut st, tags::REFERENCED_SERIES_SEQUENCE, items);
    st
}

impl Context<'_> {
    fn sc_instance(&self) -> Instance {
        Instance {
            series: derived_uid(&self.study, &self.sha, "sc-series"),
            class: uids::SECONDARY_CAPTURE_IMAGE_STORAGE.to_string(),
            instance: derived_uid(&self.study, &self.sha, "sc"),
        }
    }

    /// Patient, General Study, General Equipment, SOP Common and Contributing Equipment.
    fn common(
        &self,
        class: &str,
        kind: &str,
        modality: &str,
        number: &str,
        description: &str,
    ) -> InMemDicomObject {
        let src = &self.source;
        let mut o = InMemDicomObject::new_empty();
        if let Some(cs) = src.element_opt(tags::SPECIFIC_CHARACTER_SET).ok().flatten() {
            o.put(cs.clone());
        }
        put(&mut o, tags::SOP_CLASS_UID, VR::UI, class);
        put(
            &mut o,
            tags::SOP_INSTANCE_UID,
            VR::UI,
            &derived_uid(&self.study, &self.sha, kind),
        );
        // Patient module.
        copy(src, &mut o, tags::PATIENT_NAME, VR::PN);
        copy(src, &mut o, tags::PATIENT_ID, VR::LO);
        copy(src, &mut o, tags::PATIENT_BIRTH_DATE, VR::DA);
        copy(src, &mut o, tags::PATIENT_SEX, VR::CS);
        // General Study module.
        put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, &self.study);
        copy(src, &mut o, tags::STUDY_DATE, VR::DA);
        copy(src, &mut o, tags::STUDY_TIME, VR::TM);
        copy(src, &mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN);
        copy(src, &mut o, tags::STUDY_ID, VR::SH);
        copy(src, &mut o, tags::ACCESSION_NUMBER, VR::SH);
        if let Some(e) = src.element_opt(tags::STUDY_DESCRIPTION).ok().flatten() {
            o.put(e.clone());
        }
        // The series.
        put(&mut o, tags::MODALITY, VR::CS, modality);
        put(
            &mut o,
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            &derived_uid(&self.study, &self.sha, &format!("{kind}-series")),
        );
        put(&mut o, tags::SERIES_NUMBER, VR::IS, number);
        put(&mut o, tags::SERIES_DESCRIPTION, VR::LO, description);
        put(&mut o, tags::SERIES_DATE, VR::DA, &self.date);
        put(&mut o, tags::SERIES_TIME, VR::TM, &self.time);
        put(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
        put(&mut o, tags::CONTENT_DATE, VR::DA, &self.date);
        put(&mut o, tags::CONTENT_TIME, VR::TM, &self.time);
        // Equipment: the appliance made this object.
        let model = &self.inputs.prediction.model;
        let version = env!("CARGO_PKG_VERSION");
        put(&mut o, tags::MANUFACTURER, VR::LO, MANUFACTURER);
        put(
            &mut o,
            tags::MANUFACTURER_MODEL_NAME,
            VR::LO,
            &format!("{} {}", model.name, model.version),
        );
        put(
            &mut o,
            tags::DEVICE_SERIAL_NUMBER,
            VR::LO,
            &self.inputs.prediction.appliance_id,
        );
        put_multi(
            &mut o,
            tags::SOFTWARE_VERSIONS,
            VR::LO,
            &[
                &format!("{SOFTWARE} {version}"),
                &format!("{} {}", model.name, model.version),
            ],
        );
        let mut eq = InMemDicomObject::new_empty();
        put(&mut eq, tags::MANUFACTURER, VR::LO, MANUFACTURER);
        put(&mut eq, tags::MANUFACTURER_MODEL_NAME, VR::LO, &model.name);
        put_multi(
            &mut eq,
            tags::SOFTWARE_VERSIONS,
            VR::LO,
            &[&format!("{SOFTWARE} {version}"), &model.version],
        );
        put(&mut eq, tags::DEVICE_UID, VR::UI, &self.device_uid);
        put_seq(
            &mut eq,
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![code_item(concept::PROCESSING_EQUIPMENT)],
        );
        put(
            &mut eq,
            tags::CONTRIBUTION_DATE_TIME,
            VR::DT,
            &format!("{}{}", self.date, self.time),
        );
        put(
            &mut eq,
            tags::CONTRIBUTION_DESCRIPTION,
            VR::ST,
            &format!(
                "{SOFTWARE}: {} {} ({}), AI generated, not for diagnostic use",
                model.name, model.version, model.precision
            ),
        );
        put_seq(&mut o, tags::CONTRIBUTING_EQUIPMENT_SEQUENCE, vec![eq]);
        o
    }

    fn description(&self, what: &str) -> String {
        let m = &self.inputs.prediction.model;
        let s = format!(
            "{what} {} {} - AI, not for diagnostic use",
            m.name, m.version
        );
        s.chars().take(64).collect()
    }

    /// What the SR Document General and Key Object Document modules share: an empty Referenced
    /// Performed Procedure Step Sequence and the evidence of every instance referenced.
    fn document(&self, o: &mut InMemDicomObject, refs: &[Instance]) {
        put_seq(
            o,
            tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
            vec![],
        );
        put_seq(
            o,
            tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
            vec![evidence(&self.study, refs)],
        );
    }

    fn sr(&self) -> InMemDicomObject {
        let p = self.inputs.prediction;
        let top = self.top;
        let mut o = self.common(
            uids::COMPREHENSIVE3_DSR_STORAGE,
            "sr",
            "SR",
            "9901",
            &self.description("SR"),
        );
        put(&mut o, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
        put(&mut o, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
        put_seq(&mut o, tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]);
        self.document(&mut o, &self.evaluated);
        let evaluated = &self.evaluated;
        let model = &p.model;
        let mut group = vec![
            text_item(
                "HAS OBS CONTEXT",
                concept::TRACKING_ID,
                "ISMF-Net classification",
            ),
            uid_item(
                "HAS OBS CONTEXT",
                concept::TRACKING_UID,
                &derived_uid(&self.study, &self.sha, "tracking"),
            ),
            code_value_item("CONTAINS", concept::FINDING, FINDING_CODES[top]),
            text_item("HAS CONCEPT MOD", concept::ALGORITHM_NAME, &model.name),
            text_item(
                "HAS CONCEPT MOD",
                concept::ALGORITHM_VERSION,
                &model.version,
            ),
            text_item(
                "HAS CONCEPT MOD",
                concept::ALGORITHM_PARAMETERS,
                &format!("precision={}; backend=tract", model.precision),
            ),
        ];
        for (k, prob) in self.inputs.probabilities.iter().enumerate() {
            group.push(num_item(
                "CONTAINS",
                PROBABILITY_CODES[k],
                *prob as f64,
                UNIT_ONE,
            ));
        }
        for inst in &self.key_slices {
            group.push(image_item(
                "CONTAINS",
                Some(concept::SOURCE_OF_MEASUREMENT),
                inst,
            ));
        }
        let library: Vec<InMemDicomObject> = evaluated
            .iter()
            .map(|i| image_item("CONTAINS", Some(concept::SOURCE), i))
            .collect();
        let root_children = vec![
            code_value_item("HAS CONCEPT MOD", concept::LANGUAGE, concept::ENGLISH),
            code_value_item("HAS OBS CONTEXT", concept::OBSERVER_TYPE, concept::DEVICE),
            uid_item("HAS OBS CONTEXT", concept::DEVICE_UID, &self.device_uid),
            text_item("HAS OBS CONTEXT", concept::DEVICE_NAME, SOFTWARE),
            text_item(
                "HAS OBS CONTEXT",
                concept::DEVICE_MANUFACTURER,
                MANUFACTURER,
            ),
            text_item("HAS OBS CONTEXT", concept::DEVICE_MODEL, &model.name),
            code_value_item("HAS CONCEPT MOD", concept::PROCEDURE, concept::MR_PROCEDURE),
            container(
                Some("CONTAINS"),
                concept::IMAGE_LIBRARY,
                None,
                vec![container(
                    Some("CONTAINS"),
                    concept::IMAGE_LIBRARY_GROUP,
                    None,
                    library,
                )],
            ),
            container(
                Some("CONTAINS"),
                concept::MEASUREMENTS,
                None,
                vec![container(Some("CONTAINS"), concept::GROUP, None, group)],
            ),
        ];
        let root = container(None, concept::REPORT, Some("1500"), root_children);
        for e in root.into_iter() {
            o.put(e);
        }
        o
    }

    fn sc(&self, montage: &KeyImages) -> InMemDicomObject {
        let mut o = self.common(
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            "sc",
            "OT",
            "9902",
            &self.description("Key images"),
        );
        put(&mut o, tags::CONVERSION_TYPE, VR::CS, "WSD");
        // General Series: Type 2C, present and empty (the montage has no laterality).
        put(&mut o, tags::LATERALITY, VR::CS, "");
        put_multi(&mut o, tags::IMAGE_TYPE, VR::CS, &["DERIVED", "SECONDARY"]);
        put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
        put(&mut o, tags::PATIENT_ORIENTATION, VR::CS, "");
        put(
            &mut o,
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            &format!("Key images with occlusion-sensitivity overlay. {BANNER}"),
        );
        let sources = self.key_slices.iter().map(sop_ref).collect::<Vec<_>>();
        put_seq(&mut o, tags::SOURCE_IMAGE_SEQUENCE, sources);
        let img = &montage.image;
        o.put(DataElement::new(
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            PrimitiveValue::from(3u16),
        ));
        put(&mut o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
        o.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
        o.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(img.height() as u16),
        ));
        o.put(DataElement::new(
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(img.width() as u16),
        ));
        for tag in [tags::BITS_ALLOCATED, tags::BITS_STORED] {
            o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(8u16)));
        }
        o.put(DataElement::new(
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(7u16),
        ));
        o.put(DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
        put(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
        let mut bytes = img.as_raw().clone();
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(bytes.into()),
        ));
        o
    }

    fn kos(&self, _montage: &KeyImages) -> InMemDicomObject {
        let mut o = self.common(
            uids::KEY_OBJECT_SELECTION_DOCUMENT_STORAGE,
            "kos",
            "KO",
            "9903",
            &self.description("Key objects"),
        );
        let mut refs = self.key_slices.clone();
        refs.push(self.sc_instance());
        self.document(&mut o, &refs);
        let p = self.inputs.prediction;
        let top = self.top;
        let mut children = vec![text_item(
            "CONTAINS",
            concept::KEY_OBJECT_DESCRIPTION,
            &format!(
                "{} {}: model output {} ({}) {:.2}; slices through the explanation peaks. {BANNER}.",
                p.model.name, p.model.version, CLASSES[top], CLASS_NAMES[top], self.inputs.probabilities[top]
            ),
        )];
        children.extend(refs.iter().map(|i| image_item("CONTAINS", None, i)));
        let root = container(None, concept::OF_INTEREST, Some("2010"), children);
        for e in root.into_iter() {
            o.put(e);
        }
        o
    }
}
