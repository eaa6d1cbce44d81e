//! `ismf dataset`: training tensors made by the serving pipeline itself.
//!
//! Each study goes simulator → DICOM files (in a scratch folder, tmpfs by default) → the ingest
//! identification → pixel decoding → preprocessing, exactly as the appliance would see it, so
//! training and serving cannot disagree about preprocessing. Output, in `--out`:
//! `sag_t1w.npy`, `sag_t2w.npy`, `sag_t2fs.npy`, `ax_t2w.npy` (float32 `[N, planes, size, size]`),
//! `clinical.npy` (float32 `[N, 9]`, layout in `dataset.json`), `labels.npy` (int64 `[N]`, index
//! into `classes`), `studies.jsonl` (the simulator's truth per row) and `dataset.json` (what made
//! it: preprocessing parameters, simulator version, options).

use crate::ingest::report::study_report;
use crate::ingest::IngestError;
use crate::npy::NpyWriter;
use crate::pixels::DEFAULT_MAX_VOXELS;
use crate::preprocess::{
    study_inputs, ModelInputs, PreprocessError, PreprocessParams, CLINICAL_LAYOUT,
};
use crate::series::{Rules, SequenceKind};
use crate::simulate::study::SIMULATOR_VERSION;
use crate::simulate::{export, Layout, SimulateError, Study, StudyOptions, Truth, TumourClass};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `ismf dataset` needs.
#[derive(Clone, Debug)]
pub struct DatasetOptions {
    pub out: PathBuf,
    pub studies: usize,
    pub study: StudyOptions,
    /// Where each study's DICOM files live while it is processed.
    pub scratch: PathBuf,
    pub progress: bool,
}

/// Errors of dataset building.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Simulate(#[from] SimulateError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    /// The pipeline failed to identify a simulated study: a bug in the simulator or the rules.
    #[error("study {index} ({uid}) is incomplete after ingest: {problems}")]
    Incomplete {
        index: usize,
        uid: String,
        problems: String,
    },
}

/// What a run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSummary {
    pub studies: usize,
    pub seconds: f64,
}

/// The default scratch folder: tmpfs when the machine has one.
pub fn default_scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// One processed study.
struct Row {
    inputs: ModelInputs,
    truth: Truth,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Simulates study `index` of `study`, writes it to `scratch`, and runs it through ingest and
/// preprocessing: the model inputs exactly as `ismf dataset` stores them, and the truth. Tests
/// use it to regenerate reference inputs instead of committing tensors.
pub fn study_tensors(
    study: &StudyOptions,
    index: usize,
    scratch: &Path,
    params: &PreprocessParams,
) -> Result<(ModelInputs, Truth), DatasetError> {
    let study = Study::sample(study, index);
    let dir = scratch.join(format!("ismf-dataset-{}-{index}", std::process::id()));
    let result =
        (|| {
            let written = export::write_study(&study, &dir, Layout::Flat, None, false)?;
            let scan = crate::ingest::scan(&dir)?;
            let entry = scan.catalog.studies.get(&study.study_uid).ok_or_else(|| {
                DatasetError::Incomplete {
                    index,
                    uid: study.study_uid.clone(),
                    problems: "no files catalogued".into(),
                }
            })?;
            let report = study_report(entry, &Rules::default());
            if !report.complete {
                return Err(DatasetError::Incomplete {
                    index,
                    uid: study.study_uid.clone(),
                    problems: report.problems.join("; "),
                });
            }
            let files = report.sequences.files();
            let inputs = study_inputs(&files, &entry.clinical(), params, DEFAULT_MAX_VOXELS)?;
            Ok((inputs, written.truth))
        })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Builds the dataset.
pub fn run(opts: &DatasetOptions) -> Result<DatasetSummary, DatasetError> {
    if opts.studies == 0 {
        return Err(DatasetError::InvalidOption(
            "--studies must be at least 1".into(),
        ));
    }
    let start = Instant::now();
    let params = PreprocessParams::default();
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    std::fs::create_dir_all(&opts.scratch).map_err(io(&opts.scratch))?;
    let n = opts.studies;
    let mut stacks = Vec::new();
    for kind in SequenceKind::REQUIRED {
        let g = if kind == SequenceKind::AxT2w {
            params.axial
        } else {
            params.sagittal
        };
        let path = opts.out.join(format!("{}.npy", kind.key()));
        stacks.push(
            NpyWriter::create(&path, "<f4", &[n, g.slices, g.size, g.size]).map_err(io(&path))?,
        );
    }
    let clinical_path = opts.out.join("clinical.npy");
    let mut clinical = NpyWriter::create(&clinical_path, "<f4", &[n, CLINICAL_LAYOUT.len()])
        .map_err(io(&clinical_path))?;
    let labels_path = opts.out.join("labels.npy");
    let mut labels = NpyWriter::create(&labels_path, "<i8", &[n]).map_err(io(&labels_path))?;
    let rows_path = opts.out.join("studies.jsonl");
    let mut rows =
        std::io::BufWriter::new(std::fs::File::create(&rows_path).map_err(io(&rows_path))?);

    let bar = crate::logging::study_progress("dataset", n, opts.progress);
    // Chunks keep memory bounded and the output in study order.
    let chunk = 4 * rayon::current_num_threads().max(1);
    for first in (0..n).step_by(chunk) {
        let done: Vec<Row> = (first..(first + chunk).min(n))
            .into_par_iter()
            .map(|i| {
                let r = study_tensors(&opts.study, i, &opts.scratch, &params)
                    .map(|(inputs, truth)| Row { inputs, truth });
                bar.inc(1);
                r
            })
            .collect::<Result<_, _>>()?;
        for row in done {
            for ((_, stack), writer) in row.inputs.stacks.iter().zip(stacks.iter_mut()) {
                writer.write_f32(&stack.data).map_err(io(&opts.out))?;
            }
            clinical
                .write_f32(&row.inputs.clinical)
                .map_err(io(&clinical_path))?;
            let label = TumourClass::ALL
                .iter()
                .position(|c| *c == row.truth.class)
                .unwrap_or(0) as i64;
            labels.write_i64(&[label]).map_err(io(&labels_path))?;
            let mut line = serde_json::to_value(&row.truth).unwrap_or_default();
            line["preprocess_warnings"] = serde_json::json!(row.inputs.warnings);
            writeln!(rows, "{line}").map_err(io(&rows_path))?;
        }
    }
    bar.finish_and_clear();
    for w in stacks {
        w.finish().map_err(io(&opts.out))?;
    }
    clinical.finish().map_err(io(&clinical_path))?;
    labels.finish().map_err(io(&labels_path))?;
    rows.flush().map_err(io(&rows_path))?;
    let meta = serde_json::json!({
        "studies": n,
        "classes": TumourClass::ALL.map(|c| c.code()),
        "inputs": SequenceKind::REQUIRED.map(|k| k.key()),
        "clinical_layout": CLINICAL_LAYOUT,
        "preprocess": params,
        "simulator_version": SIMULATOR_VERSION,
        "seed": opts.study.seed,
        "site": opts.study.site,
        "class_filter": opts.study.classes.iter().map(|c| c.code()).collect::<Vec<_>>(),
        "vendor": opts.study.vendor,
        "note": "synthetic studies from the ISMF Edge simulator; not patient data",
    });
    let meta_path = opts.out.join("dataset.json");
    std::fs::write(
        &meta_path,
        serde_json::to_string_pretty(&meta).unwrap_or_default(),
    )
    .map_err(io(&meta_path))?;
    Ok(DatasetSummary {
        studies: n,
        seconds: start.elapsed().as_secs_f64(),
    })
}
