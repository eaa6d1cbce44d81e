//! `ismf reading-room`: the web worklist for the reading room (the library's
//! [`ismf::reading_room`]).

use super::args::{broker_url, runtime, usage};
use ismf::config::BrokerUrl;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ReadingRoomArgs {
    /// mqtt://host:port or mqtts://host:port (the site's or the central broker).
    #[arg(long, value_parser = broker_url)]
    broker: BrokerUrl,
    /// This reading room's MQTT client id: its persistent session on the broker (what is
    /// published while it is down is delivered when it returns). One id per reading room.
    #[arg(long)]
    client_id: String,
    /// Where the page is served. Other than a loopback address it needs --token-file.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The durable store (redb) of predictions, key images, statuses and events.
    #[arg(long, default_value = "ismf-reading-room.redb")]
    store: PathBuf,
    /// Keep at most this many predictions (the oldest go first).
    #[arg(long, default_value_t = 10_000)]
    max_predictions: usize,
    /// Keep no prediction or event older than this (e.g. 30d, 12h).
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    max_age: std::time::Duration,
    /// Keep this many of the newest events.
    #[arg(long, default_value_t = 1000)]
    max_events: usize,
    /// A file holding the access token the page and the API require (at least 16 characters,
    /// e.g. `openssl rand -hex 24`). Open the page once as /?token=<token>.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate (PEM) …
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// … and its private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// An online appliance with no status for this long is shown as "no heartbeat".
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    stale_after: std::time::Duration,
    #[arg(long, default_value = "ismf")]
    topic_prefix: String,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the broker's certificate (mqtts://).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS to the broker.
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
}

pub fn reading_room(args: ReadingRoomArgs) -> anyhow::Result<()> {
    use ismf::publish::subscribe::SubscribeOptions;
    use ismf::reading_room::{store::Retention, Options, ReadingRoomError};
    if args.max_predictions == 0 || args.max_events == 0 {
        return Err(usage(anyhow::anyhow!(
            "--max-predictions and --max-events must be at least 1"
        )));
    }
    let opts = Options {
        subscribe: SubscribeOptions {
            url: args.broker,
            topic_prefix: args.topic_prefix,
            appliance: None,
            client_id: Some(args.client_id),
            username: args.username,
            password_file: args.password_file,
            ca_file: args.ca_file,
            client_cert_file: args.cert_file,
            client_key_file: args.key_file,
            persistent: true,
        },
        listen: args.listen,
        store: args.store,
        retention: Retention {
            max_predictions: args.max_predictions,
            max_age: args.max_age,
            max_events: args.max_events,
        },
        token_file: args.token_file,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        stale_after: args.stale_after,
    };
    let rt = runtime()?;
    rt.block_on(async {
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        ismf::reading_room::serve(opts, stop).await
    })
    .map_err(|e| match e {
        ReadingRoomError::TokenRequired(_) | ReadingRoomError::TlsPair => usage(e),
        e => e.into(),
    })
}
