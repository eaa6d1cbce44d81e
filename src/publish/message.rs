//! The JSON messages the appliance publishes (`schemas/*.schema.json` document them).
//!
//! `ismf classify --json` prints exactly the [`Prediction`] the MQTT publisher sends, so a
//! reading-room integrator can develop against the CLI. Identity is governed by [`PhiPolicy`]:
//! by default UIDs only.

use crate::model::{Model, Probabilities, CLASSES};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// Version of every message layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

/// Shown in every prediction.
pub const NOTICE: &str = "Research software: NOT FOR DIAGNOSTIC USE.";

/// Namespace of prediction ids (a fixed random UUID; ids are UUIDv5 of study UID + model sha256).
const PREDICTION_NAMESPACE: uuid::Uuid = uuid::uuid!("5b0c3b1e-8a4f-4c7e-9f7d-2f4e1a6c9d30");

/// How much patient identity a message may carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PhiPolicy {
    /// StudyInstanceUID and SeriesInstanceUIDs only.
    #[default]
    Uids,
    /// … plus AccessionNumber.
    Accession,
    /// … plus patient name and ID.
    Full,
}

/// The five class probabilities, always in the paper's order (a struct, so JSON keys keep it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct ClassProbabilities {
    pub SCN: f32,
    pub MNG: f32,
    pub AST: f32,
    pub EPN: f32,
    pub MET: f32,
}

impl From<Probabilities> for ClassProbabilities {
    fn from(p: Probabilities) -> Self {
        ClassProbabilities {
            SCN: p[0],
            MNG: p[1],
            AST: p[2],
            EPN: p[3],
            MET: p[4],
        }
    }
}

/// A series the prediction used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesUsed {
    /// `sag_t1w`, `sag_t2w`, `sag_t2fs` or `ax_t2w`.
    pub sequence: String,
    pub series_instance_uid: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub instances: usize,
    /// Why identification chose this series.
    pub reasons: Vec<String>,
}

/// The model that made a prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub precision: String,
}

impl ModelInfo {
    pub fn of(model: &Model) -> ModelInfo {
        let card = model.card();
        ModelInfo {
            name: card.card.name.clone(),
            version: card.card.version.clone(),
            sha256: card.file.sha256.clone(),
            precision: model.precision().to_string(),
        }
    }
}

/// Milliseconds spent per stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Header reads, catalog and sequence identification.
    pub ingest_ms: f64,
    /// Pixel decoding, resampling, normalisation.
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    /// Explanation maps (occlusion runs); 0 when they are off.
    #[serde(default)]
    pub explain_ms: f64,
    pub total_ms: f64,
}

/// Identity fields allowed by the [`PhiPolicy`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accession_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
}

/// One study's prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub schema_version: u32,
    /// UUIDv5 of StudyInstanceUID + model sha256: reprocessing gives the same id.
    pub prediction_id: String,
    pub study_instance_uid: String,
    #[serde(flatten)]
    pub identity: Identity,
    pub probabilities: ClassProbabilities,
    pub top_class: String,
    /// Top probability minus the runner-up's.
    pub margin: f32,
    pub series: Vec<SeriesUsed>,
    pub model: ModelInfo,
    pub appliance_id: String,
    pub software_version: String,
    pub timings: Timings,
    /// Preprocessing remarks (gaps, skipped files) worth a reader's attention.
    pub warnings: Vec<String>,
    /// UTC, RFC 3339.
    pub created_at: String,
    pub notice: String,
    /// Where each sequence's explanation map peaks (absent when `[results] explain = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<crate::explain::ExplanationSummary>,
    /// The key-image montage published beside this prediction (absent when none was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_images: Option<KeyImagesRef>,
}

/// How a prediction points at its key-image montage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyImagesRef {
    /// The MQTT topic the PNG is published on (`…/key-images`, user property `prediction_id`).
    pub topic: String,
    pub content_type: String,
    pub bytes: usize,
    /// SHA-256 of the PNG, hex.
    pub sha256: String,
}

impl KeyImagesRef {
    /// The reference to a PNG published on `topic`.
    pub fn of(png: &[u8], topic: &str) -> KeyImagesRef {
        use sha2::Digest;
        KeyImagesRef {
            topic: topic.to_string(),
            content_type: "image/png".into(),
            bytes: png.len(),
            sha256: format!("{:x}", sha2::Sha256::digest(png)),
        }
    }
}

/// What an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A study still missed a required sequence when its wait ran out.
    IncompleteStudy,
    /// A file was moved to quarantine.
    QuarantinedFile,
    /// The outbox is full: intake has stopped until the broker takes messages again.
    OutboxFull,
    /// A study could not be classified, or another failure worth a reader's attention.
    Error,
    /// The DICOM receiver refused an association (unknown calling AE, too many at once).
    AssociationRejected,
    /// A DICOM result could not be stored in PACS after `pacs.max_attempts` (sending goes on).
    PacsSendFailed,
}

/// Something the reading room should know that is not a prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema_version: u32,
    pub event_id: String,
    pub kind: EventKind,
    pub appliance_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_instance_uid: Option<String>,
    /// The file concerned, relative to the watched folder where possible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub reason: String,
    pub software_version: String,
    pub created_at: String,
}

impl Event {
    pub fn new(kind: EventKind, appliance_id: &str, reason: impl Into<String>) -> Event {
        Event {
            schema_version: SCHEMA_VERSION,
            event_id: uuid::Uuid::new_v4().to_string(),
            kind,
            appliance_id: appliance_id.to_string(),
            study_instance_uid: None,
            path: None,
            reason: reason.into(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: utc_now(),
        }
    }
}

/// `online` or `offline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Online,
    Offline,
}

/// Queue depths reported in the heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueDepths {
    /// Messages written durably but not yet acknowledged by the broker.
    pub outbox: usize,
    /// Studies complete and waiting for inference.
    pub studies_waiting: usize,
}

/// The retained status of an appliance; the last will carries the `offline` form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub schema_version: u32,
    pub appliance_id: String,
    pub state: Availability,
    /// Why the state is what it is: "started", "heartbeat", "shutdown", "connection lost".
    pub reason: String,
    pub software_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<QueueDepths>,
    /// Timing of the last studies published by this process (absent until the first PUBACK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_studies: Option<RecentStudies>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: String,
}

/// The heartbeat's view of how fast the appliance answers: over the last `studies` (at most 64)
/// predictions acknowledged by the broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentStudies {
    pub studies: usize,
    /// From the study's last file arriving to the broker's PUBACK of its prediction.
    pub last_file_to_puback_ms: Percentiles,
    pub inference_ms: Percentiles,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
}

/// A stand-in prediction for study `i` (fixed probabilities, four series, a dummy model): for
/// broker checks and benchmarks, never a model output.
pub fn sample_prediction(i: usize) -> Prediction {
    let series = ["sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w"]
        .iter()
        .enumerate()
        .map(|(k, s)| SeriesUsed {
            sequence: s.to_string(),
            series_instance_uid: format!("2.25.{i}.{k}"),
            series_number: Some(k as i64 + 1),
            series_description: s.to_string(),
            instances: 15,
            reasons: vec!["sample".into()],
        })
        .collect();
    Prediction::new(
        &format!("2.25.{i}"),
        [0.1, 0.6, 0.1, 0.1, 0.1],
        series,
        ModelInfo {
            name: "ISMF-Net".into(),
            version: "sample".into(),
            sha256: "ab".repeat(32),
            precision: "f32".into(),
        },
        "sample-box",
        Timings::default(),
        vec![],
        Identity::default(),
        PhiPolicy::Uids,
    )
}

/// The deterministic prediction id.
pub fn prediction_id(study_instance_uid: &str, model_sha256: &str) -> String {
    uuid::Uuid::new_v5(
        &PREDICTION_NAMESPACE,
        format!("{study_instance_uid}\n{model_sha256}").as_bytes(),
    )
    .to_string()
}

/// Seconds since the Unix epoch, now (0 if the clock is before it).
pub fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An RFC 3339 time (as `created_at` carries) in seconds since the Unix epoch.
pub fn unix_seconds_of(rfc3339: &str) -> Option<f64> {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// UTC now as RFC 3339 with milliseconds.
pub fn utc_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Top class index and margin over the runner-up.
pub fn top_and_margin(p: &Probabilities) -> (usize, f32) {
    let top = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
    let second = (0..p.len())
        .filter(|&i| i != top)
        .map(|i| p[i])
        .fold(f32::MIN, f32::max);
    (top, p[top] - second)
}

impl Prediction {
    /// Assembles a prediction; identity fields beyond the policy are dropped here, whatever the
    /// caller passed.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        study_instance_uid: &str,
        probabilities: Probabilities,
        series: Vec<SeriesUsed>,
        model: ModelInfo,
        appliance_id: &str,
        timings: Timings,
        warnings: Vec<String>,
        identity: Identity,
        policy: PhiPolicy,
    ) -> Prediction {
        let (top, margin) = top_and_margin(&probabilities);
        let identity = match policy {
            PhiPolicy::Uids => Identity::default(),
            PhiPolicy::Accession => Identity {
                accession_number: identity.accession_number,
                ..Identity::default()
            },
            PhiPolicy::Full => identity,
        };
        Prediction {
            schema_version: SCHEMA_VERSION,
            prediction_id: prediction_id(study_instance_uid, &model.sha256),
            study_instance_uid: study_instance_uid.to_string(),
            identity,
            probabilities: probabilities.into(),
            top_class: CLASSES[top].to_string(),
            margin,
            series,
            model,
            appliance_id: appliance_id.to_string(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            timings,
            warnings,
            created_at: utc_now(),
            notice: NOTICE.to_string(),
            explanation: None,
            key_images: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_depend_on_study_and_model() {
        let a = prediction_id("1.2.3", "abc");
        assert_eq!(a, prediction_id("1.2.3", "abc"));
        assert_ne!(a, prediction_id("1.2.4", "abc"));
        assert_ne!(a, prediction_id("1.2.3", "abd"));
        assert_eq!(
            uuid::Uuid::parse_str(&a).expect("uuid").get_version_num(),
            5
        );
    }

    #[test]
    fn top_class_margin_and_phi_policy() {
        let p = [0.1, 0.6, 0.05, 0.2, 0.05];
        let (top, margin) = top_and_margin(&p);
        assert_eq!(top, 1);
        assert!((margin - 0.4).abs() < 1e-6);
        let model = ModelInfo {
            name: "m".into(),
            version: "1".into(),
            sha256: "s".into(),
            precision: "f32".into(),
        };
        let identity = Identity {
            accession_number: Some("ACC1".into()),
            patient_name: Some("DOE^JANE".into()),
            patient_id: Some("P1".into()),
        };
        let make = |policy| {
            let m = Prediction::new(
                "1.2.3",
                p,
                vec![],
                model.clone(),
                "box",
                Timings::default(),
                vec![],
                identity.clone(),
                policy,
            );
            serde_json::to_string(&m).expect("json")
        };
        let uids = make(PhiPolicy::Uids);
        assert!(!uids.contains("ACC1") && !uids.contains("DOE") && !uids.contains("P1\""));
        let acc = make(PhiPolicy::Accession);
        assert!(acc.contains("\"accession_number\":\"ACC1\"") && !acc.contains("DOE"));
        let full = make(PhiPolicy::Full);
        assert!(full.contains("DOE^JANE") && full.contains("\"patient_id\":\"P1\""));
        let keys: Vec<&str> = ["\"SCN\"", "\"MNG\"", "\"AST\"", "\"EPN\"", "\"MET\""].to_vec();
        let pos: Vec<usize> = keys.iter().map(|k| uids.find(k).expect("key")).collect();
        assert!(
            pos.windows(2).all(|w| w[0] < w[1]),
            "classes in the paper's order"
        );
        assert!(uids.contains("\"top_class\":\"MNG\"") && uids.contains(NOTICE));
    }
}
