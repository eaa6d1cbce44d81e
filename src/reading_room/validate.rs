//! Every message from the network is untrusted: before the reading room stores or shows one it
//! must pass the committed JSON Schema of its kind (`schemas/*.schema.json`, formats checked), be
//! published under the topic of the appliance it names, and (a prediction) name the class it
//! gives the highest probability. A message that fails is counted and listed by its reason,
//! never rendered.

use crate::model::CLASSES;
use serde_json::Value;
use std::sync::OnceLock;

/// Largest JSON message accepted (a prediction is ~3 KB; its explanation summary adds ~1 KB).
pub const MAX_JSON_BYTES: usize = 256 * 1024;
/// Largest key-image PNG accepted (a montage is ~100–300 KB): the subscriber's maximum MQTT
/// packet size, which the broker also enforces (it does not send larger packets to us).
pub const MAX_PNG_BYTES: usize = crate::publish::mqtt::MAX_INCOMING_PACKET as usize;

/// A message that passed.
#[derive(Clone, Debug, PartialEq)]
pub enum Valid {
    Prediction(Value),
    Status(Value),
    Event(Value),
    /// A key-image montage: its SHA-256 (how the prediction refers to it) and the PNG.
    KeyImages {
        sha256: String,
        png: Vec<u8>,
    },
}

/// Why a message was refused (shown to the reader as text, with the topic).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(reason: impl Into<String>) -> Invalid {
    Invalid(reason.into())
}

struct Schemas {
    prediction: jsonschema::Validator,
    status: jsonschema::Validator,
    event: jsonschema::Validator,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        // The committed schemas are the contract: a test checks they compile, so a failure here
        // is a build defect, not bad input.
        let build = |text: &str| {
            let value: Value = serde_json::from_str(text).expect("committed schema is JSON");
            jsonschema::options()
                .should_validate_formats(true)
                .build(&value)
                .expect("committed schema compiles")
        };
        Schemas {
            prediction: build(include_str!("../../schemas/prediction.schema.json")),
            status: build(include_str!("../../schemas/status.schema.json")),
            event: build(include_str!("../../schemas/event.schema.json")),
        }
    })
}

/// The appliance segment of `<prefix>/<appliance>/<kind>`.
fn topic_appliance<'a>(topic: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = topic
        .strip_prefix(prefix.trim_end_matches('/'))?
        .strip_prefix('/')?;
    let (appliance, _) = rest.split_once('/')?;
    Some(appliance)
}

/// Checks one received message; `kind` is the subscriber's reading of its topic.
pub fn check(topic: &str, kind: &str, prefix: &str, payload: &[u8]) -> Result<Valid, Invalid> {
    let appliance = topic_appliance(topic, prefix)
        .ok_or_else(|| invalid(format!("topic is not {prefix}/<appliance>/<kind>")))?;
    if kind == "key_images" {
        if payload.len() > MAX_PNG_BYTES {
            return Err(invalid(format!(
                "key image of {} bytes is larger than {MAX_PNG_BYTES}",
                payload.len()
            )));
        }
        if !payload.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(invalid("key image is not a PNG"));
        }
        use sha2::Digest;
        return Ok(Valid::KeyImages {
            sha256: format!("{:x}", sha2::Sha256::digest(payload)),
            png: payload.to_vec(),
        });
    }
    let validator = match kind {
        "prediction" => &schemas().prediction,
        "status" => &schemas().status,
        "event" => &schemas().event,
        other => return Err(invalid(format!("unknown message kind {other:?}"))),
    };
    if payload.len() > MAX_JSON_BYTES {
        return Err(invalid(format!(
            "{kind} of {} bytes is larger than {MAX_JSON_BYTES}",
            payload.len()
        )));
    }
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| invalid(format!("{kind} is not JSON: {e}")))?;
    if let Some(error) = validator.iter_errors(&value).next() {
        let at = error.instance_path().to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        return Err(invalid(format!(
            "{kind} fails its schema at {at}: {}",
            shorten(&error.to_string())
        )));
    }
    if value["appliance_id"].as_str() != Some(appliance) {
        return Err(invalid(format!(
            "{kind} names appliance {} but was published under {appliance:?}",
            shorten(&value["appliance_id"].to_string())
        )));
    }
    Ok(match kind {
        "prediction" => {
            let p = &value["probabilities"];
            let best = CLASSES
                .iter()
                .map(|c| f64_of(&p[*c]))
                .fold(f64::NEG_INFINITY, f64::max);
            // A tie is a valid answer: the top class is one of the most probable.
            let top = value["top_class"].as_str().unwrap_or("");
            if f64_of(&p[top]) < best {
                return Err(invalid(format!(
                    "prediction's top_class {} is not its most probable class",
                    shorten(&value["top_class"].to_string())
                )));
            }
            Valid::Prediction(value)
        }
        "status" => Valid::Status(value),
        _ => Valid::Event(value),
    })
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NEG_INFINITY)
}

/// At most 200 characters of a reason (a schema error quotes the offending value).
fn shorten(s: &str) -> String {
    if s.chars().count() <= 200 {
        return s.to_string();
    }
    s.chars().take(200).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::message::{sample_prediction, Event, EventKind};

    fn prediction(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v = serde_json::to_value(sample_prediction(1)).expect("json");
        edit(&mut v);
        serde_json::to_vec(&v).expect("json")
    }

    const TOPIC: &str = "ismf/sample-box/predictions";

    #[test]
    fn a_published_prediction_and_event_pass() {
        let ok = check(TOPIC, "prediction", "ismf", &prediction(|_| {})).expect("valid");
        assert!(matches!(ok, Valid::Prediction(v) if v["top_class"] == "MNG"));
        let e = Event::new(EventKind::QuarantinedFile, "sample-box", "not DICOM");
        let e = serde_json::to_vec(&e).expect("json");
        assert!(matches!(
            check("ismf/sample-box/events", "event", "ismf", &e),
            Ok(Valid::Event(_))
        ));
    }

    #[test]
    fn each_kind_of_bad_message_is_refused_with_its_reason() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (TOPIC, b"<script>alert(1)</script>".to_vec(), "is not JSON"),
            (
                TOPIC,
                prediction(|v| v["margin"] = "wide".into()),
                "/margin",
            ),
            (
                TOPIC,
                prediction(|v| v["probabilities"]["SCN"] = 7.into()),
                "/probabilities/SCN",
            ),
            (
                TOPIC,
                prediction(|v| v["extra"] = "<img src=x onerror=alert(1)>".into()),
                "fails its schema",
            ),
            (
                TOPIC,
                prediction(|v| v["top_class"] = "SCN".into()),
                "most probable",
            ),
            (
                "ismf/other-box/predictions",
                prediction(|_| {}),
                "published under \"other-box\"",
            ),
            (
                "elsewhere/x/predictions",
                prediction(|_| {}),
                "topic is not",
            ),
        ];
        for (topic, payload, reason) in cases {
            let err = check(topic, "prediction", "ismf", &payload).expect_err(reason);
            assert!(err.0.contains(reason), "{reason}: {err}");
        }
        let err = check("ismf/b/key-images", "key_images", "ismf", b"GIF89a").expect_err("png");
        assert!(err.0.contains("not a PNG"));
    }
}
