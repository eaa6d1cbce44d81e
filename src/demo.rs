//! `ismf demo`: the whole appliance in one command, with nothing to set up — an embedded MQTT
//! broker (rumqttd) on loopback, the simulator exporting studies in real time into a watched
//! folder, the daemon ([`crate::pipeline`]) classifying and publishing them, and a reading-room
//! subscriber printing each prediction beside the simulator's truth.

use crate::config::Config;
use crate::pipeline::{self, PipelineError, Shutdown};
use crate::publish::message::Prediction;
use crate::publish::subscribe::{self, SubscribeOptions};
use crate::publish::url::BrokerUrl;
use crate::simulate::{self, ExportMode, Layout, SimulateOptions, StudyOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo folder {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("embedded broker: {0}")]
    Broker(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Simulate(#[from] simulate::SimulateError),
    #[error("cannot start a demo thread")]
    Thread(#[source] std::io::Error),
}

/// `ismf demo`'s options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub studies: usize,
    pub seed: u64,
    /// Realtime export speed-up (1 = a scanner's pace).
    pub speed: f64,
    /// Keep the folders (scanner export, state, quarantine, truth) here instead of a temporary
    /// folder removed at the end.
    pub keep: Option<PathBuf>,
    /// Use this broker instead of the embedded one.
    pub broker: Option<BrokerUrl>,
    /// The model card.
    pub card: PathBuf,
    pub via: Via,
}

/// How the simulated scanner hands its studies to the appliance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// Realtime export into the watched folder.
    Folder,
    /// C-STORE to the appliance's DICOM receiver (AE `ISMF`), as a scanner's DICOM node does.
    Dicom,
}

/// The calling AE title of the demo's simulated scanner.
const SCANNER_AE: &str = "SIMSCANNER";

/// What the demo saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemoSummary {
    pub studies: usize,
    pub predicted: usize,
    pub correct: usize,
    pub folder: Option<PathBuf>,
}

fn free_port() -> Result<u16, DemoError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DemoError::Broker(format!("no free loopback port: {e}")))
}

/// Starts rumqttd (MQTT 5 listener) on a loopback port in a background thread.
fn embedded_broker() -> Result<BrokerUrl, DemoError> {
    let port = free_port()?;
    let text = format!(
        r#"id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10

[v5.1]
name = "demo"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 262144
    max_inflight_count = 100
    dynamic_filters = true
"#
    );
    let config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| DemoError::Broker(e.to_string()))?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(|e| DemoError::Broker(e.to_string()))?;
    // No readiness probe (rumqttd logs a bare TCP connect as a failed client): the publisher
    // and the subscriber retry until it listens.
    Ok(BrokerUrl {
        tls: false,
        host: "127.0.0.1".into(),
        port,
    })
}

/// The simulated scanner's DICOM node: files ready in `out` (the folder watcher finds them) are
/// sent to `peer` by C-STORE, a batch per association, until `shutdown`; a refused or failed
/// batch is retried (the appliance may still be loading its model).
fn forward_by_dicom(
    out: &std::path::Path,
    peer: crate::network::scu::Peer,
    rt: &tokio::runtime::Handle,
    shutdown: &Shutdown,
) -> Result<std::thread::JoinHandle<()>, DemoError> {
    use crate::network::scu::{self, Outgoing};
    let (tx, rx) = std::sync::mpsc::sync_channel::<PathBuf>(1024);
    let mut w = crate::ingest::watch::WatchConfig::new(out.to_path_buf());
    w.rescan = Duration::from_secs(2);
    let watcher =
        crate::ingest::watch::spawn(w, tx).map_err(|e| DemoError::Broker(e.to_string()))?;
    let rt = rt.clone();
    let shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name("dicom-node".into())
        .spawn(move || {
            let mut batch: Vec<Outgoing> = Vec::new();
            while !shutdown.is_requested() {
                match rx.recv_timeout(Duration::from_millis(300)) {
                    Ok(path) => {
                        if let Ok(o) = Outgoing::of(&path) {
                            batch.push(o);
                        }
                        if batch.len() < 64 {
                            continue;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if batch.is_empty() {
                    continue;
                }
                match rt.block_on(scu::store(&peer, &batch)) {
                    Ok(outcomes) => {
                        let retry: Vec<Outgoing> = batch
                            .drain(..)
                            .zip(outcomes)
                            .filter(|(_, o)| !matches!(o, Ok(c) if crate::network::dimse::status::is_stored(*c)))
                            .map(|(f, _)| f)
                            .collect();
                        batch = retry;
                    }
                    Err(e) => {
                        tracing::debug!(error = %crate::logging::Chain(&e), "scanner: send failed; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
            watcher.stop();
        })
        .map_err(DemoError::Thread)
}

/// Runs the demo until every study is predicted, or `shutdown` is requested (Ctrl-C). The
/// appliance's publisher and the reading-room subscriber run on `rt`.
pub fn run(
    opts: &DemoOptions,
    rt: &tokio::runtime::Handle,
    shutdown: &Shutdown,
) -> Result<DemoSummary, DemoError> {
    let root = match &opts.keep {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("ismf-demo-{}", std::process::id())),
    };
    let io = |source| DemoError::Io {
        path: root.clone(),
        source,
    };
    std::fs::create_dir_all(&root).map_err(io)?;
    let url = match &opts.broker {
        Some(u) => u.clone(),
        None => embedded_broker()?,
    };
    let mut config = Config::default_config();
    config.appliance.id = "demo".into();
    config.ingest.watch_dir = root.join("scanner-export");
    config.ingest.state_dir = root.join("state");
    config.ingest.quarantine_dir = root.join("quarantine");
    config.ingest.stable = Duration::from_secs(3);
    config.ingest.force_after = Duration::from_secs(60);
    config.ingest.rescan = Duration::from_secs(2);
    config.mqtt.url = url.clone();
    config.mqtt.client_id = "ismf-demo".into();
    config.mqtt.heartbeat = Duration::from_secs(10);
    config.model.card = opts.card.clone();
    std::fs::create_dir_all(&config.ingest.watch_dir).map_err(io)?;
    // By DICOM the simulator exports into a folder of its own, and a sender forwards each file
    // as it is written (the scanner's DICOM node).
    let scanner_out = match opts.via {
        Via::Folder => config.ingest.watch_dir.clone(),
        Via::Dicom => {
            let port = free_port()?;
            config.dicom.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
            config.dicom.allowed_callers = vec![crate::network::scp::Caller {
                ae_title: SCANNER_AE.into(),
                host: Some(std::net::Ipv4Addr::LOCALHOST.into()),
            }];
            let out = root.join("scanner");
            std::fs::create_dir_all(&out).map_err(io)?;
            out
        }
    };

    let study_opts = StudyOptions {
        seed: opts.seed,
        site: simulate::Site::Internal,
        classes: simulate::TumourClass::ALL.to_vec(),
        vendor: None,
        distractors: Default::default(),
    };
    // The simulator writes each study's truth line before its last file, so it is there when
    // the prediction arrives.
    let truth_path = root.join("truth.jsonl");
    let truth_of = |uid: &str| -> String {
        crate::eval::read_truth(&root)
            .unwrap_or_default()
            .into_iter()
            .find(|(u, _)| u == uid)
            .map(|(_, class)| crate::model::CLASSES[class].to_string())
            .unwrap_or_else(|| "?".into())
    };

    println!("ISMF Edge demo — simulated studies only, NOT FOR DIAGNOSTIC USE");
    println!(
        "  broker   {url}{}",
        if opts.broker.is_none() {
            " (embedded rumqttd)"
        } else {
            ""
        }
    );
    match config.dicom.listen {
        Some(listen) => println!(
            "  scanner  C-STORE as {SCANNER_AE} to {}@{listen} (realtime, {}× speed)",
            config.dicom.ae_title, opts.speed
        ),
        None => println!(
            "  scanner  {} (realtime export, {}× speed)",
            config.ingest.watch_dir.display(),
            opts.speed
        ),
    }
    println!("  studies  {}, one per class in turn\n", opts.studies);

    // The appliance; if it stops on its own (a missing model card, say) the demo ends too.
    let appliance_ended = Arc::new(AtomicBool::new(false));
    let appliance = {
        let config = config.clone();
        let shutdown = shutdown.clone();
        let ended = appliance_ended.clone();
        let rt = rt.clone();
        std::thread::Builder::new()
            .name("appliance".into())
            .spawn(move || {
                let r = pipeline::run(&config, &rt, &shutdown);
                ended.store(true, Ordering::SeqCst);
                r
            })
            .map_err(DemoError::Thread)?
    };
    // The scanner.
    let scanner = {
        let sim = SimulateOptions {
            out: scanner_out.clone(),
            studies: opts.studies,
            study: study_opts,
            mode: ExportMode::Realtime,
            layout: Layout::Flat,
            preview: None,
            speed: opts.speed,
            progress: false,
            truth: Some(truth_path.clone()),
        };
        std::thread::Builder::new()
            .name("scanner".into())
            .spawn(move || simulate::run(&sim))
            .map_err(DemoError::Thread)?
    };
    let forwarder = match config.dicom.listen {
        Some(listen) => Some(forward_by_dicom(
            &scanner_out,
            crate::network::scu::Peer {
                host: listen.ip().to_string(),
                port: listen.port(),
                called_ae: config.dicom.ae_title.clone(),
                calling_ae: SCANNER_AE.into(),
                timeout: Duration::from_secs(30),
                max_pdu: 65536,
                tls: None,
            },
            rt,
            shutdown,
        )?),
        None => None,
    };
    // The reading room.
    let seen = Arc::new(Mutex::new(DemoSummary {
        studies: opts.studies,
        ..Default::default()
    }));
    let sub_opts = SubscribeOptions {
        url,
        topic_prefix: config.mqtt.topic_prefix.clone(),
        appliance: Some(config.appliance.id.clone()),
        client_id: None,
        username: None,
        password_file: None,
        ca_file: None,
        client_cert_file: None,
        client_key_file: None,
        persistent: false,
    };
    let started = Instant::now();
    {
        let seen = seen.clone();
        rt.block_on(async move {
            let watch_stop = async {
                while !shutdown.is_requested() && !appliance_ended.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let listen = subscribe::run(
                &sub_opts,
                |r| {
                    if r.kind == "event" {
                        println!("  event: {}", subscribe::render_text(&r));
                        return true;
                    }
                    if r.kind != "prediction" {
                        return true;
                    }
                    let Ok(p) = serde_json::from_value::<Prediction>(r.message) else {
                        return true;
                    };
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    s.predicted += 1;
                    let want = truth_of(&p.study_instance_uid);
                    let ok = want == p.top_class;
                    s.correct += usize::from(ok);
                    let top = serde_json::to_value(p.probabilities)
                        .ok()
                        .and_then(|v| v[&p.top_class].as_f64())
                        .unwrap_or(f64::NAN);
                    println!(
                        "  [{:>5.1} s] study {}/{}  truth {want}  predicted {} ({top:.2})  {}  {:.0} ms in the appliance",
                        started.elapsed().as_secs_f64(),
                        s.predicted,
                        s.studies,
                        p.top_class,
                        if ok { "✓" } else { "✗" },
                        p.timings.total_ms
                    );
                    s.predicted < s.studies
                },
                |e| tracing::debug!(error = %e, "subscriber retrying"),
                || {},
            );
            tokio::select! {
                _ = listen => {}
                _ = watch_stop => {}
            }
        });
    }
    let finished = {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        s.predicted >= s.studies
    };
    shutdown.request();
    if finished {
        let _ = scanner.join();
    }
    if let Some(f) = forwarder {
        let _ = f.join();
    }
    let result = appliance
        .join()
        .unwrap_or_else(|_| Ok(pipeline::RunSummary::default()));
    let mut summary = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    result?;
    println!(
        "\n{} of {} studies predicted, {} correct ({:.0} %) — simulator figures, not clinical accuracy.",
        summary.predicted,
        summary.studies,
        summary.correct,
        100.0 * summary.correct as f64 / summary.predicted.max(1) as f64
    );
    if opts.keep.is_some() {
        println!("Folders kept in {}.", root.display());
        summary.folder = Some(root);
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(summary)
}
