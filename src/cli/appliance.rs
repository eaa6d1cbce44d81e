//! The appliance and its reading room: `run`, `demo`, `subscribe`, `config`. Signals are
//! handled here, at the edge: SIGTERM (systemd) and SIGINT (Ctrl-C) request the library's
//! [`Shutdown`].

#[cfg(feature = "demo")]
use super::args::broker_url;
use super::args::runtime;
use super::output::{print_stdout, say};
#[cfg(feature = "demo")]
use ismf::config::BrokerUrl;
use ismf::config::Config;
use ismf::pipeline::Shutdown;
use std::path::PathBuf;

/// A future that completes at the first SIGTERM (systemd) or SIGINT (Ctrl-C). Made inside
/// `rt`, so that the SIGTERM handler is installed now, not when the future is first polled.
pub(super) fn signalled(
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = {
        let _enter = rt.enter();
        signal(SignalKind::terminate())
            .map_err(|e| anyhow::anyhow!("cannot install the SIGTERM handler: {e}"))?
    };
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stop requested");
    })
}

/// On `rt`: the first SIGTERM or SIGINT requests `shutdown`.
fn stop_on_signals(rt: &tokio::runtime::Runtime, shutdown: &Shutdown) -> anyhow::Result<()> {
    let stop = signalled(rt)?;
    let shutdown = shutdown.clone();
    rt.spawn(async move {
        stop.await;
        shutdown.request();
    });
    Ok(())
}

pub fn run(config: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config)?;
    let rt = runtime()?;
    let shutdown = Shutdown::new();
    stop_on_signals(&rt, &shutdown)?;
    ismf::pipeline::run(&config, rt.handle(), &shutdown)?;
    Ok(())
}

/// `ismf demo`'s arguments.
#[cfg(feature = "demo")]
#[derive(clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 5)]
    studies: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Realtime export speed-up (1 = a scanner's pace).
    #[arg(long, default_value_t = 10.0)]
    speed: f64,
    /// Keep the folders (scanner export, state, quarantine, truth) here instead of a temporary
    /// folder removed at the end.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Use this broker (mqtt://host:port) instead of the embedded one.
    #[arg(long, value_parser = broker_url)]
    broker: Option<BrokerUrl>,
    /// The model card. Default: $ISMF_MODEL_CARD, then /opt/ismf/models/model-card.json, then
    /// models/model-card.json.
    #[arg(long)]
    card: Option<PathBuf>,
    /// How the simulated scanner hands studies over: by writing the watched export folder, or by
    /// sending them with C-STORE to the appliance's DICOM receiver.
    #[arg(long, value_enum, default_value_t = ismf::demo::Via::Folder)]
    via: ismf::demo::Via,
}

#[cfg(feature = "demo")]
pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let opts = ismf::demo::DemoOptions {
        studies: args.studies,
        seed: args.seed,
        speed: args.speed,
        keep: args.keep,
        broker: args.broker,
        card: ismf::model::locate_card(args.card.as_deref())?,
        via: args.via,
    };
    let rt = runtime()?;
    let shutdown = Shutdown::new();
    stop_on_signals(&rt, &shutdown)?;
    ismf::demo::run(&opts, rt.handle(), &shutdown)?;
    Ok(())
}

#[derive(clap::Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    broker: super::args::BrokerArgs,
    /// Only this appliance (default: every appliance under the prefix).
    #[arg(long)]
    appliance: Option<String>,
    /// One JSON object per line: {"topic", "kind", "retained", "message"}.
    #[arg(long)]
    json: bool,
    /// Keep a broker session under --client-id: predictions published while this subscriber is
    /// away are delivered when it returns.
    #[arg(long, requires = "client_id")]
    persistent: bool,
    #[arg(long)]
    client_id: Option<String>,
}

pub fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    use ismf::publish::subscribe;
    let opts = args
        .broker
        .subscribe_options(args.appliance, args.client_id, args.persistent);
    let json = args.json;
    let rt = runtime()?;
    let mut reported = false;
    rt.block_on(async {
        let stop = tokio::signal::ctrl_c();
        let run = subscribe::run(
            &opts,
            |r| {
                use std::io::Write;
                let line = if json {
                    serde_json::to_string(&r).unwrap_or_default()
                } else {
                    subscribe::render_text(&r)
                };
                let mut out = std::io::stdout().lock();
                // A closed stdout (the reader went away) ends the subscriber.
                writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
            },
            |e| {
                if !reported {
                    tracing::warn!(broker = %opts.url, error = %e, "cannot reach the broker; retrying");
                    reported = true;
                } else {
                    tracing::debug!(error = %e, "retrying");
                }
            },
            || {},
        );
        tokio::select! {
            r = run => r.map_err(anyhow::Error::from),
            _ = stop => Ok(()),
        }
    })
}

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the embedded default configuration (every key commented).
    PrintDefault,
    /// Check a configuration file; lists every problem (exit 2 if any).
    Check { file: PathBuf },
}

pub fn config(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::PrintDefault => print_stdout(ismf::config::DEFAULT_TOML)?,
        ConfigCommand::Check { file } => {
            Config::load(&file)?;
            say!("{}: ok", file.display())?;
        }
    }
    Ok(())
}
