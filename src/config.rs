//! Firmware configuration: TOML → raw serde structs (unknown keys are errors) → a checked
//! [`Config`] whose every problem is listed at once, so an installer fixes a file in one pass.
//!
//! The embedded default is `firmware-config/appliance.toml` ([`DEFAULT_TOML`]); `ismf config
//! print-default` prints it. Relative paths are taken from the working directory (the systemd
//! unit sets one).

pub use crate::model::Backend;
use crate::model::Precision;
use crate::publish::message::PhiPolicy;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The configuration compiled into the binary, every key commented.
pub const DEFAULT_TOML: &str = include_str!("../firmware-config/appliance.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub appliance: ApplianceConfig,
    pub ingest: IngestSection,
    pub mqtt: MqttConfig,
    pub model: ModelSection,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceConfig {
    /// Names this box in MQTT topics and messages.
    pub id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    pub watch_dir: PathBuf,
    /// Catalog journal and MQTT outbox.
    pub state_dir: PathBuf,
    pub quarantine_dir: PathBuf,
    pub stable_seconds: f64,
    pub force_after_seconds: f64,
    pub poll_only: bool,
    pub rescan_seconds: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// Default: `ismf-<appliance id>`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    pub topic_prefix: String,
    /// Seconds.
    pub keep_alive: u64,
    /// Seconds a prediction or event may wait in the broker for an offline subscriber.
    pub message_expiry: u32,
    /// Seconds the broker keeps this client's session after a disconnect.
    pub session_expiry: u32,
    /// Seconds between heartbeats on the status topic.
    pub heartbeat: u64,
    pub phi: PhiPolicy,
    /// Predictions the outbox holds before intake stops.
    pub outbox_capacity: usize,
    /// Seconds `classify --publish` waits for the broker's acknowledgements.
    pub ack_timeout: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub card: PathBuf,
    pub precision: Precision,
    pub threads: usize,
    #[serde(default)]
    pub backend: Backend,
}

/// Broker address parsed from `mqtt.url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "broker url '{url}' must start with mqtt:// or mqtts://"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("broker url '{url}': port '{p}' is not a number"))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("broker url '{url}' has no host"));
        }
        Ok(BrokerUrl {
            tls,
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        })
    }
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

impl Config {
    /// The embedded default.
    /// The embedded default, parsed but not checked: its relative paths (the model card) only
    /// exist from the repository root, and a caller such as `ismf demo` replaces them anyway.
    pub fn default_config() -> Config {
        toml::from_str(DEFAULT_TOML).expect("the embedded default parses")
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

    /// Parses TOML text, applies overrides from `env` — only variables named
    /// `ISMF_<SECTION>_<KEY>` for the sections `appliance`, `ingest`, `mqtt`, `model`; the value
    /// takes the type the file's value has (strings for keys the file leaves out) — and checks.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse = |message: String| ConfigError::Parse {
            origin: origin.to_string(),
            message: message.trim_end().to_string(),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        let mut overridden = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("ISMF_") else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            let Some((section, key)) = ["appliance", "ingest", "mqtt", "model"]
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
            let typed = match section_table.get(key) {
                Some(toml::Value::Boolean(_)) => value.parse().map(toml::Value::Boolean).ok(),
                Some(toml::Value::Integer(_)) => value.parse().map(toml::Value::Integer).ok(),
                Some(toml::Value::Float(_)) => value.parse().map(toml::Value::Float).ok(),
                _ => Some(toml::Value::String(value.clone())),
            }
            .ok_or_else(|| {
                parse(format!(
                    "environment {name}={value:?}: not a value of the type {section}.{key} takes"
                ))
            })?;
            section_table.insert(key.to_string(), typed);
            overridden.push(name);
        }
        if !overridden.is_empty() {
            tracing::info!(overrides = %overridden.join(", "), "configuration overridden from the environment");
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse(e.to_string()))?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Every problem with the values (files are checked for existence, not read).
    pub fn problems(&self) -> Vec<String> {
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
        match BrokerUrl::parse(&m.url) {
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
        if !self.model.card.is_file() {
            p.push(format!(
                "model.card: {} does not exist",
                self.model.card.display()
            ));
        }
        p
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> String {
        self.mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("ismf-{}", self.appliance.id))
    }

    /// Where the MQTT outbox lives.
    pub fn outbox_path(&self) -> PathBuf {
        self.ingest.state_dir.join("outbox.redb")
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
        assert_eq!(c.client_id(), format!("ismf-{}", c.appliance.id));
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
        assert_eq!(c.mqtt.url, "mqtt://broker:1884");
        assert_eq!(c.mqtt.keep_alive, 45);
        assert_eq!(c.ingest.stable_seconds, 12.0);
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
            let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let problems: Vec<String> = config
                .problems()
                .into_iter()
                .filter(|p| !p.ends_with("does not exist"))
                .collect();
            assert!(problems.is_empty(), "{name}: {problems:?}");
        }
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            BrokerUrl::parse("mqtt://localhost:1884"),
            Ok(BrokerUrl {
                tls: false,
                host: "localhost".into(),
                port: 1884
            })
        );
        assert_eq!(
            BrokerUrl::parse("mqtts://b.example").map(|u| u.port),
            Ok(8883)
        );
        assert!(BrokerUrl::parse("tcp://x:1").is_err());
        assert!(BrokerUrl::parse("mqtt://x:port").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
    }
}
