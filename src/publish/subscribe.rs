//! `ismf subscribe`: the reading-room side. Subscribes to one appliance (or all) and renders
//! status changes, predictions and events as they arrive, as text or as JSON lines.

use super::message::{Event, Prediction, Status};
use super::mqtt::{mqtt_options, MqttError};
use super::url::BrokerUrl;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event as LoopEvent};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SubscribeOptions {
    pub url: BrokerUrl,
    pub topic_prefix: String,
    /// One appliance, or every appliance (`+`).
    pub appliance: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Keep a broker session (QoS 1 messages queue for this client while it is away).
    pub persistent: bool,
}

/// One received message, classified by its topic.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Received {
    pub topic: String,
    /// `status`, `prediction`, `event` or `other`.
    pub kind: &'static str,
    pub retained: bool,
    /// The parsed JSON payload (a string if it is not JSON).
    pub message: serde_json::Value,
    /// The payload as it came (the reading room validates it and keeps key-image PNGs).
    #[serde(skip)]
    pub payload: bytes::Bytes,
}

fn kind_of(topic: &str) -> &'static str {
    match topic.rsplit('/').next() {
        Some("status") => "status",
        Some("predictions") => "prediction",
        Some("events") => "event",
        Some("key-images") => "key_images",
        _ => "other",
    }
}

/// A human-readable line.
pub fn render_text(r: &Received) -> String {
    let m = &r.message;
    match r.kind {
        "prediction" => match serde_json::from_value::<Prediction>(m.clone()) {
            Ok(p) => {
                let probs = serde_json::to_value(p.probabilities).unwrap_or_default();
                let list: Vec<String> = crate::model::CLASSES
                    .iter()
                    .map(|c| format!("{c} {:.3}", probs[*c].as_f64().unwrap_or(f64::NAN)))
                    .collect();
                format!(
                    "[prediction] {} study {} → {} (margin {:.3}) [{}] model {} {} ({}) id {}",
                    p.appliance_id,
                    p.study_instance_uid,
                    p.top_class,
                    p.margin,
                    list.join(", "),
                    p.model.name,
                    p.model.version,
                    &p.model.sha256[..p.model.sha256.len().min(12)],
                    p.prediction_id
                )
            }
            Err(e) => format!("[prediction] {}: unreadable ({e}): {m}", r.topic),
        },
        "event" => match serde_json::from_value::<Event>(m.clone()) {
            Ok(e) => {
                let subject = e
                    .path
                    .clone()
                    .or(e.study_instance_uid.clone())
                    .unwrap_or_default();
                let kind = serde_json::to_value(e.kind).unwrap_or_default();
                format!(
                    "[event] {} {} {}: {}",
                    e.appliance_id,
                    kind.as_str().unwrap_or("?"),
                    subject,
                    e.reason
                )
            }
            Err(err) => format!("[event] {}: unreadable ({err}): {m}", r.topic),
        },
        "status" => match serde_json::from_value::<Status>(m.clone()) {
            Ok(s) => {
                let state = serde_json::to_value(s.state).unwrap_or_default();
                let mut line = format!(
                    "[status] {} {} ({}){}",
                    s.appliance_id,
                    state.as_str().unwrap_or("?"),
                    s.reason,
                    if r.retained { " [retained]" } else { "" }
                );
                if let Some(model) = &s.model {
                    line += &format!(" model {} {}", model.name, model.version);
                }
                if let Some(up) = s.uptime_s {
                    line += &format!(" uptime {up} s");
                }
                if let Some(q) = s.queues {
                    line += &format!(" outbox {} waiting {}", q.outbox, q.studies_waiting);
                }
                if let Some(e) = &s.last_error {
                    line += &format!(" last error: {e}");
                }
                line
            }
            Err(e) => format!("[status] {}: unreadable ({e}): {m}", r.topic),
        },
        "key_images" => {
            let sha = m["sha256"].as_str().unwrap_or("?");
            format!(
                "[key-images] {} {} bytes PNG for prediction {} (sha256 {})",
                r.topic,
                m["bytes"],
                m["prediction_id"].as_str().unwrap_or("?"),
                sha.get(..12).unwrap_or(sha)
            )
        }
        _ => format!("[{}] {m}", r.topic),
    }
}

/// Subscribes and calls `on_message` for every message until it returns false. Connection
/// failures are retried with a capped backoff; each is passed to `on_error`, and each
/// (re)connection to `on_connected`.
pub async fn run(
    opts: &SubscribeOptions,
    mut on_message: impl FnMut(Received) -> bool,
    mut on_error: impl FnMut(&str),
    mut on_connected: impl FnMut(),
) -> Result<(), MqttError> {
    let client_id = opts
        .client_id
        .clone()
        .unwrap_or_else(|| format!("ismf-subscriber-{}", uuid::Uuid::new_v4().simple()));
    let mut options = mqtt_options(
        &opts.url,
        &client_id,
        opts.username.as_deref(),
        opts.password_file.as_deref(),
        opts.ca_file.as_deref(),
        opts.client_cert_file
            .as_deref()
            .zip(opts.client_key_file.as_deref()),
        Duration::from_secs(30),
    )?;
    // A message is acknowledged only once `on_message` has handled it (printed it, or committed
    // it to the reading room's store): a crash in between gets it delivered again.
    options.set_manual_acks(true);
    if opts.persistent {
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(7 * 24 * 3600));
    }
    let filter = format!(
        "{}/{}/#",
        opts.topic_prefix.trim_end_matches('/'),
        opts.appliance.as_deref().unwrap_or("+")
    );
    // Room for the acknowledgements of a whole batch of incoming messages between polls.
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let mut failures = 0u32;
    loop {
        match eventloop.poll().await {
            Ok(LoopEvent::Incoming(Packet::ConnAck(ack))) => {
                failures = 0;
                tracing::info!(filter = %filter, session_present = ack.session_present, "subscribed");
                // Also with a session present: subscribing again is harmless, and it covers a
                // session made with another filter (e.g. an earlier --topic-prefix).
                client
                    .try_subscribe(filter.clone(), QoS::AtLeastOnce)
                    .map_err(|e| MqttError::Config(e.to_string()))?;
                on_connected();
            }
            Ok(LoopEvent::Incoming(Packet::SubAck(ack))) => {
                use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;
                for code in &ack.return_codes {
                    if !matches!(code, SubscribeReasonCode::Success(_)) {
                        on_error(&format!(
                            "the broker refused the subscription to {filter}: {code:?} (check its ACL)"
                        ));
                    }
                }
            }
            Ok(LoopEvent::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).to_string();
                let kind = kind_of(&topic);
                // A key image is binary: summarised (size, hash, the prediction it belongs
                // to), never printed.
                let message = if kind == "key_images" {
                    use sha2::Digest;
                    let prediction_id = p.properties.as_ref().and_then(|props| {
                        props
                            .user_properties
                            .iter()
                            .find(|(k, _)| k == "prediction_id")
                            .map(|(_, v)| v.clone())
                    });
                    serde_json::json!({
                        "content_type": p.properties.as_ref().and_then(|props| props.content_type.clone()),
                        "bytes": p.payload.len(),
                        "sha256": format!("{:x}", sha2::Sha256::digest(&p.payload)),
                        "prediction_id": prediction_id,
                    })
                } else {
                    serde_json::from_slice(&p.payload).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(&p.payload).to_string())
                    })
                };
                let received = Received {
                    kind,
                    topic,
                    retained: p.retain,
                    message,
                    payload: p.payload.clone(),
                };
                if !on_message(received) {
                    let _ = client.try_disconnect();
                    return Ok(());
                }
                if client.try_ack(&p).is_err() {
                    // The request queue is full: wait for room off this loop, which must go on
                    // polling for the queue to drain.
                    let client = client.clone();
                    tokio::spawn(async move { client.ack(&p).await });
                }
            }
            Ok(_) => {}
            Err(e) => {
                on_error(&e.to_string());
                let delay = Duration::from_millis(250 * 2u64.pow(failures.min(7)))
                    .min(Duration::from_secs(30));
                failures += 1;
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_classified_and_rendered() {
        assert_eq!(kind_of("ismf/a/status"), "status");
        assert_eq!(kind_of("ismf/a/predictions"), "prediction");
        assert_eq!(kind_of("ismf/a/events"), "event");
        assert_eq!(kind_of("ismf/a/x"), "other");
        let event = Event::new(
            super::super::message::EventKind::QuarantinedFile,
            "box",
            "not DICOM",
        );
        let r = Received {
            topic: "ismf/box/events".into(),
            kind: "event",
            retained: false,
            message: serde_json::to_value(&event).expect("json"),
            payload: Default::default(),
        };
        assert_eq!(render_text(&r), "[event] box quarantined_file : not DICOM");
        let r = Received {
            topic: "ismf/box/predictions".into(),
            kind: "prediction",
            retained: false,
            message: serde_json::json!({"x": 1}),
            payload: Default::default(),
        };
        assert!(render_text(&r).contains("unreadable"));
    }
}
