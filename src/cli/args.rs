//! Arguments several commands share, and the parser for the library's named choices (the
//! library implements `FromStr` and knows no clap).

use clap::builder::{PossibleValuesParser, TypedValueParser};
use ismf::model::{Backend, Model, Precision};
use ismf::preprocess::PreprocessParams;
use ismf::simulate::{DistractorRates, Site, StudyOptions, TumourClass, Vendor};
use std::path::PathBuf;
use std::str::FromStr;

/// A mistake in what was asked for (exit code 2), with its message.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct UsageError(pub anyhow::Error);

pub(crate) fn usage(e: impl Into<anyhow::Error>) -> anyhow::Error {
    UsageError(e.into()).into()
}

/// One of a library enum's words (its `NAMES`, listed in `--help`), parsed by its `FromStr`.
pub fn choice<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    PossibleValuesParser::new(names).try_map(|s| s.parse::<T>().map_err(|e| e.to_string()))
}

/// `--log-format`: the library's [`ismf::logging::LogFormat`].
#[derive(Clone, Copy)]
pub struct LogFormatArg(pub ismf::logging::LogFormat);

impl FromStr for LogFormatArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(LogFormatArg)
    }
}

/// Which model runs, and how.
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// The model card (its files are found beside it). Default: $ISMF_MODEL_CARD, then
    /// /opt/ismf/models/model-card.json, then models/model-card.json.
    #[arg(long)]
    pub card: Option<PathBuf>,
    #[arg(long, default_value = "f32", value_parser = choice::<Precision>(Precision::NAMES))]
    pub precision: Precision,
    /// Threads for tract's matrix products.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Where tract runs the model: cpu, cuda (a build with `--features cuda` and a usable CUDA
    /// installation; fails naming what is missing), or auto (CUDA when usable, else the CPU).
    #[arg(long, default_value = "cpu", value_parser = choice::<Backend>(Backend::NAMES))]
    pub backend: Backend,
}

impl ModelArgs {
    pub fn load(&self) -> anyhow::Result<Model> {
        if self.threads == 0 {
            return Err(usage(anyhow::anyhow!("--threads must be at least 1")));
        }
        ismf::model::set_threads(self.threads);
        let card = ismf::model::locate_card(self.card.as_deref())?;
        Ok(Model::load_on(
            &card,
            self.precision,
            &PreprocessParams::default(),
            self.backend,
        )?)
    }
}

/// What decides which studies are generated; shared by `simulate` and `dataset`.
#[derive(clap::Args)]
pub struct StudyArgs {
    /// Random seed; the same arguments and seed give identical studies.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Acquisition site: internal or external (a distribution shift).
    #[arg(long, default_value = "internal")]
    site: Site,
    /// Tumour class(es): SCN, MNG, AST, EPN, MET; a comma list cycles through them.
    /// Default: the paper's cohort mix.
    #[arg(long, value_delimiter = ',')]
    class: Vec<TumourClass>,
    /// Force one vendor's scanner and header conventions: siemens, ge or philips.
    #[arg(long)]
    vendor: Option<Vendor>,
}

impl StudyArgs {
    pub fn options(self, distractors: DistractorRates) -> StudyOptions {
        StudyOptions {
            seed: self.seed,
            site: self.site,
            classes: self.class,
            vendor: self.vendor,
            distractors,
        }
    }
}

/// A runtime for the async edges (publisher, subscriber, signals).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    ismf::publish::edge_runtime()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

/// A broker URL from the command line.
pub fn broker_url(s: &str) -> Result<ismf::config::BrokerUrl, String> {
    ismf::config::BrokerUrl::parse(s)
}

/// The broker a reading-room command subscribes to, and how it logs in.
#[derive(clap::Args)]
pub struct BrokerArgs {
    /// mqtt://host:port or mqtts://host:port.
    #[arg(long, value_parser = broker_url)]
    pub broker: ismf::config::BrokerUrl,
    #[arg(long, default_value = "ismf")]
    pub topic_prefix: String,
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the broker's certificate (mqtts://).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS to the broker.
    #[arg(long, requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    #[arg(long, requires = "cert_file")]
    pub key_file: Option<PathBuf>,
}

impl BrokerArgs {
    pub fn subscribe_options(
        self,
        appliance: Option<String>,
        client_id: Option<String>,
        persistent: bool,
    ) -> ismf::publish::subscribe::SubscribeOptions {
        ismf::publish::subscribe::SubscribeOptions {
            url: self.broker,
            topic_prefix: self.topic_prefix,
            appliance,
            client_id,
            username: self.username,
            password_file: self.password_file,
            ca_file: self.ca_file,
            client_cert_file: self.cert_file,
            client_key_file: self.key_file,
            persistent,
        }
    }
}
