//! Commands that run the model: `classify`, `eval`, `bench`, `export-onnx`.

use super::args::{runtime, usage, ModelArgs};
use super::output::{print_stdout, say};
use ismf::classify::Classifier;
use ismf::config::Config;
use ismf::preprocess::PreprocessParams;
use ismf::publish::message::ModelInfo;
use ismf::publish::mqtt::Publisher;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ClassifyArgs {
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
    /// Write the results into this folder: <study>.sr.dcm (TID 1500 SR), <study>.key-images.dcm
    /// (Secondary Capture), <study>.kos.dcm (Key Object Selection), <study>.key-images.png.
    /// Implies --explain.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Compute the explanation maps (occlusion sensitivity) and report their peaks.
    #[arg(long)]
    explain: bool,
}

pub fn classify(args: ClassifyArgs) -> anyhow::Result<()> {
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let mut classifier = Classifier::new(args.model.load()?, PreprocessParams::default());
    if let Some(c) = &config {
        classifier.appliance_id = c.appliance.id.clone();
        classifier.phi = c.mqtt.phi;
    }
    if args.explain || args.results.is_some() {
        classifier.explain = Some(ismf::explain::Occlusion::default());
    }
    // With --publish: the outbox and the publisher run on a small tokio runtime beside the
    // synchronous classification.
    let rt = if args.publish { Some(runtime()?) } else { None };
    let publisher = match (&rt, &config) {
        (Some(rt), Some(c)) => {
            let model = Some(ModelInfo::of(&classifier.model));
            Some(Publisher::open(c.publisher(model), rt.handle())?)
        }
        _ => None,
    };
    let mut failed = 0;
    let mut refused: Option<anyhow::Error> = None;
    let mut closed: Option<std::io::Error> = None;
    let result = classifier.classify_dir_each_full(&args.study_dir, |study| match study {
        Ok(c) => {
            let mut p = c.prediction.clone();
            let mut png = None;
            if let Some(dir) = &args.results {
                let inputs = ismf::results::ResultInputs::of(&c, classifier.max_voxels);
                match ismf::results::write_results(dir, &inputs) {
                    Ok(w) => {
                        for problem in &w.problems {
                            eprintln!("warning: {problem}");
                        }
                        let topic = publisher
                            .as_ref()
                            .map_or("key-images", |p| p.key_images_topic());
                        p.key_images = w.key_images_ref(topic);
                        png = w.png_bytes.filter(|_| p.key_images.is_some());
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: results: {}", ismf::logging::Chain(&e));
                    }
                }
            }
            if let (Some(publisher), Some(bytes)) = (&publisher, &png) {
                if let Err(e) =
                    publisher.submit_key_images(bytes, &p.prediction_id, &p.model.sha256)
                {
                    failed += 1;
                    refused.get_or_insert(e.into());
                }
            }
            let line = if args.json {
                serde_json::to_string(&p).unwrap_or_default()
            } else {
                ismf::classify::render_text(&p)
            };
            if let Some(publisher) = &publisher {
                if let Err(e) = publisher.submit_prediction(&p, None) {
                    failed += 1;
                    refused.get_or_insert(e.into());
                }
            }
            // A closed stdout ends the run; what was submitted is in the durable outbox.
            match say!("{line}") {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    closed = Some(e);
                    ControlFlow::Break(())
                }
            }
        }
        Err(e) => {
            failed += 1;
            eprintln!(
                "error: {}: {}",
                args.study_dir.display(),
                ismf::logging::Chain(&e)
            );
            ControlFlow::Continue(())
        }
    })?;
    for p in &result.problems {
        tracing::warn!(file = %p.path.display(), "{}", p.problem);
    }
    if let (Some(rt), Some(publisher), Some(c)) = (rt, publisher, &config) {
        let drained = rt.block_on(publisher.drain(c.mqtt.ack_timeout));
        let stats = publisher.stats();
        rt.block_on(publisher.shutdown(Duration::from_secs(2)));
        drained?;
        tracing::info!(acknowledged = stats.acknowledged, "predictions published");
    }
    if let Some(e) = closed {
        return Err(e.into());
    }
    if let Some(e) = refused {
        return Err(e.context("a prediction could not be queued for MQTT"));
    }
    if failed > 0 {
        anyhow::bail!("{failed} study(ies) not classified");
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A folder written by `ismf simulate` (DICOM files and truth.jsonl).
    dir: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    json: bool,
    /// Score the explanation maps instead of the classes: pointing game against the lesion box
    /// in truth.jsonl, a random-peak baseline, and the model-randomisation check.
    #[arg(long)]
    explain: bool,
    /// With --explain: seed of the weight shuffle for the randomisation check (0: skip it).
    #[arg(long, default_value_t = 1)]
    randomise_seed: u64,
    /// With --explain: only the first N studies of truth.jsonl.
    #[arg(long)]
    limit: Option<usize>,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let classifier = Classifier::new(args.model.load()?, PreprocessParams::default());
    if args.explain {
        return eval_explain(&args, &classifier);
    }
    let report = ismf::eval::evaluate_dir(&classifier, &args.dir, std::io::stderr().is_terminal())?;
    if args.json {
        say!("{}", serde_json::to_string(&report)?)?;
    } else {
        print_stdout(&ismf::eval::render_text(&report))?;
    }
    Ok(())
}

fn eval_explain(args: &EvalArgs, classifier: &Classifier) -> anyhow::Result<()> {
    let tmp = tempfile_dir()?;
    let randomised = if args.randomise_seed == 0 {
        None
    } else {
        let card = ismf::model::locate_card(args.model.card.as_deref())?;
        let copy = ismf::model::randomise::write_randomised(&card, &tmp, args.randomise_seed)?;
        Some(ismf::model::Model::load(
            &copy,
            ismf::model::Precision::F32,
            &PreprocessParams::default(),
        )?)
    };
    let report = ismf::explain::pointing::evaluate_dir(
        classifier,
        ismf::explain::Occlusion::default(),
        randomised.as_ref(),
        &args.dir,
        args.limit,
        std::io::stderr().is_terminal(),
    );
    let _ = std::fs::remove_dir_all(&tmp);
    let report = report?;
    if args.json {
        say!("{}", serde_json::to_string(&report)?)?;
    } else {
        print_stdout(&ismf::explain::pointing::render_text(&report))?;
    }
    Ok(())
}

/// A private scratch folder under the system's temporary directory.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ismf-randomised-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
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

#[derive(clap::Subcommand)]
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
        #[arg(long, value_parser = super::args::broker_url)]
        broker: ismf::config::BrokerUrl,
        #[arg(long, default_value_t = 500)]
        latency_messages: usize,
        #[arg(long, default_value_t = 2000)]
        throughput_messages: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    use ismf::bench;
    let Some(cmd) = args.command else {
        if args.runs == 0 {
            return Err(usage(anyhow::anyhow!("--runs must be at least 1")));
        }
        let started = std::time::Instant::now();
        let model = args.model.load()?;
        let load_ms = started.elapsed().as_secs_f64() * 1e3;
        if args.profile {
            let nodes = bench::model_profile(&model, args.runs)?;
            if args.json {
                say!("{}", serde_json::to_string(&nodes)?)?;
            } else {
                print_stdout(&bench::render_profile(&nodes))?;
            }
            return Ok(());
        }
        let r = bench::model_latency(&model, args.model.threads, args.runs, load_ms)?;
        if args.json {
            say!("{}", serde_json::to_string(&r)?)?;
        } else {
            say!("{}", bench::render_latency(&r))?;
        }
        return Ok(());
    };
    match cmd {
        BenchCommand::Preprocess { dir, repeat } => {
            let runs = bench::preprocess_runs(&dir, repeat)?;
            for r in &runs {
                say!("{r:.4}")?;
            }
            say!(
                "peak_rss_mib {:.1}",
                bench::peak_rss_mib().unwrap_or(f64::NAN)
            )?;
        }
        BenchCommand::Mqtt {
            broker,
            latency_messages,
            throughput_messages,
            json,
        } => {
            let dir = std::env::temp_dir().join(format!("ismf-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let r = bench::mqtt_publish(&broker, latency_messages, throughput_messages, &dir);
            let _ = std::fs::remove_dir_all(&dir);
            let r = r?;
            if json {
                say!("{}", serde_json::to_string(&r)?)?;
            } else {
                say!("{}", bench::render_mqtt(&r))?;
            }
        }
        BenchCommand::Headers { dir } => {
            let (secs, n) = bench::header_scan(&dir)?;
            say!(
                "files {n} seconds {secs:.3} files_per_second {:.0}",
                n as f64 / secs.max(1e-9)
            )?;
        }
    }
    Ok(())
}

pub fn export_onnx(card: Option<PathBuf>, out: PathBuf) -> anyhow::Result<()> {
    let card = ismf::model::locate_card(card.as_deref())?;
    let export = ismf::model::export_onnx(&card, &out)?;
    for f in &export.files {
        say!("{} {} sha256 {}", f.precision, f.path.display(), f.sha256)?;
    }
    say!("contract {}", export.contract.display())?;
    Ok(())
}
