//! `ismf bench`: measurements that BENCHMARKS.md reports, run from the release binary so the
//! numbers are the product's, not a test harness's.

use crate::ingest::{self, catalog, IngestError};
use crate::inspect;
use crate::pixels::DEFAULT_MAX_VOXELS;
use crate::preprocess::{study_inputs, PreprocessError, PreprocessParams};
use crate::series::Rules;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("{0}: no complete study to measure")]
    NoStudy(PathBuf),
}

/// Peak resident set size of this process so far, MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Seconds of each run of decode + preprocess of the first complete study under `dir`.
pub fn preprocess_runs(dir: &Path, repeat: usize) -> Result<Vec<f64>, BenchError> {
    let report = inspect::inspect(dir, &Rules::default())?;
    let study = report
        .studies
        .iter()
        .find(|s| s.complete)
        .ok_or_else(|| BenchError::NoStudy(dir.to_path_buf()))?;
    let files = study.sequences.files();
    let clinical = catalog::read_header(&files[0].1[0])?.clinical();
    let params = PreprocessParams::default();
    let mut runs = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        let inputs = study_inputs(&files, &clinical, &params, DEFAULT_MAX_VOXELS)?;
        runs.push(t.elapsed().as_secs_f64());
        std::hint::black_box(inputs);
    }
    Ok(runs)
}

/// Seconds to read the headers of every file under `dir`, and how many were read.
pub fn header_scan(dir: &Path) -> Result<(f64, usize), BenchError> {
    let t = Instant::now();
    let scan = ingest::scan(dir)?;
    let n: usize = scan
        .catalog
        .studies
        .values()
        .flat_map(|s| s.series.values())
        .map(|s| s.instances.len())
        .sum();
    Ok((t.elapsed().as_secs_f64(), n))
}
