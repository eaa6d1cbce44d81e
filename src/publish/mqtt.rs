//! The MQTT 5 publisher (rumqttc) with what rumqttc lacks (it neither persists
//! unacknowledged messages nor re-sends them after a fresh session): messages come from
//! the durable [`Outbox`] and leave it only on PUBACK; a fresh broker session
//! (`session_present = false`) re-sends everything unacknowledged; reconnects back off
//! exponentially with jitter; the retained status topic carries `online`, heartbeats and — by
//! clean shutdown or the broker's last will — `offline`.
//!
//! rumqttc's `publish` does not report its packet id, so acknowledgement is matched by order:
//! every publish request is queued under one lock with its tag, the event loop reports
//! `Outgoing::Publish(pkid)` in request order, and a PUBACK for that pkid then names the outbox
//! entry. Retransmissions keep their pkid and are recognised as such. At most [`WINDOW`] outbox
//! messages are in flight, and nothing is requested while disconnected, so the order a fresh
//! session needs is simply the outbox's order.

use super::message::{
    utc_now, Availability, ModelInfo, Percentiles, QueueDepths, RecentStudies, Status,
    SCHEMA_VERSION,
};
use super::outbox::{MessageKind, Outbox, OutboxError, OutboxMessage};
use super::url::BrokerUrl;
use heapless::HistoryBuf;
use rumqttc::v5::mqttbytes::v5::{
    LastWill, LastWillProperties, Packet, PubAckReason, PublishProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;

/// Outbox messages in flight at once.
pub const WINDOW: usize = 32;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const CONTENT_TYPE: &str = "application/json";

/// Largest packet a client of ours accepts: a key image (≤ 300 KiB) with room to spare.
pub const MAX_INCOMING_PACKET: u32 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("mqtt: {0}")]
    Config(String),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("the broker at {url} did not acknowledge {waiting} message(s) within {seconds} s; last connection error: {last_error}")]
    NotAcknowledged {
        url: String,
        waiting: usize,
        seconds: u64,
        last_error: String,
    },
}

/// Everything the publisher needs; the appliance's come from `config::Config::publisher`.
#[derive(Clone, Debug)]
pub struct PublisherSettings {
    pub url: BrokerUrl,
    pub client_id: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub topics: Topics,
    pub appliance_id: String,
    pub keep_alive: Duration,
    pub message_expiry: Duration,
    pub session_expiry: Duration,
    pub heartbeat: Duration,
    pub model: Option<ModelInfo>,
    /// The durable outbox ([`Publisher::open`] opens it here).
    pub outbox_path: PathBuf,
    pub outbox_capacity: usize,
}

/// MQTT 5 interval properties are whole seconds in 32 bits.
fn seconds_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The appliance's three topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    pub status: String,
    pub predictions: String,
    pub events: String,
    /// Key-image montages (PNG), one per prediction.
    pub key_images: String,
}

impl Topics {
    pub fn new(prefix: &str, appliance_id: &str) -> Topics {
        let base = format!("{}/{appliance_id}", prefix.trim_end_matches('/'));
        Topics {
            status: format!("{base}/status"),
            predictions: format!("{base}/predictions"),
            events: format!("{base}/events"),
            key_images: format!("{base}/key-images"),
        }
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|e| MqttError::File {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The rustls client configuration: the CA file's certificates as the only roots, and the
/// client certificate and key for mutual TLS when given. Each file's problem is named.
pub fn tls_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, MqttError> {
    crate::tls::client_config(ca_file, client).map_err(|e| match e {
        crate::tls::TlsError::File { what, path, reason } => MqttError::File { what, path, reason },
        crate::tls::TlsError::Config(m) => MqttError::Config(format!("TLS: {m}")),
    })
}

/// Connection options shared by the publisher and the subscriber.
#[allow(clippy::too_many_arguments)]
pub fn mqtt_options(
    broker: &BrokerUrl,
    client_id: &str,
    username: Option<&str>,
    password_file: Option<&Path>,
    ca_file: Option<&Path>,
    client: Option<(&Path, &Path)>,
    keep_alive: Duration,
) -> Result<MqttOptions, MqttError> {
    let url = broker;
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options.set_keep_alive(keep_alive);
    options.set_connection_timeout(10);
    // rumqttc refuses incoming packets over 10 KiB by default; a subscriber must take key-image
    // PNGs (up to 300 KiB). Declared in CONNECT, so the broker never sends a client more.
    options.set_max_packet_size(Some(MAX_INCOMING_PACKET));
    if let Some(user) = username {
        let password = match password_file {
            Some(p) => String::from_utf8_lossy(&read_file("password file", p)?)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => String::new(),
        };
        options.set_credentials(user, password);
    }
    if broker.tls {
        let ca = ca_file.ok_or_else(|| {
            MqttError::Config(format!("{url} is mqtts:// but no CA file is given"))
        })?;
        let config = tls_config(ca, client)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    } else if client.is_some() || ca_file.is_some() {
        return Err(MqttError::Config(format!(
            "TLS files are given but {url} is not mqtts://"
        )));
    }
    Ok(options)
}

/// What a publish request was, to act on its PUBACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Message(u64),
    Status,
    Offline,
}

#[derive(Default)]
struct SendState {
    connected: bool,
    /// Requests handed to rumqttc whose `Outgoing::Publish` has not been seen yet, in order.
    queued: VecDeque<Tag>,
    /// Sent, waiting for PUBACK, by packet id.
    inflight: HashMap<u16, Tag>,
    /// Outbox entries queued or in flight (not to be offered again).
    offered: BTreeSet<u64>,
    /// When each outbox entry was first offered in this process, for the latency statistics.
    offered_at: HashMap<u64, Instant>,
    last_error: Option<String>,
    connections: u64,
    acknowledged: u64,
    refused: u64,
    /// Seconds from offer to PUBACK of every acknowledged message.
    ack_latencies: Vec<f64>,
    /// Predictions submitted in this process, by outbox entry: when their study's last file
    /// arrived and what inference took, for the heartbeat's percentiles at their PUBACK.
    clocks: HashMap<u64, StudyClock>,
    /// The last [`RECENT`] acknowledged studies: last file → PUBACK, and inference, in ms.
    recent_latency_ms: HistoryBuf<f64, RECENT>,
    recent_inference_ms: HistoryBuf<f64, RECENT>,
}

/// Studies whose latencies the heartbeat summarises: a fixed ring, the bound being the contract
/// of the status message ("the last 64 studies").
pub const RECENT: usize = 64;

#[derive(Clone, Copy, Debug)]
struct StudyClock {
    /// Seconds since the Unix epoch.
    last_file: f64,
    inference_ms: f64,
}

struct Shared {
    /// Acknowledged outbox entries, in PUBACK order, for the remover thread: the fsync'd redb
    /// commit of a removal must not stall the event loop. At most [`WINDOW`] are ever waiting
    /// (only that many are in flight). Taken (closed) at shutdown.
    removals: Mutex<Option<std::sync::mpsc::Sender<u64>>>,
    settings: PublisherSettings,
    outbox: Arc<Outbox>,
    client: AsyncClient,
    state: Mutex<SendState>,
    changed: Notify,
    offline_acked: Notify,
    stopping: AtomicBool,
    started: Instant,
    started_at: String,
    studies_waiting: std::sync::atomic::AtomicUsize,
}

/// Counters for logs, tests and the benchmark.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublisherStats {
    pub connections: u64,
    pub acknowledged: u64,
    pub refused: u64,
    pub waiting: usize,
    pub last_error: Option<String>,
    pub ack_latencies: Vec<f64>,
}

/// A running publisher: an event-loop task and a heartbeat task on the runtime handed to
/// [`Publisher::start`], and the `outbox-remover` thread.
pub struct Publisher {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    remover: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    /// Connects in the background (the first connection and every reconnect happen in the event
    /// loop task) and starts offering what the outbox holds.
    pub fn start(
        settings: PublisherSettings,
        outbox: Arc<Outbox>,
        rt: &tokio::runtime::Handle,
    ) -> Result<Publisher, MqttError> {
        let mut options = mqtt_options(
            &settings.url,
            &settings.client_id,
            settings.username.as_deref(),
            settings.password_file.as_deref(),
            settings.ca_file.as_deref(),
            settings
                .client_cert_file
                .as_deref()
                .zip(settings.client_key_file.as_deref()),
            settings.keep_alive,
        )?;
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(seconds_u32(settings.session_expiry)));
        options.set_outgoing_inflight_upper_limit(2 * WINDOW as u16);
        let will = status_payload(
            &settings,
            Availability::Offline,
            "connection lost (last will)",
            None,
        );
        options.set_last_will(LastWill::new(
            settings.topics.status.clone(),
            will,
            QoS::AtLeastOnce,
            true,
            Some(LastWillProperties {
                delay_interval: None,
                payload_format_indicator: Some(1),
                message_expiry_interval: None,
                content_type: Some(CONTENT_TYPE.into()),
                response_topic: None,
                correlation_data: None,
                user_properties: user_properties(None),
            }),
        ));
        let (client, eventloop) = AsyncClient::new(options, 4 * WINDOW);
        let (removals, removed) = std::sync::mpsc::channel::<u64>();
        let shared = Arc::new(Shared {
            removals: Mutex::new(Some(removals)),
            settings,
            outbox,
            client,
            state: Mutex::new(SendState::default()),
            changed: Notify::new(),
            offline_acked: Notify::new(),
            stopping: AtomicBool::new(false),
            started: Instant::now(),
            started_at: utc_now(),
            studies_waiting: Default::default(),
        });
        let tasks = vec![
            rt.spawn(run_eventloop(shared.clone(), eventloop)),
            rt.spawn(run_heartbeat(shared.clone())),
        ];
        let remover = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("outbox-remover".into())
                .spawn(move || {
                    for seq in removed {
                        acknowledged(&shared, seq);
                    }
                })
                .map_err(|e| MqttError::Config(format!("cannot start the outbox remover: {e}")))?
        };
        Ok(Publisher {
            shared,
            tasks,
            remover: Some(remover),
        })
    }

    /// Opens the outbox the settings name, then starts as [`Publisher::start`].
    pub fn open(
        settings: PublisherSettings,
        rt: &tokio::runtime::Handle,
    ) -> Result<Publisher, MqttError> {
        let outbox = Outbox::open(&settings.outbox_path, settings.outbox_capacity)?;
        Publisher::start(settings, Arc::new(outbox), rt)
    }

    pub fn topics(&self) -> &Topics {
        &self.shared.settings.topics
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.shared.outbox
    }

    /// Reported in the heartbeat.
    pub fn set_studies_waiting(&self, n: usize) {
        self.shared.studies_waiting.store(n, Ordering::Relaxed);
    }

    /// Writes a message durably, then offers it when connected. `Full` is returned unchanged:
    /// the caller decides (the pipeline stops intake and raises an event).
    pub fn submit(&self, message: &OutboxMessage) -> Result<u64, OutboxError> {
        let seq = self.shared.outbox.push(message)?;
        offer(&self.shared);
        Ok(seq)
    }

    /// Convenience for a JSON message on one of the appliance's topics.
    pub fn submit_json<T: serde::Serialize>(
        &self,
        kind: MessageKind,
        body: &T,
        model_sha256: &str,
    ) -> Result<u64, OutboxError> {
        let topics = &self.shared.settings.topics;
        let topic = match kind {
            MessageKind::Prediction => &topics.predictions,
            MessageKind::Event => &topics.events,
            MessageKind::KeyImages => &topics.key_images,
        };
        self.submit(&OutboxMessage::json(
            kind,
            topic.clone(),
            serde_json::to_string(body).unwrap_or_default(),
            model_sha256.to_string(),
        ))
    }

    /// A study's key-image montage on `…/key-images`: content type `image/png`, user property
    /// `prediction_id`, QoS 1, through the outbox like everything else.
    pub fn submit_key_images(
        &self,
        png: &[u8],
        prediction_id: &str,
        model_sha256: &str,
    ) -> Result<u64, OutboxError> {
        use base64::Engine;
        self.submit(&OutboxMessage {
            kind: MessageKind::KeyImages,
            topic: self.shared.settings.topics.key_images.clone(),
            payload: base64::engine::general_purpose::STANDARD.encode(png),
            model_sha256: model_sha256.to_string(),
            binary_content_type: Some("image/png".into()),
            prediction_id: Some(prediction_id.to_string()),
        })
    }

    /// The topic key images are published on.
    pub fn key_images_topic(&self) -> &str {
        &self.shared.settings.topics.key_images
    }

    /// A prediction on the predictions topic; `last_file` (seconds since the Unix epoch) is when
    /// its study's last file arrived, for the heartbeat's latency percentiles.
    pub fn submit_prediction(
        &self,
        prediction: &super::message::Prediction,
        last_file: Option<f64>,
    ) -> Result<u64, OutboxError> {
        let topic = self.shared.settings.topics.predictions.clone();
        let message = OutboxMessage::json(
            MessageKind::Prediction,
            topic,
            serde_json::to_string(prediction).unwrap_or_default(),
            prediction.model.sha256.clone(),
        );
        let seq = self.shared.outbox.push(&message)?;
        if let Some(last_file) = last_file {
            lock(&self.shared.state).clocks.insert(
                seq,
                StudyClock {
                    last_file,
                    inference_ms: prediction.timings.inference_ms,
                },
            );
        }
        offer(&self.shared);
        Ok(seq)
    }

    pub fn stats(&self) -> PublisherStats {
        let s = lock(&self.shared.state);
        PublisherStats {
            connections: s.connections,
            acknowledged: s.acknowledged,
            refused: s.refused,
            waiting: self.shared.outbox.len().unwrap_or(usize::MAX),
            last_error: s.last_error.clone(),
            ack_latencies: s.ack_latencies.clone(),
        }
    }

    /// Waits until the outbox is empty (every message acknowledged) or `timeout` passes.
    pub async fn drain(&self, timeout: Duration) -> Result<(), MqttError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if self.shared.outbox.is_empty()? {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let waiting = self.shared.outbox.len()?;
                if waiting == 0 {
                    return Ok(());
                }
                let last_error = lock(&self.shared.state)
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "none (connected, but no acknowledgement came)".into());
                return Err(MqttError::NotAcknowledged {
                    url: self.shared.settings.url.to_string(),
                    waiting,
                    seconds: timeout.as_secs(),
                    last_error,
                });
            }
        }
    }

    /// Clean shutdown: publishes the retained `offline` status (waiting up to `timeout` for its
    /// PUBACK), disconnects, and stops the tasks. What is still in the outbox stays there for
    /// the next start.
    pub async fn shutdown(self, timeout: Duration) {
        let shared = &self.shared;
        let connected = lock(&shared.state).connected;
        if connected {
            let acked = shared.offline_acked.notified();
            publish_status(shared, Availability::Offline, "shutdown", Tag::Offline);
            let _ = tokio::time::timeout(timeout, acked).await;
        }
        shared.stopping.store(true, Ordering::SeqCst);
        let _ = shared.client.try_disconnect();
        // Removals already acknowledged finish; the thread ends when its channel closes.
        drop(lock_removals(shared).take());
        if let Some(remover) = self.remover {
            let _ = tokio::task::spawn_blocking(move || remover.join()).await;
        }
        let mut tasks = self.tasks;
        if let Some(eventloop) = tasks.first_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(2), eventloop).await;
        }
        for t in &tasks {
            t.abort();
        }
    }
}

fn lock(m: &Mutex<SendState>) -> std::sync::MutexGuard<'_, SendState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_removals(
    shared: &Shared,
) -> std::sync::MutexGuard<'_, Option<std::sync::mpsc::Sender<u64>>> {
    shared.removals.lock().unwrap_or_else(|p| p.into_inner())
}

/// On the remover thread: an acknowledged entry leaves the outbox (an fsync'd commit), then the
/// counters and the latency ring learn of it and the window moves on.
fn acknowledged(shared: &Shared, seq: u64) {
    if let Err(e) = shared.outbox.remove(seq) {
        tracing::error!(error = %crate::logging::Chain(&e), "outbox removal failed");
    }
    {
        let mut s = lock(&shared.state);
        s.offered.remove(&seq);
        if let Some(t) = s.offered_at.remove(&seq) {
            s.ack_latencies.push(t.elapsed().as_secs_f64());
        }
        if let Some(clock) = s.clocks.remove(&seq) {
            let now = crate::publish::message::unix_seconds();
            s.recent_latency_ms
                .write(((now - clock.last_file) * 1e3).max(0.0));
            s.recent_inference_ms.write(clock.inference_ms);
        }
        s.acknowledged += 1;
    }
    offer(shared);
    shared.changed.notify_waiters();
}

/// The p50 and p95 of a ring (nearest rank), or `None` while it is empty.
fn percentiles(ring: &HistoryBuf<f64, RECENT>) -> Option<Percentiles> {
    let mut v: Vec<f64> = ring.as_slice().to_vec();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Percentiles {
        p50: rank(0.50),
        p95: rank(0.95),
    })
}

fn user_properties(model_sha256: Option<&str>) -> Vec<(String, String)> {
    let mut props = vec![("schema_version".to_string(), SCHEMA_VERSION.to_string())];
    if let Some(sha) = model_sha256.filter(|s| !s.is_empty()) {
        props.push(("model_sha256".to_string(), sha.to_string()));
    }
    props
}

fn properties(expiry: Option<u32>, model_sha256: Option<&str>) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: expiry,
        content_type: Some(CONTENT_TYPE.into()),
        user_properties: user_properties(model_sha256),
        ..Default::default()
    }
}

fn status_payload(
    settings: &PublisherSettings,
    state: Availability,
    reason: &str,
    extra: Option<(&Shared, &SendState)>,
) -> String {
    let (started_at, uptime_s, queues, last_error, latency) = match extra {
        Some((shared, s)) => (
            Some(shared.started_at.clone()),
            Some(shared.started.elapsed().as_secs()),
            Some(QueueDepths {
                outbox: shared.outbox.len().unwrap_or(0),
                studies_waiting: shared.studies_waiting.load(Ordering::Relaxed),
            }),
            s.last_error.clone(),
            percentiles(&s.recent_latency_ms)
                .zip(percentiles(&s.recent_inference_ms))
                .map(|(last_file_to_puback_ms, inference_ms)| RecentStudies {
                    studies: s.recent_latency_ms.len(),
                    last_file_to_puback_ms,
                    inference_ms,
                }),
        ),
        None => (None, None, None, None, None),
    };
    let status = Status {
        schema_version: SCHEMA_VERSION,
        appliance_id: settings.appliance_id.clone(),
        state,
        reason: reason.to_string(),
        software_version: env!("CARGO_PKG_VERSION").to_string(),
        model: settings.model.clone(),
        started_at,
        uptime_s,
        queues,
        recent_studies: latency,
        last_error,
        created_at: utc_now(),
    };
    serde_json::to_string(&status).unwrap_or_default()
}

/// Publishes the retained status now (when connected).
fn publish_status(shared: &Shared, state: Availability, reason: &str, tag: Tag) {
    let mut s = lock(&shared.state);
    if !s.connected {
        return;
    }
    let payload = status_payload(&shared.settings, state, reason, Some((shared, &s)));
    let sha = shared.settings.model.as_ref().map(|m| m.sha256.as_str());
    match shared.client.try_publish_with_properties(
        shared.settings.topics.status.clone(),
        QoS::AtLeastOnce,
        true,
        payload,
        properties(None, sha),
    ) {
        Ok(()) => s.queued.push_back(tag),
        Err(e) => s.last_error = Some(format!("status not queued: {e}")),
    }
}

/// Offers outbox messages up to the window, in outbox order; only while connected.
fn offer(shared: &Shared) {
    let mut s = lock(&shared.state);
    if !s.connected || shared.stopping.load(Ordering::SeqCst) {
        return;
    }
    let room = WINDOW.saturating_sub(s.offered.len());
    if room == 0 {
        return;
    }
    let next = match shared
        .outbox
        .next_unsent(room, |seq| s.offered.contains(&seq))
    {
        Ok(n) => n,
        Err(e) => {
            let reason = crate::logging::Chain(&e).to_string();
            tracing::error!(error = %reason, "outbox unreadable");
            s.last_error = Some(reason);
            return;
        }
    };
    for (seq, m) in next {
        let expiry = Some(seconds_u32(shared.settings.message_expiry));
        // Events carry the running model's sha256 too (they have none of their own).
        let sha = Some(m.model_sha256.as_str())
            .filter(|s| !s.is_empty())
            .or(shared.settings.model.as_ref().map(|m| m.sha256.as_str()));
        let mut props = properties(expiry, sha);
        if let Some(content_type) = &m.binary_content_type {
            props.payload_format_indicator = Some(0);
            props.content_type = Some(content_type.clone());
        }
        if let Some(id) = &m.prediction_id {
            props
                .user_properties
                .push(("prediction_id".to_string(), id.clone()));
        }
        let payload = m.payload_bytes();
        match shared.client.try_publish_with_properties(
            m.topic,
            QoS::AtLeastOnce,
            false,
            payload,
            props,
        ) {
            Ok(()) => {
                s.queued.push_back(Tag::Message(seq));
                s.offered.insert(seq);
                s.offered_at.entry(seq).or_insert_with(Instant::now);
            }
            Err(e) => {
                s.last_error = Some(format!("publish not queued: {e}"));
                break;
            }
        }
    }
}

async fn run_heartbeat(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.settings.heartbeat);
    tick.tick().await;
    loop {
        tick.tick().await;
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        publish_status(&shared, Availability::Online, "heartbeat", Tag::Status);
    }
}

/// The connection error with a hint for the usual deployment mistakes.
pub fn explain(error: &str) -> String {
    let hint = if error.contains("CertificateRequired") {
        " (the broker requires a client certificate: set mqtt.client_cert_file and client_key_file)"
    } else if error.contains("UnknownCA") || error.contains("BadCertificate") {
        " (the broker does not trust this appliance's client certificate)"
    } else if error.contains("invalid peer certificate") {
        " (the broker's certificate is not signed by mqtt.ca_file, or does not name the host in mqtt.url)"
    } else if error.contains("NotAuthorized") || error.contains("BadUserNamePassword") {
        " (the broker refused the username or password)"
    } else if error.contains("os error 111") {
        " (nothing listens at the broker's host and port)"
    } else {
        ""
    };
    format!("{error}{hint}")
}

/// Exponential backoff with ±25 % jitter (many appliances restarting together must not reconnect
/// in step).
fn backoff_delay(attempt: u32) -> Duration {
    let base = BACKOFF_MIN.as_secs_f64() * 2f64.powi(attempt.min(16) as i32);
    let base = base.min(BACKOFF_MAX.as_secs_f64());
    let jitter = 0.75 + 0.5 * rand::random::<f64>();
    Duration::from_secs_f64(base * jitter)
}

async fn run_eventloop(shared: Arc<Shared>, mut eventloop: EventLoop) {
    let mut failures = 0u32;
    loop {
        match eventloop.poll().await {
            Ok(event) => {
                failures = 0;
                handle_event(&shared, event);
            }
            Err(e) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let message = explain(&e.to_string());
                {
                    let mut s = lock(&shared.state);
                    if s.connected {
                        tracing::warn!(error = %message, "MQTT connection lost");
                    } else if failures == 0 {
                        tracing::warn!(error = %message, url = %shared.settings.url, "MQTT connection failed");
                    }
                    s.connected = false;
                    s.last_error = Some(message);
                }
                shared.changed.notify_waiters();
                let delay = backoff_delay(failures);
                failures = failures.saturating_add(1);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn handle_event(shared: &Arc<Shared>, event: Event) {
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => {
            {
                let mut s = lock(&shared.state);
                s.connected = true;
                s.connections += 1;
                if !ack.session_present {
                    // rumqttc dropped whatever it still held: offer the outbox again from the start.
                    s.queued.clear();
                    s.inflight.clear();
                    s.offered.clear();
                }
                tracing::info!(
                    url = %shared.settings.url,
                    session_present = ack.session_present,
                    waiting = shared.outbox.len().unwrap_or(0),
                    "MQTT connected"
                );
            }
            publish_status(shared, Availability::Online, "started", Tag::Status);
            offer(shared);
            shared.changed.notify_waiters();
        }
        Event::Outgoing(Outgoing::Publish(pkid)) => {
            let mut s = lock(&shared.state);
            if pkid == 0 || !s.inflight.contains_key(&pkid) {
                if let Some(tag) = s.queued.pop_front() {
                    if pkid != 0 {
                        s.inflight.insert(pkid, tag);
                    }
                }
            }
        }
        Event::Incoming(Packet::PubAck(ack)) => {
            let tag = lock(&shared.state).inflight.remove(&ack.pkid);
            let ok = matches!(
                ack.reason,
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers
            );
            match tag {
                Some(Tag::Message(seq)) if ok => {
                    // The removal (a disk commit) runs on the remover thread, in PUBACK order;
                    // it offers the next messages when done.
                    let sent = lock_removals(shared)
                        .as_ref()
                        .map(|tx| tx.send(seq).is_ok());
                    if sent != Some(true) {
                        acknowledged(shared, seq);
                    }
                    return;
                }
                Some(Tag::Message(seq)) => {
                    // Refused by the broker (e.g. not authorised): kept in the outbox and offered
                    // again in the next session; never dropped.
                    let mut s = lock(&shared.state);
                    s.refused += 1;
                    s.last_error = Some(format!("broker refused message {seq}: {:?}", ack.reason));
                    tracing::error!(seq, reason = ?ack.reason, "broker refused a message");
                }
                Some(Tag::Offline) => shared.offline_acked.notify_waiters(),
                Some(Tag::Status) | None => {}
            }
            offer(shared);
            shared.changed.notify_waiters();
        }
        Event::Incoming(Packet::Disconnect(d)) => {
            let mut s = lock(&shared.state);
            s.last_error = Some(format!("broker disconnected: {:?}", d.reason_code));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_contract() {
        let t = Topics::new("ismf/", "box-1");
        assert_eq!(t.status, "ismf/box-1/status");
        assert_eq!(t.predictions, "ismf/box-1/predictions");
        assert_eq!(t.events, "ismf/box-1/events");
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let d0 = backoff_delay(0).as_secs_f64();
        assert!((0.18..=0.32).contains(&d0), "{d0}");
        let d3 = backoff_delay(3).as_secs_f64();
        assert!((1.5..=2.5).contains(&d3), "{d3}");
        for _ in 0..50 {
            assert!(backoff_delay(40) <= Duration::from_secs_f64(30.0 * 1.25));
        }
    }

    #[test]
    fn tls_file_problems_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("ca.pem");
        let e = tls_config(&missing, None).expect_err("missing");
        assert!(
            e.to_string().contains("CA file") && e.to_string().contains("ca.pem"),
            "{e}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        let e = tls_config(&junk, None).expect_err("junk");
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        let e = mqtt_options(
            &BrokerUrl::parse("mqtt://localhost:1883").expect("url"),
            "c",
            None,
            None,
            Some(&junk),
            None,
            Duration::from_secs(30),
        )
        .expect_err("tls files without mqtts");
        assert!(e.to_string().contains("not mqtts://"), "{e}");
    }
}
