//! `ismf reading-room`: the web worklist for the reading room (the library's
//! [`ismf::reading_room`]).

use super::args::{runtime, usage};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ReadingRoomArgs {
    /// The site's or the central broker.
    #[command(flatten)]
    broker: super::args::BrokerArgs,
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
}

pub fn reading_room(args: ReadingRoomArgs) -> anyhow::Result<()> {
    use ismf::reading_room::{store::Retention, Options, ReadingRoomError};
    if args.max_predictions == 0 || args.max_events == 0 {
        return Err(usage(anyhow::anyhow!(
            "--max-predictions and --max-events must be at least 1"
        )));
    }
    let opts = Options {
        subscribe: args
            .broker
            .subscribe_options(None, Some(args.client_id), true),
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
    let stop = super::appliance::signalled(&rt)?;
    rt.block_on(ismf::reading_room::serve(opts, stop))
        .map_err(|e| match e {
            ReadingRoomError::TokenRequired(_) | ReadingRoomError::TlsPair => usage(e),
            e => e.into(),
        })
}
