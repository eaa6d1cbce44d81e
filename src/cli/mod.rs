//! The command line: clap definitions ([`Cli`]) and one handler per command, each returning
//! `anyhow::Result` — the binary's edge, where the library's typed errors meet. [`exit_code`]
//! reads the error chain once: usage and configuration errors are 2, a closed stdout is 0 (as
//! Unix tools do: `ismf classify --json | head`), everything else 1.

mod appliance;
mod args;
mod models;
mod output;
#[cfg(feature = "reading-room")]
mod reading_room;
mod studies;

use args::{LogFormatArg, UsageError};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The exit code for an error, from its chain.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return 0;
            }
        }
        if cause.is::<UsageError>() || cause.is::<ismf::config::ConfigError>() {
            return 2;
        }
        if let Some(s) = cause.downcast_ref::<ismf::simulate::SimulateError>() {
            if s.is_usage() {
                return 2;
            }
        }
        if let Some(ismf::dataset::DatasetError::InvalidOption(_)) = cause.downcast_ref() {
            return 2;
        }
    }
    1
}

#[derive(Parser)]
#[command(
    name = "ismf",
    version,
    about = "ISMF Edge: intraspinal tumour classification beside the MRI scanner (not for diagnostic use)"
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log line format on stderr: text or json.
    #[arg(long, default_value = "text", global = true, value_parser = args::choice::<LogFormatArg>(ismf::logging::LogFormat::NAMES))]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write synthetic spine MRI studies as DICOM files plus truth.jsonl.
    Simulate(studies::SimulateArgs),
    /// Report studies, series, identified sequences with reasons, completeness and problems.
    Inspect {
        /// A DICOM file or a folder (searched recursively).
        path: PathBuf,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Training tensors: simulated studies through ingest and preprocessing, as .npy files.
    Dataset(studies::DatasetArgs),
    /// Classify the study (or studies) in a folder: ingest, preprocessing and the model.
    Classify(models::ClassifyArgs),
    /// Classify every study listed in DIR/truth.jsonl and score the predictions.
    Eval(models::EvalArgs),
    /// Benchmarks (results go to BENCHMARKS.md). Without a subcommand: model-only latency of
    /// tract on a simulated study's inputs.
    Bench(models::BenchArgs),
    /// The appliance daemon: watch the export folder, classify each complete study, publish.
    /// SIGTERM or SIGINT stop it cleanly (exit 0).
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// The whole appliance with nothing to set up: an embedded MQTT broker, the simulator
    /// exporting studies in real time, the daemon, and a subscriber printing each prediction
    /// beside the truth. Ctrl-C stops it.
    #[cfg(feature = "demo")]
    Demo(appliance::DemoArgs),
    /// The ONNX-export bridge: write the graph the appliance runs as fp32 and fp16 ONNX (static
    /// shapes, batch norm folded, the card's input names; float32 inputs and outputs) with a
    /// contract.json, for TensorRT (`trtexec --onnx`) or onnxruntime-gpu.
    ExportOnnx {
        /// The model card whose f32 file is exported (checked against its sha256 first).
        /// Default: $ISMF_MODEL_CARD, then /opt/ismf/models/model-card.json, then
        /// models/model-card.json.
        #[arg(long)]
        card: Option<PathBuf>,
        /// Output folder (created when missing; existing files of the same names are replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Reading-room subscriber: print appliance status, predictions and events as they arrive.
    Subscribe(appliance::SubscribeArgs),
    /// The reading room's web worklist: subscribe (persistent session), keep predictions,
    /// key images, appliance status and events in a durable store, and serve a live page and a
    /// JSON API from it.
    #[cfg(feature = "reading-room")]
    ReadingRoom(reading_room::ReadingRoomArgs),
    /// The appliance configuration.
    #[command(subcommand)]
    Config(appliance::ConfigCommand),
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

impl Cli {
    /// The log level used when no `-v` is given: the demo tells its story on stdout, and the
    /// embedded broker logs ordinary disconnects as errors.
    pub fn quiet_level(&self) -> &'static str {
        #[cfg(feature = "demo")]
        if matches!(self.command, Command::Demo(_)) {
            return "warn,rumqttd=off";
        }
        "info"
    }

    pub fn verbosity(&self) -> u8 {
        self.verbose
    }

    pub fn log_format(&self) -> ismf::logging::LogFormat {
        self.log_format.0
    }

    /// Runs the command.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Simulate(args) => studies::simulate(args),
            Command::Inspect { path, json } => studies::inspect(path, json),
            Command::Decode {
                file,
                npy,
                max_voxels,
            } => studies::decode(file, npy, max_voxels),
            Command::Dataset(args) => studies::dataset(args),
            Command::Bench(args) => models::bench(args),
            Command::Classify(args) => models::classify(args),
            Command::Eval(args) => models::eval(args),
            Command::ExportOnnx { card, out } => models::export_onnx(card, out),
            Command::Subscribe(args) => appliance::subscribe(args),
            #[cfg(feature = "reading-room")]
            Command::ReadingRoom(args) => reading_room::reading_room(args),
            #[cfg(feature = "demo")]
            Command::Demo(args) => appliance::demo(args),
            Command::Run { config } => appliance::run(config),
            Command::Config(command) => appliance::config(command),
        }
    }
}
