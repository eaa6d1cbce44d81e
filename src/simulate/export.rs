//! Writing a study the way a scanner exports it.
//!
//! `instant` writes every file at once. `realtime` trickles series after series over seconds:
//! most files are written straight to their final name, some slowly in two parts, some under a
//! temporary `.part` name and then renamed, and now and then a file is re-sent under a second
//! name (same SOP Instance UID, same bytes) — the behaviours an ingest watcher must survive.
//! The file set and its bytes depend only on the seed; only the timing is real.

use super::dicom_writer::{encode, image_object, ImageRef};
use super::error::SimulateError;
use super::preview::{preview_row, PreviewRow};
use super::protocol::SeriesRole;
use super::render::SeriesPixels;
use super::study::{Study, Truth};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How files reach the output folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportMode {
    Instant,
    Realtime,
}

/// Folder layout of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Every file directly in the output folder.
    Flat,
    /// `S<study>/SE<series>/IM<instance>.dcm`.
    SeriesDirs,
}

crate::named::named_words!(ExportMode, "export mode", { Instant => "instant", Realtime => "realtime" });
crate::named::named_words!(Layout, "layout", { Flat => "flat", SeriesDirs => "series-dirs" });

/// Realtime pacing; `speed` > 1 compresses the delays (tests use a large value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacing {
    pub speed: f64,
}

impl Pacing {
    fn sleep_ms(&self, ms: f64) {
        let d = ms / self.speed;
        if d >= 0.5 {
            std::thread::sleep(Duration::from_micros((d * 1000.0) as u64));
        }
    }
}

/// Path of one image file.
pub fn image_path(
    out: &Path,
    layout: Layout,
    study: usize,
    series: u32,
    instance: usize,
) -> PathBuf {
    match layout {
        Layout::Flat => out.join(format!("S{study:05}_SE{series:04}_IM{instance:04}.dcm")),
        Layout::SeriesDirs => out
            .join(format!("S{study:05}"))
            .join(format!("SE{series:04}"))
            .join(format!("IM{instance:04}.dcm")),
    }
}

/// What writing one study produced.
pub struct StudyOutput {
    pub truth: Truth,
    pub files: usize,
    pub bytes: u64,
    pub preview: Option<PreviewRow>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimulateError + '_ {
    move |source| SimulateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SimulateError> {
    fs::write(path, bytes).map_err(io_err(path))
}

/// Renders and writes one study; `pacing` set means realtime export.
pub fn write_study(
    study: &Study,
    out: &Path,
    layout: Layout,
    pacing: Option<Pacing>,
    want_preview: bool,
) -> Result<StudyOutput, SimulateError> {
    let mut files = 0;
    let mut bytes = 0u64;
    let mut kept: Vec<(SeriesRole, SeriesPixels)> = Vec::new();
    let mut timing = ChaCha8Rng::seed_from_u64(study.seed ^ 0x7265_616c_7469_6d65);
    for (k, plan) in study.series.iter().enumerate() {
        let pixels = study.render(plan);
        if let Some(p) = pacing {
            if k > 0 {
                p.sleep_ms(timing.random_range(300.0..800.0));
            }
        }
        let mut resend = Vec::new();
        let mut image = 0;
        for (si, stack) in pixels.stacks.iter().enumerate() {
            for slice in 0..stack.slices {
                image += 1;
                let r = ImageRef {
                    stack: si,
                    slice,
                    instance: image,
                };
                let path = image_path(out, layout, study.index, plan.number, image);
                let data = encode(image_object(study, plan, &pixels, r)).map_err(|message| {
                    SimulateError::Dicom {
                        path: path.clone(),
                        message,
                    }
                })?;
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                match pacing {
                    None => write_file(&path, &data)?,
                    Some(p) => {
                        let roll: f64 = timing.random();
                        if roll < 0.12 {
                            let name = path
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            let tmp = path.with_file_name(format!(".{name}.part"));
                            write_file(&tmp, &data)?;
                            p.sleep_ms(timing.random_range(20.0..120.0));
                            fs::rename(&tmp, &path).map_err(io_err(&path))?;
                        } else if roll < 0.20 {
                            let mut f = fs::File::create(&path).map_err(io_err(&path))?;
                            let half = data.len() / 2;
                            f.write_all(&data[..half])
                                .and_then(|_| f.flush())
                                .map_err(io_err(&path))?;
                            p.sleep_ms(timing.random_range(200.0..600.0));
                            f.write_all(&data[half..]).map_err(io_err(&path))?;
                        } else {
                            write_file(&path, &data)?;
                        }
                        if timing.random_bool(0.03) {
                            resend.push((path.clone(), data.len()));
                        }
                        p.sleep_ms(timing.random_range(10.0..40.0));
                    }
                }
                files += 1;
                bytes += data.len() as u64;
            }
        }
        for (path, len) in resend {
            // A scanner re-send: same SOP Instance, same bytes, another name.
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dup = path.with_file_name(format!("{stem}_resend.dcm"));
            fs::copy(&path, &dup).map_err(io_err(&dup))?;
            files += 1;
            bytes += len as u64;
        }
        if want_preview
            && matches!(
                plan.protocol.role,
                SeriesRole::SagT1w | SeriesRole::SagT2w | SeriesRole::SagT2fs | SeriesRole::AxT2w
            )
        {
            kept.push((plan.protocol.role, pixels));
        }
    }
    let preview = if want_preview {
        let refs: Vec<(SeriesRole, &SeriesPixels)> = kept.iter().map(|(r, p)| (*r, p)).collect();
        preview_row(study, &refs)
    } else {
        None
    };
    Ok(StudyOutput {
        truth: study.truth(),
        files,
        bytes,
        preview,
    })
}
