//! Commands over studies and files: `simulate`, `dataset`, `inspect`, `decode`.

use super::args::{choice, usage, StudyArgs};
use super::output::{print_stdout, say};
use ismf::simulate::{self, DistractorRates, ExportMode, Layout};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Number of studies.
    #[arg(long, default_value_t = 1)]
    studies: usize,
    #[command(flatten)]
    study: StudyArgs,
    /// instant writes everything at once; realtime trickles files like a scanner export.
    #[arg(long, default_value = "instant", value_parser = choice::<ExportMode>(ExportMode::NAMES))]
    mode: ExportMode,
    /// Folder layout of the DICOM files.
    #[arg(long, default_value = "flat", value_parser = choice::<Layout>(Layout::NAMES))]
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

pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
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

#[derive(clap::Args)]
pub struct DatasetArgs {
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

pub fn dataset(args: DatasetArgs) -> anyhow::Result<()> {
    use ismf::dataset::{self, DatasetOptions};
    let opts = DatasetOptions {
        out: args.out,
        studies: args.studies,
        study: args.study.options(DistractorRates::default()),
        scratch: args.scratch.unwrap_or_else(dataset::default_scratch),
        progress: std::io::stderr().is_terminal(),
    };
    let summary = dataset::run(&opts)?;
    tracing::info!(
        studies = summary.studies,
        seconds = format!("{:.1}", summary.seconds),
        studies_per_second = format!("{:.2}", summary.studies as f64 / summary.seconds.max(1e-9)),
        out = %opts.out.display(),
        "dataset written"
    );
    Ok(())
}

pub fn inspect(path: PathBuf, json: bool) -> anyhow::Result<()> {
    // A path that cannot be scanned is a mistake in what was asked for.
    let report = ismf::inspect::inspect(&path, &ismf::series::Rules::default()).map_err(usage)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_stdout(&ismf::inspect::render_text(&report))?;
    }
    Ok(())
}

pub fn decode(file: PathBuf, npy: PathBuf, max_voxels: u64) -> anyhow::Result<()> {
    let volume = ismf::pixels::decode_file(&file, max_voxels)?;
    ismf::pixels::write_npy(&npy, &volume)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", npy.display()))?;
    tracing::info!(file = %file.display(), frames = volume.frames, rows = volume.rows, columns = volume.columns, "decoded");
    Ok(())
}
