//! The synthetic spine-MRI scanner behind `ismf simulate`.
//!
//! ISMF-Net's patients are private, so every later stage is built and tested on studies from
//! this simulator. A study is a 3-D patient ([`anatomy`]) with one lesion ([`lesion`]) drawn from
//! its class's distribution, scanned by a vendor's scanner at a site ([`protocol`]): each series
//! is rendered on its own slice grid with the MR signal equations ([`tissue`], [`render`]) and
//! written as DICOM Part-10 files ([`dicom_writer`]) the way a scanner exports them ([`export`]).
//! Ground truth goes to `truth.jsonl`, never into the DICOM files.
//!
//! Determinism: the same options and seed give byte-identical files, whatever the thread count.
//! UIDs are random values under the UUID-derived root `2.25` (ISO/IEC 9834-8), drawn from the
//! seeded generator.

pub mod anatomy;
pub mod dicom_writer;
mod error;
pub mod export;
pub mod lesion;
pub mod preview;
pub mod protocol;
pub mod render;
pub mod spine;
pub mod study;
pub mod tissue;

pub use error::SimulateError;
pub use export::{ExportMode, Layout};
pub use lesion::TumourClass;
pub use protocol::{DistractorRates, SeriesRole, Site, Vendor};
pub use spine::Region;
pub use study::{Study, StudyOptions, Truth};

use export::{write_study, Pacing, StudyOutput};
use rayon::prelude::*;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Most studies shown in a preview montage (one 256-pixel row each).
pub const MAX_PREVIEW_ROWS: usize = 25;

/// Everything `ismf simulate` needs.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    pub out: PathBuf,
    pub studies: usize,
    pub study: StudyOptions,
    pub mode: ExportMode,
    pub layout: Layout,
    pub preview: Option<PathBuf>,
    /// Realtime delays are divided by this.
    pub speed: f64,
    pub progress: bool,
    /// Where the ground truth goes (default `OUT/truth.jsonl`); elsewhere when OUT is a watched
    /// export folder, where a non-DICOM file would be quarantined.
    pub truth: Option<PathBuf>,
}

impl SimulateOptions {
    pub fn truth_path(&self) -> PathBuf {
        self.truth
            .clone()
            .unwrap_or_else(|| self.out.join("truth.jsonl"))
    }
}

/// What a run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub studies: usize,
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
}

impl Summary {
    pub fn studies_per_second(&self) -> f64 {
        self.studies as f64 / self.seconds.max(1e-9)
    }
}

/// Creates the output folder and proves it writable by creating the truth file.
fn open_output(out: &Path, truth: &Path) -> Result<BufWriter<fs::File>, SimulateError> {
    let unwritable = |source| SimulateError::OutputNotWritable {
        path: out.to_path_buf(),
        source,
    };
    fs::create_dir_all(out).map_err(unwritable)?;
    if let Some(dir) = truth.parent() {
        fs::create_dir_all(dir).map_err(unwritable)?;
    }
    let truth = fs::File::create(truth).map_err(unwritable)?;
    Ok(BufWriter::new(truth))
}

fn write_truth(w: &mut impl Write, path: &Path, truth: &Truth) -> Result<(), SimulateError> {
    let line = serde_json::to_string(truth).map_err(|e| SimulateError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    writeln!(w, "{line}")
        .and_then(|_| w.flush())
        .map_err(|source| SimulateError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Runs the simulator.
pub fn run(opts: &SimulateOptions) -> Result<Summary, SimulateError> {
    if opts.studies == 0 {
        return Err(SimulateError::InvalidOption(
            "--studies must be at least 1".into(),
        ));
    }
    if !(opts.speed.is_finite() && opts.speed > 0.0) {
        return Err(SimulateError::InvalidOption(format!(
            "--speed must be positive, got {}",
            opts.speed
        )));
    }
    if let Some(p) = &opts.preview {
        if p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.eq_ignore_ascii_case("png"))
            != Some(true)
        {
            return Err(SimulateError::InvalidOption(format!(
                "--preview {} must name a .png file",
                p.display()
            )));
        }
    }
    let start = Instant::now();
    let truth_path = opts.truth_path();
    let mut truth = open_output(&opts.out, &truth_path)?;
    let bar = crate::logging::study_progress("simulating", opts.studies, opts.progress);
    let one = |i: usize, pacing: Option<Pacing>| -> Result<StudyOutput, SimulateError> {
        let study = Study::sample(&opts.study, i);
        let want_preview = opts.preview.is_some() && i < MAX_PREVIEW_ROWS;
        let out = write_study(&study, &opts.out, opts.layout, pacing, want_preview)?;
        tracing::debug!(study = i, uid = %out.truth.study_instance_uid, class = %out.truth.class, files = out.files, "study written");
        bar.inc(1);
        Ok(out)
    };
    let mut outputs = Vec::with_capacity(opts.studies);
    match opts.mode {
        ExportMode::Instant => {
            let done: Vec<StudyOutput> = (0..opts.studies)
                .into_par_iter()
                .map(|i| one(i, None))
                .collect::<Result<_, _>>()?;
            for o in &done {
                write_truth(&mut truth, &truth_path, &o.truth)?;
            }
            outputs = done;
        }
        ExportMode::Realtime => {
            for i in 0..opts.studies {
                let o = one(i, Some(Pacing { speed: opts.speed }))?;
                write_truth(&mut truth, &truth_path, &o.truth)?;
                outputs.push(o);
            }
        }
    }
    bar.finish_and_clear();
    if let Some(path) = &opts.preview {
        let rows: Vec<_> = outputs
            .iter_mut()
            .filter_map(|o| o.preview.take())
            .collect();
        if opts.studies > MAX_PREVIEW_ROWS {
            tracing::info!(
                shown = MAX_PREVIEW_ROWS,
                "preview shows only the first studies"
            );
        }
        preview::write_montage(path, &rows).map_err(|source| SimulateError::Preview {
            path: path.clone(),
            source,
        })?;
    }
    Ok(Summary {
        studies: opts.studies,
        files: outputs.iter().map(|o| o.files).sum(),
        bytes: outputs.iter().map(|o| o.bytes).sum(),
        seconds: start.elapsed().as_secs_f64(),
    })
}
