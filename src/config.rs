//! Firmware configuration, checked once: TOML → raw serde form → typed [`Config`].
//!
//! One source of defaults: the embedded `firmware-config/appliance.toml` ([`DEFAULT_TOML`],
//! printed by `ismf config print-default`). A file is merged over it key by key, so a file may
//! name only what differs (an appliance id, the folders, the broker, the model card); unknown keys
//! and bad values are errors, all listed at once so an installer fixes a file in one pass.
//! `ISMF_<SECTION>_<KEY>` environment variables override keys after the merge.
//!
//! The checked form has the types the components use — [`Duration`]s, a parsed [`BrokerUrl`],
//! paths resolved against the working directory at load (the systemd unit sets one) — and this
//! module is the one place that knows both the file format and the components: it builds each
//! component's own settings ([`Config::ingest_engine`], [`Config::watcher`],
//! [`Config::publisher`]), so no component reads the file's structure.

use crate::ingest::complete::Timing;
use crate::ingest::quarantine::QuarantineMode;
use crate::ingest::watch::WatchConfig;
use crate::ingest::IngestConfig;
pub use crate::model::Backend;
use crate::model::Precision;
use crate::network::scp::{check_ae_title, Caller, ScpSettings};
use crate::network::scu::Peer;
use crate::network::sender::SenderSettings;
use crate::publish::message::{ModelInfo, PhiPolicy};
use crate::publish::mqtt::{PublisherSettings, Topics};
pub use crate::publish::url::BrokerUrl;
use crate::series::Rules;
use crate::tls::TlsError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration compiled into the binary, every key commented.
pub const DEFAULT_TOML: &str = include_str!("../firmware-config/appliance.toml");

/// Keys the default leaves commented out (no default value): accepted in a file, absent otherwise.
const OPTIONAL_KEYS: &[(&str, &str)] = &[
    ("mqtt", "client_id"),
    ("mqtt", "username"),
    ("mqtt", "password_file"),
    ("mqtt", "ca_file"),
    ("mqtt", "client_cert_file"),
    ("mqtt", "client_key_file"),
    ("results", "dir"),
    ("dicom", "listen"),
    ("dicom", "tls_cert_file"),
    ("dicom", "tls_key_file"),
    ("dicom", "tls_ca_file"),
    ("pacs", "host"),
    ("pacs", "tls_ca_file"),
    ("pacs", "tls_cert_file"),
    ("pacs", "tls_key_file"),
];

/// The sections `ISMF_<SECTION>_<KEY>` variables may override.
const ENV_SECTIONS: [&str; 7] = [
    "appliance",
    "ingest",
    "mqtt",
    "model",
    "results",
    "dicom",
    "pacs",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

/// The file's form: every key present (the merge over the default fills what a file omits).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    appliance: RawAppliance,
    ingest: RawIngest,
    mqtt: RawMqtt,
    model: RawModel,
    results: RawResults,
    dicom: RawDicom,
    pacs: RawPacs,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDicom {
    #[serde(default)]
    listen: Option<String>,
    ae_title: String,
    allowed_callers: Vec<String>,
    accept_any: bool,
    max_associations: usize,
    max_pdu: u32,
    read_timeout_seconds: u64,
    write_timeout_seconds: u64,
    min_free_mb: u64,
    #[serde(default)]
    tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    tls_key_file: Option<PathBuf>,
    #[serde(default)]
    tls_ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPacs {
    #[serde(default)]
    host: Option<String>,
    port: u16,
    called_ae: String,
    calling_ae: String,
    timeout_seconds: u64,
    max_attempts: u32,
    max_backoff_seconds: u64,
    #[serde(default)]
    tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    tls_key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResults {
    explain: bool,
    #[serde(default)]
    dir: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppliance {
    id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    watch_dir: PathBuf,
    state_dir: PathBuf,
    quarantine_dir: PathBuf,
    stable_seconds: f64,
    force_after_seconds: f64,
    poll_only: bool,
    rescan_seconds: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    client_cert_file: Option<PathBuf>,
    #[serde(default)]
    client_key_file: Option<PathBuf>,
    topic_prefix: String,
    keep_alive: u64,
    message_expiry: u32,
    session_expiry: u32,
    heartbeat: u64,
    phi: PhiPolicy,
    outbox_capacity: usize,
    ack_timeout: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    card: PathBuf,
    precision: Precision,
    threads: usize,
    backend: Backend,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub appliance: ApplianceConfig,
    pub ingest: IngestSection,
    pub mqtt: MqttConfig,
    pub model: ModelSection,
    pub results: ResultsSection,
    pub dicom: DicomSection,
    pub pacs: PacsSection,
}

/// The DICOM receiver (`[dicom]`); it runs only when `listen` is set.
#[derive(Clone, Debug)]
pub struct DicomSection {
    pub listen: Option<SocketAddr>,
    pub ae_title: String,
    pub allowed_callers: Vec<Caller>,
    pub accept_any: bool,
    pub max_associations: usize,
    pub max_pdu: u32,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub min_free_bytes: u64,
    /// DICOM TLS on the listener: certificate and key, and the CA client certificates must be
    /// signed by (mutual TLS) when set.
    pub tls: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
}

/// Where results are filed (`[pacs]`); sending runs only when `host` is set.
#[derive(Clone, Debug)]
pub struct PacsSection {
    pub peer: Option<Peer>,
    pub max_attempts: u32,
    pub max_backoff: Duration,
    /// DICOM TLS to PACS: the CA its certificate must be signed by, and this appliance's
    /// certificate and key when PACS asks for one.
    pub tls: Option<(PathBuf, Option<(PathBuf, PathBuf)>)>,
}

/// What the appliance makes for the radiologist besides the prediction message.
#[derive(Clone, Debug)]
pub struct ResultsSection {
    /// Explanation maps, and from them the key images, SC and KOS.
    pub explain: bool,
    /// Where the DICOM results and the PNG are written (`<state_dir>/results` by default).
    pub dir: PathBuf,
}

#[derive(Clone, Debug)]
pub struct ApplianceConfig {
    /// Names this box in MQTT topics and messages.
    pub id: String,
}

#[derive(Clone, Debug)]
pub struct IngestSection {
    pub watch_dir: PathBuf,
    /// Catalog journal and MQTT outbox.
    pub state_dir: PathBuf,
    pub quarantine_dir: PathBuf,
    /// A study with all four sequences is complete once no file arrived for this long.
    pub stable: Duration,
    /// A study still missing a sequence is reported incomplete after this long.
    pub force_after: Duration,
    pub poll_only: bool,
    pub rescan: Duration,
}

#[derive(Clone, Debug)]
pub struct MqttConfig {
    pub url: BrokerUrl,
    /// `ismf-<appliance id>` unless the file names one.
    pub client_id: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub topic_prefix: String,
    pub keep_alive: Duration,
    /// How long a prediction or event may wait in the broker for an offline subscriber.
    pub message_expiry: Duration,
    /// How long the broker keeps this client's session after a disconnect.
    pub session_expiry: Duration,
    /// Between heartbeats on the status topic.
    pub heartbeat: Duration,
    pub phi: PhiPolicy,
    /// Messages the outbox holds before intake stops.
    pub outbox_capacity: usize,
    /// How long `classify --publish` waits for the broker's acknowledgements.
    pub ack_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct ModelSection {
    pub card: PathBuf,
    pub precision: Precision,
    pub threads: usize,
    pub backend: Backend,
}

/// A topic level the appliance writes must not hold MQTT's separators or wildcards.
fn topic_level_problem(what: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        Some(format!("{what} is empty"))
    } else if value.contains(['+', '#', '\0']) {
        Some(format!("{what} '{value}' contains an MQTT wildcard"))
    } else {
        None
    }
}

fn default_table() -> toml::Table {
    // A unit test proves the embedded file parses.
    toml::from_str(DEFAULT_TOML).unwrap_or_default()
}

/// `file` merged over `base`: a file's table merges into the base's table of the same name, any
/// other value replaces the base's.
fn merge(base: &mut toml::Table, file: toml::Table) {
    for (key, value) in file {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(f)) => merge(b, f),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Every key of `file` that is neither in the default nor an optional key, as `section.key`.
fn unknown_keys(file: &toml::Table, default: &toml::Table) -> Vec<String> {
    let mut unknown = Vec::new();
    for (section, value) in file {
        let Some(known) = default.get(section).and_then(|v| v.as_table()) else {
            unknown.push(format!("unknown section [{section}]"));
            continue;
        };
        let Some(table) = value.as_table() else {
            unknown.push(format!("{section} must be a table"));
            continue;
        };
        for key in table.keys() {
            if !known.contains_key(key)
                && !OPTIONAL_KEYS.contains(&(section.as_str(), key.as_str()))
            {
                let candidates = known.keys().map(String::as_str).chain(
                    OPTIONAL_KEYS
                        .iter()
                        .filter(|(s, _)| s == section)
                        .map(|(_, k)| *k),
                );
                let hint = match closest(key, candidates) {
                    Some(near) => format!(" (did you mean {section}.{near}?)"),
                    None => String::new(),
                };
                unknown.push(format!("unknown key {section}.{key}{hint}"));
            }
        }
    }
    unknown
}

/// The candidate nearest to a misspelt `key`, when it is near enough to be the likely intent.
fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(key, c), c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A path as given, or joined to the working directory when relative.
fn resolve(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

impl Config {
    /// The embedded default, checked for its values but not for its files: its relative paths
    /// (the model card) only exist from the repository root, and a caller such as `ismf demo`
    /// replaces them anyway.
    pub fn default_config() -> Config {
        let raw: RawConfig = toml::Value::Table(default_table())
            .try_into()
            .unwrap_or_else(|e| panic!("the embedded default config does not parse: {e}"));
        let url = BrokerUrl::parse(&raw.mqtt.url)
            .unwrap_or_else(|e| panic!("the embedded default broker url: {e}"));
        Config::from_raw(raw, url)
    }

    /// Reads and checks a file, with `ISMF_<SECTION>_<KEY>` environment overrides applied.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            origin: origin.clone(),
            source,
        })?;
        Config::from_toml_with_env(&text, &origin, std::env::vars())
    }

    /// Parses and checks TOML text (no environment overrides); `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(text, origin, std::iter::empty())
    }

    /// Parses TOML text, merges it over the embedded default, applies overrides from `env` —
    /// only variables named `ISMF_<SECTION>_<KEY>` for the sections in [`ENV_SECTIONS`]; the
    /// value takes the type the key's value has (strings for optional keys, a comma-separated
    /// list for a list) — and checks.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse = |message: String| ConfigError::Parse {
            origin: origin.to_string(),
            message: message.trim_end().to_string(),
        };
        let file: toml::Table = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        let mut table = default_table();
        let mut problems = unknown_keys(&file, &table);
        merge(&mut table, file);
        let mut overridden = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("ISMF_") else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            let Some((section, key)) = ENV_SECTIONS
                .iter()
                .find_map(|s| Some((*s, lower.strip_prefix(s)?.strip_prefix('_')?)))
            else {
                continue;
            };
            let section_table = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section_table) = section_table.as_table_mut() else {
                continue;
            };
            if !section_table.contains_key(key) && !OPTIONAL_KEYS.contains(&(section, key)) {
                problems.push(format!("environment {name}: unknown key {section}.{key}"));
                continue;
            }
            let typed = match section_table.get(key) {
                Some(toml::Value::Boolean(_)) => value.parse().map(toml::Value::Boolean).ok(),
                Some(toml::Value::Integer(_)) => value.parse().map(toml::Value::Integer).ok(),
                Some(toml::Value::Float(_)) => value.parse().map(toml::Value::Float).ok(),
                Some(toml::Value::Array(_)) => Some(toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| toml::Value::String(v.to_string()))
                        .collect(),
                )),
                _ => Some(toml::Value::String(value.clone())),
            };
            match typed {
                Some(v) => {
                    section_table.insert(key.to_string(), v);
                    overridden.push(name);
                }
                None => problems.push(format!(
                    "environment {name}={value:?}: not a value of the type {section}.{key} takes"
                )),
            }
        }
        if !overridden.is_empty() {
            tracing::info!(overrides = %overridden.join(", "), "configuration overridden from the environment");
        }
        let invalid = |problems: Vec<String>| ConfigError::Invalid {
            origin: origin.to_string(),
            problems,
        };
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse(e.to_string()))?;
        // The broker URL is parsed here, once: its problems join the others, its value the
        // checked form.
        let url = BrokerUrl::parse(&raw.mqtt.url);
        let problems = raw.problems(&url);
        match url {
            Ok(url) if problems.is_empty() => Ok(Config::from_raw(raw, url)),
            _ => Err(invalid(problems)),
        }
    }

    /// The typed form of values [`RawConfig::problems`] found no fault with.
    fn from_raw(raw: RawConfig, url: BrokerUrl) -> Config {
        let i = raw.ingest;
        let m = raw.mqtt;
        let d = raw.dicom;
        let p = raw.pacs;
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO);
        Config {
            dicom: DicomSection {
                listen: d.listen.and_then(|l| l.parse().ok()),
                allowed_callers: d
                    .allowed_callers
                    .iter()
                    .filter_map(|c| c.parse().ok())
                    .collect(),
                ae_title: d.ae_title,
                accept_any: d.accept_any,
                max_associations: d.max_associations,
                max_pdu: d.max_pdu,
                read_timeout: Duration::from_secs(d.read_timeout_seconds),
                write_timeout: Duration::from_secs(d.write_timeout_seconds),
                min_free_bytes: d.min_free_mb * 1_000_000,
                tls: match (d.tls_cert_file, d.tls_key_file) {
                    (Some(c), Some(k)) => {
                        Some((resolve(c), resolve(k), d.tls_ca_file.map(resolve)))
                    }
                    _ => None,
                },
            },
            pacs: PacsSection {
                peer: p.host.map(|host| Peer {
                    host,
                    port: p.port,
                    called_ae: p.called_ae,
                    calling_ae: p.calling_ae,
                    timeout: Duration::from_secs(p.timeout_seconds),
                    max_pdu: 65536,
                    tls: None,
                }),
                max_attempts: p.max_attempts,
                max_backoff: Duration::from_secs(p.max_backoff_seconds),
                tls: p.tls_ca_file.map(|ca| {
                    (
                        resolve(ca),
                        p.tls_cert_file
                            .map(resolve)
                            .zip(p.tls_key_file.map(resolve)),
                    )
                }),
            },
            mqtt: MqttConfig {
                url,
                client_id: m
                    .client_id
                    .unwrap_or_else(|| format!("ismf-{}", raw.appliance.id)),
                username: m.username,
                password_file: m.password_file.map(resolve),
                ca_file: m.ca_file.map(resolve),
                client_cert_file: m.client_cert_file.map(resolve),
                client_key_file: m.client_key_file.map(resolve),
                topic_prefix: m.topic_prefix,
                keep_alive: Duration::from_secs(m.keep_alive),
                message_expiry: Duration::from_secs(m.message_expiry.into()),
                session_expiry: Duration::from_secs(m.session_expiry.into()),
                heartbeat: Duration::from_secs(m.heartbeat),
                phi: m.phi,
                outbox_capacity: m.outbox_capacity,
                ack_timeout: Duration::from_secs(m.ack_timeout),
            },
            appliance: ApplianceConfig {
                id: raw.appliance.id,
            },
            results: ResultsSection {
                explain: raw.results.explain,
                dir: raw
                    .results
                    .dir
                    .map(resolve)
                    .unwrap_or_else(|| resolve(i.state_dir.join("results"))),
            },
            ingest: IngestSection {
                watch_dir: resolve(i.watch_dir),
                state_dir: resolve(i.state_dir),
                quarantine_dir: resolve(i.quarantine_dir),
                stable: secs(i.stable_seconds),
                force_after: secs(i.force_after_seconds),
                poll_only: i.poll_only,
                rescan: secs(i.rescan_seconds),
            },
            model: ModelSection {
                card: resolve(raw.model.card),
                precision: raw.model.precision,
                threads: raw.model.threads,
                backend: raw.model.backend,
            },
        }
    }

    /// Where the MQTT outbox lives.
    /// The DICOM receiver's settings, when `[dicom] listen` is set (its TLS files read here).
    pub fn receiver(&self) -> Result<Option<ScpSettings>, TlsError> {
        let d = &self.dicom;
        let Some(listen) = d.listen else {
            return Ok(None);
        };
        let tls = match &d.tls {
            Some((cert, key, ca)) => Some(std::sync::Arc::new(crate::tls::server_config(
                cert,
                key,
                ca.as_deref(),
            )?)),
            None => None,
        };
        Ok(Some(ScpSettings {
            listen,
            ae_title: d.ae_title.clone(),
            allowed_callers: d.allowed_callers.clone(),
            accept_any: d.accept_any,
            max_associations: d.max_associations,
            max_pdu: d.max_pdu,
            read_timeout: d.read_timeout,
            write_timeout: d.write_timeout,
            verdict_timeout: d.read_timeout,
            tls,
        }))
    }

    /// The PACS sender's settings, when `[pacs] host` is set (its TLS files read here).
    pub fn pacs_sender(&self) -> Result<Option<SenderSettings>, TlsError> {
        let Some(mut peer) = self.pacs.peer.clone() else {
            return Ok(None);
        };
        if let Some((ca, client)) = &self.pacs.tls {
            let client = client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            peer.tls = Some(std::sync::Arc::new(crate::tls::client_config(ca, client)?));
        }
        Ok(Some(SenderSettings {
            peer,
            max_attempts: self.pacs.max_attempts,
            max_backoff: self.pacs.max_backoff.as_secs_f64(),
        }))
    }

    pub fn pacs_queue_path(&self) -> PathBuf {
        self.ingest.state_dir.join("pacs.redb")
    }

    pub fn outbox_path(&self) -> PathBuf {
        self.ingest.state_dir.join("outbox.redb")
    }

    /// The ingest engine's settings: the folders, the completeness timing, quarantine by move.
    pub fn ingest_engine(&self) -> IngestConfig {
        let i = &self.ingest;
        let stable = i.stable.as_secs_f64();
        IngestConfig {
            watch_dir: i.watch_dir.clone(),
            state_dir: i.state_dir.clone(),
            quarantine_dir: i.quarantine_dir.clone(),
            quarantine_mode: QuarantineMode::Move,
            timing: Timing {
                stable_seconds: stable,
                force_after_seconds: i.force_after.as_secs_f64(),
            },
            quarantine_grace_seconds: stable.max(5.0),
            rules: Rules::default(),
        }
    }

    /// The folder watcher's settings.
    pub fn watcher(&self) -> WatchConfig {
        let mut w = WatchConfig::new(self.ingest.watch_dir.clone());
        w.poll_only = self.ingest.poll_only;
        w.rescan = self.ingest.rescan;
        w
    }

    /// The MQTT publisher's settings; `model` is reported in the status messages.
    pub fn publisher(&self, model: Option<ModelInfo>) -> PublisherSettings {
        let m = &self.mqtt;
        PublisherSettings {
            url: m.url.clone(),
            client_id: m.client_id.clone(),
            username: m.username.clone(),
            password_file: m.password_file.clone(),
            ca_file: m.ca_file.clone(),
            client_cert_file: m.client_cert_file.clone(),
            client_key_file: m.client_key_file.clone(),
            topics: Topics::new(&m.topic_prefix, &self.appliance.id),
            appliance_id: self.appliance.id.clone(),
            keep_alive: m.keep_alive,
            message_expiry: m.message_expiry,
            session_expiry: m.session_expiry,
            heartbeat: m.heartbeat,
            model,
            outbox_path: self.outbox_path(),
            outbox_capacity: m.outbox_capacity,
        }
    }
}

impl RawConfig {
    /// Every problem with the values, given the parsed `mqtt.url` (files are checked for
    /// existence, not read).
    fn problems(&self, url: &Result<BrokerUrl, String>) -> Vec<String> {
        let mut p = Vec::new();
        p.extend(topic_level_problem("appliance.id", &self.appliance.id));
        if self.appliance.id.contains('/') {
            p.push(format!(
                "appliance.id '{}' contains '/' (it is one topic level)",
                self.appliance.id
            ));
        }
        let i = &self.ingest;
        for (what, v) in [
            ("ingest.stable_seconds", i.stable_seconds),
            ("ingest.force_after_seconds", i.force_after_seconds),
            ("ingest.rescan_seconds", i.rescan_seconds),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push(format!(
                    "{what} must be a positive number of seconds, not {v}"
                ));
            }
        }
        if i.force_after_seconds < i.stable_seconds {
            p.push(format!(
                "ingest.force_after_seconds ({}) is shorter than ingest.stable_seconds ({})",
                i.force_after_seconds, i.stable_seconds
            ));
        }
        let m = &self.mqtt;
        match url {
            Ok(url) => {
                if url.tls && m.ca_file.is_none() {
                    p.push("mqtt.url is mqtts:// but mqtt.ca_file is not set".into());
                }
                if !url.tls && (m.client_cert_file.is_some() || m.ca_file.is_some()) {
                    p.push(
                        "mqtt.ca_file / client_cert_file are set but mqtt.url is not mqtts://"
                            .into(),
                    );
                }
            }
            Err(e) => p.push(format!("mqtt.url: {e}")),
        }
        if m.client_cert_file.is_some() != m.client_key_file.is_some() {
            p.push("mqtt.client_cert_file and mqtt.client_key_file must be set together".into());
        }
        if m.password_file.is_some() && m.username.is_none() {
            p.push("mqtt.password_file is set without mqtt.username".into());
        }
        for (what, file) in [
            ("mqtt.password_file", &m.password_file),
            ("mqtt.ca_file", &m.ca_file),
            ("mqtt.client_cert_file", &m.client_cert_file),
            ("mqtt.client_key_file", &m.client_key_file),
        ] {
            if let Some(f) = file {
                if !f.is_file() {
                    p.push(format!("{what}: {} does not exist", f.display()));
                }
            }
        }
        if let Some(id) = &m.client_id {
            p.extend(topic_level_problem("mqtt.client_id", id));
        }
        for level in m.topic_prefix.split('/') {
            if let Some(e) = topic_level_problem("a level of mqtt.topic_prefix", level) {
                p.push(e);
            }
        }
        if m.keep_alive < 5 || m.keep_alive > 65535 {
            p.push(format!(
                "mqtt.keep_alive must be 5–65535 s, not {}",
                m.keep_alive
            ));
        }
        if m.heartbeat == 0 {
            p.push("mqtt.heartbeat must be at least 1 s".into());
        }
        if m.outbox_capacity == 0 {
            p.push("mqtt.outbox_capacity must be at least 1".into());
        }
        if m.ack_timeout == 0 {
            p.push("mqtt.ack_timeout must be at least 1 s".into());
        }
        if self.model.threads == 0 || self.model.threads > 64 {
            p.push(format!(
                "model.threads must be 1–64, not {}",
                self.model.threads
            ));
        }
        if self.model.backend == Backend::Cuda && !cfg!(feature = "cuda") {
            p.push(
                "model.backend = \"cuda\": this build has no CUDA backend; use \"cpu\" or \"auto\""
                    .into(),
            );
        }
        let d = &self.dicom;
        if let Some(l) = &d.listen {
            if l.parse::<SocketAddr>().is_err() {
                p.push(format!(
                    "dicom.listen '{l}' is not an address:port (e.g. \"0.0.0.0:11112\")"
                ));
            }
            if d.allowed_callers.is_empty() && !d.accept_any {
                p.push("dicom.listen is set but dicom.allowed_callers is empty: every association would be refused (list the senders, or set dicom.accept_any = true)".into());
            }
        }
        if let Err(e) = check_ae_title(&d.ae_title) {
            p.push(format!("dicom.ae_title: {e}"));
        }
        for c in &d.allowed_callers {
            if let Err(e) = c.parse::<Caller>() {
                p.push(format!("dicom.allowed_callers: {e}"));
            }
        }
        if !(1..=256).contains(&d.max_associations) {
            p.push(format!(
                "dicom.max_associations must be 1–256, not {}",
                d.max_associations
            ));
        }
        if !(4096..=1_048_576).contains(&d.max_pdu) {
            p.push(format!(
                "dicom.max_pdu must be 4096–1048576 bytes, not {}",
                d.max_pdu
            ));
        }
        for (what, v) in [
            ("dicom.read_timeout_seconds", d.read_timeout_seconds),
            ("dicom.write_timeout_seconds", d.write_timeout_seconds),
            ("pacs.timeout_seconds", self.pacs.timeout_seconds),
            ("pacs.max_backoff_seconds", self.pacs.max_backoff_seconds),
        ] {
            if v == 0 {
                p.push(format!("{what} must be at least 1"));
            }
        }
        if d.tls_cert_file.is_some() != d.tls_key_file.is_some() {
            p.push("dicom.tls_cert_file and dicom.tls_key_file must be set together".into());
        }
        if d.tls_ca_file.is_some() && d.tls_cert_file.is_none() {
            p.push("dicom.tls_ca_file (client certificates) needs dicom.tls_cert_file and tls_key_file".into());
        }
        let pacs = &self.pacs;
        if pacs.tls_cert_file.is_some() != pacs.tls_key_file.is_some() {
            p.push("pacs.tls_cert_file and pacs.tls_key_file must be set together".into());
        }
        if pacs.tls_cert_file.is_some() && pacs.tls_ca_file.is_none() {
            p.push("pacs.tls_cert_file is set but pacs.tls_ca_file (TLS to PACS) is not".into());
        }
        for (what, file) in [
            ("dicom.tls_cert_file", &d.tls_cert_file),
            ("dicom.tls_key_file", &d.tls_key_file),
            ("dicom.tls_ca_file", &d.tls_ca_file),
            ("pacs.tls_ca_file", &pacs.tls_ca_file),
            ("pacs.tls_cert_file", &pacs.tls_cert_file),
            ("pacs.tls_key_file", &pacs.tls_key_file),
        ] {
            if let Some(f) = file {
                if !f.is_file() {
                    p.push(format!("{what}: {} does not exist", f.display()));
                }
            }
        }
        if pacs.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
            p.push("pacs.host is empty (comment it out to keep results on disk only)".into());
        }
        if pacs.port == 0 {
            p.push("pacs.port must be 1–65535".into());
        }
        for (what, ae) in [
            ("pacs.called_ae", &pacs.called_ae),
            ("pacs.calling_ae", &pacs.calling_ae),
        ] {
            if let Err(e) = check_ae_title(ae) {
                p.push(format!("{what}: {e}"));
            }
        }
        if pacs.max_attempts == 0 {
            p.push("pacs.max_attempts must be at least 1".into());
        }
        if !self.model.card.is_file() {
            p.push(format!(
                "model.card: {} does not exist",
                self.model.card.display()
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl Fn(&mut toml::Table)) -> Result<Config, ConfigError> {
        let mut t: toml::Table = toml::from_str(DEFAULT_TOML).expect("default parses");
        edit(&mut t);
        Config::from_toml(&toml::to_string(&t).expect("toml"), "test")
    }

    fn section<'a>(t: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
        t.get_mut(name)
            .and_then(|v| v.as_table_mut())
            .expect("section")
    }

    #[test]
    fn embedded_default_is_valid_from_the_repo_root() {
        let c = Config::from_toml(DEFAULT_TOML, "embedded default").expect("valid");
        assert_eq!(c.mqtt.topic_prefix, "ismf");
        assert_eq!(c.mqtt.phi, PhiPolicy::Uids);
        assert_eq!(c.mqtt.client_id, format!("ismf-{}", c.appliance.id));
        assert_eq!(c.ingest.stable, Duration::from_secs(30));
        assert!(c.model.card.is_absolute(), "{}", c.model.card.display());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = with(|t| {
            section(t, "mqtt").insert("urll".into(), "x".into());
        })
        .expect_err("unknown key");
        assert!(e.to_string().contains("urll"), "{e}");
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let e = with(|t| {
            let m = section(t, "mqtt");
            m.insert("url".into(), "mqtts://broker".into());
            m.insert("client_cert_file".into(), "/nonexistent/cert.pem".into());
            m.insert("keep_alive".into(), 1.into());
            section(t, "appliance").insert("id".into(), "a/b".into());
            section(t, "model").insert("backend".into(), "cuda".into());
        })
        .expect_err("invalid");
        let text = e.to_string();
        for needle in [
            "ca_file is not set",
            "set together",
            "/nonexistent/cert.pem does not exist",
            "keep_alive",
            "one topic level",
        ] {
            assert!(text.contains(needle), "missing '{needle}' in {text}");
        }
        // A build with tract's CUDA runtime accepts the setting; loading then says what is missing.
        assert_eq!(
            text.contains("no CUDA backend"),
            !cfg!(feature = "cuda"),
            "{text}"
        );
    }

    #[test]
    fn environment_overrides_take_the_files_types_and_unknown_keys_are_refused() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let c = Config::from_toml_with_env(
            DEFAULT_TOML,
            "test",
            env(&[
                ("ISMF_MQTT_URL", "mqtt://broker:1884"),
                ("ISMF_MQTT_KEEP_ALIVE", "45"),
                ("ISMF_INGEST_STABLE_SECONDS", "12"),
                ("ISMF_INGEST_POLL_ONLY", "true"),
                ("ISMF_APPLIANCE_ID", "box-7"),
                ("ISMF_MQTT_USERNAME", "ismf"),
                ("ISMF_UNRELATED", "ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("overridden");
        assert_eq!(c.mqtt.url.to_string(), "mqtt://broker:1884");
        assert_eq!(c.mqtt.keep_alive, Duration::from_secs(45));
        assert_eq!(c.ingest.stable, Duration::from_secs(12));
        assert!(c.ingest.poll_only);
        assert_eq!(c.appliance.id, "box-7");
        assert_eq!(c.mqtt.username.as_deref(), Some("ismf"));
        let e = Config::from_toml_with_env(DEFAULT_TOML, "test", env(&[("ISMF_MQTT_URLL", "x")]))
            .expect_err("unknown key");
        assert!(e.to_string().contains("urll"), "{e}");
        let e = Config::from_toml_with_env(
            DEFAULT_TOML,
            "test",
            env(&[("ISMF_MQTT_KEEP_ALIVE", "soon")]),
        )
        .expect_err("bad type");
        assert!(e.to_string().contains("ISMF_MQTT_KEEP_ALIVE"), "{e}");
    }

    #[test]
    fn shipped_board_configs_parse_and_only_miss_their_install_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config");
        for name in ["jetson-orin.toml", "x86-server.toml"] {
            let text = std::fs::read_to_string(dir.join(name)).expect("config");
            let config: RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let problems: Vec<String> = config
                .problems(&BrokerUrl::parse(&config.mqtt.url))
                .into_iter()
                .filter(|p| !p.ends_with("does not exist"))
                .collect();
            assert!(problems.is_empty(), "{name}: {problems:?}");
        }
    }

    #[test]
    fn omitted_keys_take_the_embedded_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let card = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/model-card.json");
        let text = format!(
            "[appliance]\nid = \"box-3\"\n[ingest]\nwatch_dir = \"{d}/in\"\nstate_dir = \"{d}/state\"\nquarantine_dir = \"{d}/q\"\n[mqtt]\nurl = \"mqtt://broker:1999\"\n[model]\ncard = \"{card}\"\n",
            d = dir.path().display(),
            card = card.display()
        );
        let c = Config::from_toml(&text, "minimal").expect("a minimal file is valid");
        let d = Config::default_config();
        assert_eq!(c.appliance.id, "box-3");
        assert_eq!(c.mqtt.client_id, "ismf-box-3");
        assert_eq!(c.mqtt.url.port, 1999);
        assert_eq!(c.mqtt.topic_prefix, d.mqtt.topic_prefix);
        assert_eq!(c.mqtt.heartbeat, d.mqtt.heartbeat);
        assert_eq!(c.ingest.poll_only, d.ingest.poll_only);
        assert_eq!(c.ingest.stable, d.ingest.stable);
        assert_eq!(c.model.precision, d.model.precision);
        assert_eq!(c.ingest.watch_dir, dir.path().join("in"));
    }

    #[test]
    fn every_unknown_key_is_listed_at_once() {
        let e = Config::from_toml(
            "[mqtt]\nurll = \"x\"\n[ingest]\npoll = true\n[extra]\na = 1\n",
            "typos",
        )
        .expect_err("unknown keys");
        let text = e.to_string();
        for needle in ["mqtt.urll", "ingest.poll", "[extra]"] {
            assert!(text.contains(needle), "missing '{needle}' in {text}");
        }
    }

    #[test]
    fn the_dicom_receiver_and_pacs_are_checked_and_callers_come_from_the_environment() {
        let e = with(|t| {
            let d = section(t, "dicom");
            d.insert("listen".into(), "0.0.0.0:11112".into());
            d.insert("ae_title".into(), "A_TITLE_FAR_TOO_LONG".into());
            d.insert("max_pdu".into(), 100.into());
            section(t, "pacs").insert("host".into(), " ".into());
        })
        .expect_err("invalid");
        let text = e.to_string();
        for needle in [
            "allowed_callers is empty",
            "dicom.ae_title",
            "dicom.max_pdu",
            "pacs.host is empty",
        ] {
            assert!(text.contains(needle), "missing '{needle}' in {text}");
        }
        let c = Config::from_toml_with_env(
            DEFAULT_TOML,
            "test",
            [
                (
                    "ISMF_DICOM_LISTEN".to_string(),
                    "127.0.0.1:11112".to_string(),
                ),
                (
                    "ISMF_DICOM_ALLOWED_CALLERS".to_string(),
                    "MRI1@10.0.0.5, ROUTER".to_string(),
                ),
                ("ISMF_PACS_HOST".to_string(), "pacs.local".to_string()),
            ],
        )
        .expect("overridden");
        let r = c.receiver().expect("tls").expect("receiver on");
        assert_eq!(r.allowed_callers.len(), 2);
        assert_eq!(
            r.allowed_callers[0].host,
            Some("10.0.0.5".parse().expect("ip"))
        );
        assert_eq!(
            c.pacs_sender().expect("tls").expect("pacs on").peer.host,
            "pacs.local"
        );
        let off = Config::from_toml(DEFAULT_TOML, "default").expect("default");
        assert!(
            off.receiver().expect("tls").is_none() && off.pacs_sender().expect("tls").is_none(),
            "both off by default"
        );
        let bad = with(|t| {
            let d = section(t, "dicom");
            d.insert(
                "allowed_callers".into(),
                toml::Value::Array(vec!["MRI@not-an-ip".into()]),
            );
        })
        .expect_err("bad caller");
        assert!(bad.to_string().contains("not an IP address"), "{bad}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = Config::from_toml("[mqtt]\nkeep_alive = \"soon\"\n", "bad").expect_err("type");
        assert!(e.to_string().contains("keep_alive"), "{e}");
    }
}
