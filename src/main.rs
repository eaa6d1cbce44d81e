//! `ismf`: the command-line face of ISMF Edge. Parses arguments, calls into the library and maps
//! errors to exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

use clap::{Args, Parser, Subcommand};
use ismf::classify::Classifier;
use ismf::config::Config;
use ismf::logging::{self, LogFormat};
use ismf::model::{Model, Precision};
use ismf::preprocess::PreprocessParams;
use ismf::publish::message::ModelInfo;
use ismf::publish::mqtt::Publisher;
use ismf::publish::outbox::MessageKind;
use ismf::simulate::{
    self, DistractorRates, ExportMode, Layout, Site, StudyOptions, TumourClass, Vendor,
};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `println!` for results on stdout. When the reader has gone (`ismf classify --json | head`)
/// the process ends quietly with success, as Unix tools do, instead of panicking; anything
/// submitted for publishing is already in the durable outbox.
macro_rules! say {
    ($($arg:tt)*) => {
        write_stdout(format_args!($($arg)*))
    };
}

fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("ismf: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// mimalloc with a ceiling on single allocations; why both, in `ismf::alloc`.
#[global_allocator]
static ALLOCATOR: ismf::alloc::BoundedAllocator = ismf::alloc::BoundedAllocator;

#[derive(Parser)]
#[command(
    name = "ismf",
    version,
    about = "ISMF Edge: intraspinal tumour classification beside the MRI scanner (not for diagnostic use)"
)]
struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write synthetic spine MRI studies as DICOM files plus truth.jsonl.
    Simulate(SimulateArgs),
    /// Report studies, series, identified sequences with reasons, completeness and problems.
    Inspect {
        /// A DICOM file or a folder (searched recursively).
        path: PathBuf,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Training tensors: simulated studies through ingest and preprocessing, as .npy files.
    Dataset(DatasetArgs),
    /// Classify the study (or studies) in a folder: ingest, preprocessing and the model.
    Classify(ClassifyArgs),
    /// Classify every study listed in DIR/truth.jsonl and score the predictions.
    Eval(EvalArgs),
    /// Benchmarks (results go to BENCHMARKS.md). Without a subcommand: model-only latency of
    /// tract on a simulated study's inputs.
    Bench(BenchArgs),
    /// The appliance daemon: watch the export folder, classify each complete study, publish.
    /// SIGTERM or SIGINT stop it cleanly (exit 0).
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// The whole appliance with nothing to set up: an embedded MQTT broker, the simulator
    /// exporting studies in real time, the daemon, and a subscriber printing each prediction
    /// beside the truth. Ctrl-C stops it.
    Demo(ismf::demo::DemoOptions),
    /// The ONNX-export bridge: write the graph the appliance runs as fp32 and fp16 ONNX (static
    /// shapes, batch norm folded, the card's input names; float32 inputs and outputs) with a
    /// contract.json, for TensorRT (`trtexec --onnx`) or onnxruntime-gpu.
    ExportOnnx {
        /// The model card whose f32 file is exported (checked against its sha256 first).
        #[arg(long, default_value = "models/model-card.json")]
        card: PathBuf,
        /// Output folder (created when missing; existing files of the same names are replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Reading-room subscriber: print appliance status, predictions and events as they arrive.
    Subscribe(SubscribeArgs),
    /// The appliance configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Decode one DICOM file's pixels (after the modality LUT) into a float32 .npy
    /// of shape [frames, rows, cols].
    Decode {
        file: PathBuf,
        #[arg(long)]
        npy: PathBuf,
        /// Refuse images with more voxels than this.
        #[arg(long, default_value_t = ismf::pixels::DEFAULT_MAX_VOXELS)]
        max_voxels: u64,
    },
}

/// Which model runs, and how.
#[derive(Args, Clone)]
struct ModelArgs {
    /// The model card (its files are found beside it).
    #[arg(long, default_value = "models/model-card.json")]
    card: PathBuf,
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Threads for tract's matrix products.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where tract runs the model: cpu, cuda (a build with `--features cuda` and a usable CUDA
    /// installation; fails naming what is missing), or auto (CUDA when usable, else the CPU).
    #[arg(long, value_enum, default_value = "cpu")]
    backend: ismf::model::Backend,
}

impl ModelArgs {
    fn load(&self) -> Result<Model, (anyhow::Error, u8)> {
        if self.threads == 0 {
            return Err((anyhow::anyhow!("--threads must be at least 1"), 2));
        }
        ismf::model::set_threads(self.threads);
        Model::load_on(
            &self.card,
            self.precision,
            &PreprocessParams::default(),
            self.backend,
        )
        .map_err(|e| (e.into(), 1))
    }
}

#[derive(Args)]
struct ClassifyArgs {
    /// A folder holding one study's DICOM files (searched recursively).
    study_dir: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Print the prediction message exactly as it is published on MQTT (one JSON object per
    /// line and study).
    #[arg(long)]
    json: bool,
    /// Publish each prediction through the durable outbox and MQTT (settings from --config),
    /// and wait for the broker's acknowledgement (exit 1 if it does not come in time).
    #[arg(long, requires = "config")]
    publish: bool,
    /// Appliance configuration (TOML): appliance id, PHI policy, MQTT, state folder.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct SubscribeArgs {
    /// mqtt://host:port or mqtts://host:port.
    #[arg(long)]
    broker: String,
    /// Only this appliance (default: every appliance under the prefix).
    #[arg(long)]
    appliance: Option<String>,
    #[arg(long, default_value = "ismf")]
    topic_prefix: String,
    /// One JSON object per line: {"topic", "kind", "retained", "message"}.
    #[arg(long)]
    json: bool,
    /// Keep a broker session under --client-id: predictions published while this subscriber is
    /// away are delivered when it returns.
    #[arg(long, requires = "client_id")]
    persistent: bool,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the broker's certificate (mqtts://).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the embedded default configuration (every key commented).
    PrintDefault,
    /// Check a configuration file; lists every problem (exit 2 if any).
    Check { file: PathBuf },
}

#[derive(Args)]
struct EvalArgs {
    /// A folder written by `ismf simulate` (DICOM files and truth.jsonl).
    dir: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    model: ModelArgs,
    /// Timed runs after the warm-up.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Print where tract spends a study: time per node and per operator, largest first.
    #[arg(long)]
    profile: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DatasetArgs {
    /// Output folder for the .npy files, studies.jsonl and dataset.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    studies: usize,
    #[command(flatten)]
    study: StudyArgs,
    /// Folder for each study's DICOM files while it is processed (default: /dev/shm).
    #[arg(long)]
    scratch: Option<PathBuf>,
}

fn dataset(args: DatasetArgs) -> Result<(), (anyhow::Error, u8)> {
    use ismf::dataset::{self, DatasetError, DatasetOptions};
    let opts = DatasetOptions {
        out: args.out,
        studies: args.studies,
        study: args.study.options(DistractorRates::default()),
        scratch: args.scratch.unwrap_or_else(dataset::default_scratch),
        progress: std::io::stderr().is_terminal(),
    };
    let summary = dataset::run(&opts).map_err(|e| {
        let code = if matches!(e, DatasetError::InvalidOption(_)) {
            2
        } else {
            1
        };
        (anyhow::Error::new(e), code)
    })?;
    tracing::info!(
        studies = summary.studies,
        seconds = format!("{:.1}", summary.seconds),
        studies_per_second = format!("{:.2}", summary.studies as f64 / summary.seconds.max(1e-9)),
        out = %opts.out.display(),
        "dataset written"
    );
    Ok(())
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Decode + preprocess the first complete study under DIR, REPEAT times; print seconds per
    /// run and the peak resident memory.
    Preprocess {
        dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Read the header of every file under DIR; print the time and files per second.
    Headers { dir: PathBuf },
    /// Publishing cost against a running broker: submit → PUBACK latency of single messages,
    /// back-to-back throughput, and the durable outbox alone (benches/mqtt_publish.sh starts
    /// a mosquitto for it).
    Mqtt {
        /// mqtt://host:port (plain; TLS cost is the broker's and the network's).
        #[arg(long)]
        broker: String,
        #[arg(long, default_value_t = 500)]
        latency_messages: usize,
        #[arg(long, default_value_t = 2000)]
        throughput_messages: usize,
        #[arg(long)]
        json: bool,
    },
}

fn load_config(path: &std::path::Path) -> Result<Config, (anyhow::Error, u8)> {
    Config::load(path).map_err(|e| (e.into(), 2))
}

fn runtime() -> Result<tokio::runtime::Runtime, (anyhow::Error, u8)> {
    ismf::publish::edge_runtime()
        .map_err(|e| (anyhow::anyhow!("cannot start the async runtime: {e}"), 1))
}

fn classify(args: ClassifyArgs) -> Result<(), (anyhow::Error, u8)> {
    let config = args.config.as_deref().map(load_config).transpose()?;
    let mut classifier = Classifier::new(args.model.load()?, PreprocessParams::default());
    if let Some(c) = &config {
        classifier.appliance_id = c.appliance.id.clone();
        classifier.phi = c.mqtt.phi;
    }
    // With --publish: the outbox and the publisher run on a small tokio runtime beside the
    // synchronous classification.
    let rt = if args.publish { Some(runtime()?) } else { None };
    let publisher = match (&rt, &config) {
        (Some(rt), Some(c)) => {
            let _enter = rt.enter();
            let model = Some(ModelInfo::of(&classifier.model));
            Some(Publisher::from_config(c, model).map_err(|e| (e.into(), 1))?)
        }
        _ => None,
    };
    let mut failed = 0;
    let mut refused: Option<anyhow::Error> = None;
    let result = classifier
        .classify_dir_each(&args.study_dir, |study| match study {
            Ok(p) => {
                if args.json {
                    say!("{}", serde_json::to_string(&p).unwrap_or_default());
                } else {
                    say!("{}", ismf::classify::render_text(&p));
                }
                if let Some(publisher) = &publisher {
                    if let Err(e) =
                        publisher.submit_json(MessageKind::Prediction, &p, &p.model.sha256)
                    {
                        failed += 1;
                        refused.get_or_insert(e.into());
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e}", args.study_dir.display());
            }
        })
        .map_err(|e| (e.into(), 1))?;
    for p in &result.problems {
        tracing::warn!(file = %p.path.display(), "{}", p.problem);
    }
    if let (Some(rt), Some(publisher), Some(c)) = (rt, publisher, &config) {
        let drained = rt.block_on(publisher.drain(Duration::from_secs(c.mqtt.ack_timeout)));
        let stats = publisher.stats();
        rt.block_on(publisher.shutdown(Duration::from_secs(2)));
        drained.map_err(|e| (e.into(), 1))?;
        tracing::info!(acknowledged = stats.acknowledged, "predictions published");
    }
    if let Some(e) = refused {
        return Err((e.context("a prediction could not be queued for MQTT"), 1));
    }
    if failed > 0 {
        return Err((anyhow::anyhow!("{failed} study(ies) not classified"), 1));
    }
    Ok(())
}

fn subscribe(args: SubscribeArgs) -> Result<(), (anyhow::Error, u8)> {
    use ismf::publish::subscribe::{self, SubscribeOptions};
    let opts = SubscribeOptions {
        url: args.broker,
        topic_prefix: args.topic_prefix,
        appliance: args.appliance,
        client_id: args.client_id,
        username: args.username,
        password_file: args.password_file,
        ca_file: args.ca_file,
        client_cert_file: args.cert_file,
        client_key_file: args.key_file,
        persistent: args.persistent,
    };
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
        );
        tokio::select! {
            r = run => r.map_err(|e| (e.into(), 1)),
            _ = stop => Ok(()),
        }
    })
}

fn config_command(command: ConfigCommand) -> Result<(), (anyhow::Error, u8)> {
    match command {
        ConfigCommand::PrintDefault => {
            print!("{}", ismf::config::DEFAULT_TOML);
            Ok(())
        }
        ConfigCommand::Check { file } => {
            load_config(&file)?;
            say!("{}: ok", file.display());
            Ok(())
        }
    }
}

fn eval(args: EvalArgs) -> Result<(), (anyhow::Error, u8)> {
    let classifier = Classifier::new(args.model.load()?, PreprocessParams::default());
    let report = ismf::eval::evaluate_dir(&classifier, &args.dir, std::io::stderr().is_terminal())
        .map_err(|e| (e.into(), 1))?;
    if args.json {
        say!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        let s = &report.scores;
        say!(
            "{} studies ({} precision): micro-accuracy {:.3} (95 % CI {:.3}-{:.3}); simulated studies, not clinical accuracy",
            s.n, report.precision, s.micro_accuracy, s.ci95[0], s.ci95[1]
        );
        say!("class  precision recall f1    support");
        for (i, c) in ismf::model::CLASSES.iter().enumerate() {
            let k = &s.per_class[*c];
            say!(
                "{c:<6} {:.3}     {:.3}  {:.3} {:>4}   confusion {:?}",
                k.precision,
                k.recall,
                k.f1,
                k.support,
                s.confusion[i]
            );
        }
        for f in &report.failed {
            say!("not classified: {}: {}", f.study_instance_uid, f.reason);
        }
    }
    Ok(())
}

fn bench(args: BenchArgs) -> Result<(), (anyhow::Error, u8)> {
    use ismf::bench;
    let Some(cmd) = args.command else {
        if args.runs == 0 {
            return Err((anyhow::anyhow!("--runs must be at least 1"), 2));
        }
        let started = std::time::Instant::now();
        let model = args.model.load()?;
        let load_ms = started.elapsed().as_secs_f64() * 1e3;
        if args.profile {
            let nodes = bench::model_profile(&model, args.runs).map_err(|e| (e.into(), 1))?;
            if args.json {
                say!("{}", serde_json::to_string(&nodes).unwrap_or_default());
            } else {
                print!("{}", bench::render_profile(&nodes));
            }
            return Ok(());
        }
        let r = bench::model_latency(&model, args.model.threads, args.runs, load_ms)
            .map_err(|e| (e.into(), 1))?;
        if args.json {
            say!("{}", serde_json::to_string(&r).unwrap_or_default());
        } else {
            say!(
                "tract {} on {} threads {}: median {:.2} ms, p90 {:.2} ms over {} runs; load {:.0} ms; peak RSS {:.0} MiB",
                model.precision(),
                model.backend(),
                args.model.threads,
                r.median_ms,
                r.p90_ms,
                args.runs,
                load_ms,
                r.peak_rss_mib
            );
        }
        return Ok(());
    };
    match cmd {
        BenchCommand::Preprocess { dir, repeat } => {
            let runs = bench::preprocess_runs(&dir, repeat).map_err(|e| (e.into(), 1))?;
            for r in &runs {
                say!("{r:.4}");
            }
            say!(
                "peak_rss_mib {:.1}",
                bench::peak_rss_mib().unwrap_or(f64::NAN)
            );
        }
        BenchCommand::Mqtt {
            broker,
            latency_messages,
            throughput_messages,
            json,
        } => {
            let dir = tempfile_dir().map_err(|e| (e, 1))?;
            let r = bench::mqtt_publish(&broker, latency_messages, throughput_messages, &dir);
            let _ = std::fs::remove_dir_all(&dir);
            let r = r.map_err(|e| (e.into(), 1))?;
            if json {
                say!("{}", serde_json::to_string(&r).unwrap_or_default());
            } else {
                say!(
                    "payload {} B | submit→PUBACK over {} messages: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | back to back: {:.0} messages/s over {} | outbox alone: {:.0} commits/s",
                    r.payload_bytes,
                    r.latency_messages,
                    r.latency_p50_ms,
                    r.latency_p99_ms,
                    r.latency_max_ms,
                    r.throughput_per_second,
                    r.throughput_messages,
                    r.outbox_pushes_per_second
                );
            }
        }
        BenchCommand::Headers { dir } => {
            let (secs, n) = bench::header_scan(&dir).map_err(|e| (e.into(), 1))?;
            say!(
                "files {n} seconds {secs:.3} files_per_second {:.0}",
                n as f64 / secs.max(1e-9)
            );
        }
    }
    Ok(())
}

/// A fresh folder under the system temp dir for a benchmark's files.
fn tempfile_dir() -> Result<PathBuf, anyhow::Error> {
    let dir = std::env::temp_dir().join(format!("ismf-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn decode(file: PathBuf, npy: PathBuf, max_voxels: u64) -> Result<(), (anyhow::Error, u8)> {
    let volume = ismf::pixels::decode_file(&file, max_voxels).map_err(|e| (e.into(), 1))?;
    ismf::pixels::write_npy(&npy, &volume)
        .map_err(|e| (anyhow::anyhow!("{}: cannot write: {e}", npy.display()), 1))?;
    tracing::info!(file = %file.display(), frames = volume.frames, rows = volume.rows, columns = volume.columns, "decoded");
    Ok(())
}

fn inspect(path: PathBuf, json: bool) -> Result<(), (anyhow::Error, u8)> {
    let report = ismf::inspect::inspect(&path, &ismf::series::Rules::default())
        .map_err(|e| (e.into(), 2))?;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| (e.into(), 1))?;
        say!("{text}");
    } else {
        print!("{}", ismf::inspect::render_text(&report));
    }
    Ok(())
}

/// What decides which studies are generated; shared by `simulate` and `dataset`.
#[derive(Args)]
struct StudyArgs {
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
    fn options(self, distractors: DistractorRates) -> StudyOptions {
        StudyOptions {
            seed: self.seed,
            site: self.site,
            classes: self.class,
            vendor: self.vendor,
            distractors,
        }
    }
}

#[derive(Args)]
struct SimulateArgs {
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Number of studies.
    #[arg(long, default_value_t = 1)]
    studies: usize,
    #[command(flatten)]
    study: StudyArgs,
    /// instant writes everything at once; realtime trickles files like a scanner export.
    #[arg(long, value_enum, default_value = "instant")]
    mode: ExportMode,
    /// Folder layout of the DICOM files.
    #[arg(long, value_enum, default_value = "flat")]
    layout: Layout,
    /// Write a PNG montage (mid-sagittal T1W/T2W/T2FS and the axial T2W through the lesion).
    #[arg(long)]
    preview: Option<PathBuf>,
    /// Distractor series rates over the defaults, e.g. "none", "all" or
    /// "localizer=0.9,stir=0.25,ax_t1=0.3,post_contrast=0.5,dwi=0.2".
    #[arg(long, default_value = "")]
    distractors: DistractorRates,
    /// Realtime mode only: divide the export delays by this factor.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Write the ground truth here instead of OUT/truth.jsonl (when OUT is a watched folder).
    #[arg(long)]
    truth: Option<PathBuf>,
}

fn simulate(args: SimulateArgs) -> Result<(), simulate::SimulateError> {
    let opts = simulate::SimulateOptions {
        out: args.out,
        studies: args.studies,
        study: args.study.options(args.distractors),
        mode: args.mode,
        layout: args.layout,
        preview: args.preview,
        speed: args.speed,
        progress: std::io::stderr().is_terminal(),
        truth: args.truth,
    };
    let summary = simulate::run(&opts)?;
    tracing::info!(
        studies = summary.studies,
        files = summary.files,
        megabytes = summary.bytes as f64 / 1e6,
        seconds = format!("{:.1}", summary.seconds),
        studies_per_second = format!("{:.2}", summary.studies_per_second()),
        out = %opts.out.display(),
        "simulation finished"
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its story on stdout; the embedded broker logs ordinary disconnects as errors.
    let quiet = if matches!(cli.command, Command::Demo(_)) {
        "warn,rumqttd=off"
    } else {
        "info"
    };
    logging::init_with(cli.verbose, cli.log_format, quiet);
    let result = match cli.command {
        Command::Simulate(args) => simulate(args).map_err(|e| {
            let code = if e.is_usage() { 2 } else { 1 };
            (anyhow::Error::new(e), code)
        }),
        Command::Inspect { path, json } => inspect(path, json),
        Command::Decode {
            file,
            npy,
            max_voxels,
        } => decode(file, npy, max_voxels),
        Command::Bench(args) => bench(args),
        Command::Classify(args) => classify(args),
        Command::Eval(args) => eval(args),
        Command::Dataset(args) => dataset(args),
        Command::Subscribe(args) => subscribe(args),
        Command::Demo(opts) => {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            ismf::demo::run(&opts, stop)
                .map(|_| ())
                .map_err(|e| (e.into(), 1))
        }
        Command::Run { config } => load_config(&config).and_then(|c| {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            ismf::pipeline::run(&c, stop)
                .map(|_| ())
                .map_err(|e| (e.into(), 1))
        }),
        Command::Config(command) => config_command(command),
        Command::ExportOnnx { card, out } => ismf::model::export_onnx(&card, &out)
            .map(|export| {
                for f in &export.files {
                    say!("{} {} sha256 {}", f.precision, f.path.display(), f.sha256);
                }
                say!("contract {}", export.contract.display());
            })
            .map_err(|e| (e.into(), 1)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((e, code)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}
