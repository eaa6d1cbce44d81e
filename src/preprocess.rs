//! Volume → model tensors, and the clinical vector.
//!
//! Each of the four sequences becomes a 2.5-D stack: `slices` planes at a fixed physical spacing,
//! centred on the middle of the acquired stack (technologists centre sagittal stacks on the cord
//! and axial stacks on the lesion), each resampled onto a square grid of fixed physical pixel
//! size centred on the image centre. Slices are ordered by position along the slice normal —
//! never by InstanceNumber — and gaps or uneven spacing are reported. Intensities are clipped to
//! robust percentiles and z-scored per sequence. Every parameter is in [`PreprocessParams`], which
//! the model card carries, so training and serving cannot disagree.

use crate::pixels::{self, PixelError, Volume};
use crate::series::SequenceKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The 2.5-D grid of one sequence.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Planes in the stack (channels of the encoder input).
    pub slices: usize,
    /// Distance between planes along the slice normal, mm.
    pub slice_spacing_mm: f64,
    /// Output rows = columns.
    pub size: usize,
    /// Output pixel size, mm.
    pub pixel_mm: f64,
}

/// Everything preprocessing does, in numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessParams {
    pub sagittal: Grid,
    pub axial: Grid,
    /// Intensities are clipped to these percentiles of the stack before z-scoring.
    pub clip_percentiles: (f64, f64),
    /// Age is divided by this in the clinical vector.
    pub age_scale_years: f64,
    /// Age used when none is recorded (the missing indicator is set).
    pub default_age_years: f64,
}

impl Default for PreprocessParams {
    /// 160 × 160 planes (PROBES.md: five-channel 160² stacks cost tract about half of 224² RGB);
    /// 1.75 mm sagittal pixels cover 280 mm, 1.25 mm axial pixels cover 200 mm.
    fn default() -> Self {
        PreprocessParams {
            sagittal: Grid {
                slices: 5,
                slice_spacing_mm: 3.5,
                size: 160,
                pixel_mm: 1.75,
            },
            axial: Grid {
                slices: 5,
                slice_spacing_mm: 4.0,
                size: 160,
                pixel_mm: 1.25,
            },
            clip_percentiles: (0.5, 99.5),
            age_scale_years: 100.0,
            default_age_years: 50.0,
        }
    }
}

/// One image plane with its geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub rows: usize,
    pub columns: usize,
    pub data: Vec<f32>,
    pub position: [f64; 3],
    pub orientation: [f64; 6],
    /// (between rows, between columns), mm.
    pub pixel_spacing: [f64; 2],
    /// Where the plane came from, for results that point back at it.
    pub source: PlaneSource,
}

/// The file, frame and SOP Instance UID a plane was decoded from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaneSource {
    pub path: PathBuf,
    /// Frame within the file (0 for single-frame images).
    pub frame: usize,
    pub sop_instance_uid: Option<String>,
    pub sop_class_uid: Option<String>,
    pub series_instance_uid: Option<String>,
}

/// Errors of preprocessing, naming the series.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("series {series}: no image has position, orientation and pixel spacing")]
    NoGeometry { series: String },
    #[error("series {series}: images have different orientations or sizes")]
    Inconsistent { series: String },
    #[error("{kind}: no decodable image (last error: {last})")]
    NothingDecoded {
        kind: SequenceKind,
        last: PixelError,
    },
}

/// The model's inputs for one study.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInputs {
    /// One stack per required sequence, in [`SequenceKind::REQUIRED`] order.
    pub stacks: Vec<(SequenceKind, Stack)>,
    pub clinical: [f32; 9],
    /// Everything worth telling about the inputs (files skipped, gaps, planes outside a stack).
    pub warnings: Vec<String>,
}

/// Decodes the selected files of each required sequence and builds the model inputs. A file that
/// fails to decode is left out with a warning (the caller quarantines it); a sequence with no
/// decodable file is an error.
pub fn study_inputs(
    files: &[(SequenceKind, Vec<PathBuf>)],
    clinical: &ClinicalHeader,
    params: &PreprocessParams,
    max_voxels: u64,
) -> Result<ModelInputs, PreprocessError> {
    // Sequences, and the files within each, are independent: spread them over the cores.
    let per_sequence = files
        .par_iter()
        .map(|(kind, paths)| {
            let mut warnings = Vec::new();
            let mut volumes = Vec::new();
            let mut last = None;
            let decoded: Vec<_> = paths
                .par_iter()
                .map(|path| pixels::decode_file(path, max_voxels))
                .collect();
            for (result, path) in decoded.into_iter().zip(paths) {
                match result {
                    Ok(v) => volumes.push((path.clone(), v)),
                    Err(e) => {
                        warnings.push(format!("{kind}: skipped {e}"));
                        last = Some(e);
                    }
                }
            }
            if volumes.is_empty() {
                let last = last.unwrap_or(PixelError::BadAttribute {
                    path: PathBuf::new(),
                    attribute: "no files",
                });
                return Err(PreprocessError::NothingDecoded { kind: *kind, last });
            }
            let (planes, dropped) = planes(volumes);
            if dropped > 0 {
                warnings.push(format!(
                    "{kind}: {dropped} frame(s) without geometry left out"
                ));
            }
            let grid = if *kind == SequenceKind::AxT2w {
                params.axial
            } else {
                params.sagittal
            };
            let stack = resample(kind.key(), planes, grid, params.clip_percentiles)?;
            warnings.extend(stack.warnings.iter().map(|w| format!("{kind}: {w}")));
            Ok(((*kind, stack), warnings))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut stacks = Vec::with_capacity(per_sequence.len());
    let mut warnings = Vec::new();
    for (stack, w) in per_sequence {
        stacks.push(stack);
        warnings.extend(w);
    }
    Ok(ModelInputs {
        stacks,
        clinical: clinical_vector(clinical, params),
        warnings,
    })
}

/// Splits decoded volumes, each with the file it came from, into planes (enhanced multi-frame
/// files give several); planes without geometry are dropped and counted.
pub fn planes(volumes: Vec<(PathBuf, Volume)>) -> (Vec<Plane>, usize) {
    let mut out = Vec::new();
    let mut dropped = 0;
    for (path, mut v) in volumes {
        let n = v.rows * v.columns;
        for f in 0..v.frames {
            match (
                v.positions.get(f).copied().flatten(),
                v.orientation,
                v.pixel_spacing,
            ) {
                (Some(position), Some(orientation), Some(pixel_spacing)) => out.push(Plane {
                    rows: v.rows,
                    columns: v.columns,
                    // Single-frame files (the usual case) give their buffer away uncopied.
                    data: if v.frames == 1 {
                        std::mem::take(&mut v.data)
                    } else {
                        v.data[f * n..(f + 1) * n].to_vec()
                    },
                    position,
                    orientation,
                    pixel_spacing,
                    source: PlaneSource {
                        path: path.clone(),
                        frame: f,
                        sop_instance_uid: v.sop_instance_uid.clone(),
                        sop_class_uid: v.sop_class_uid.clone(),
                        series_instance_uid: v.series_instance_uid.clone(),
                    },
                }),
                _ => dropped += 1,
            }
        }
    }
    (out, dropped)
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normal(o: &[f64; 6]) -> [f64; 3] {
    let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ]
}

/// A sequence resampled onto its grid: `slices × size × size`, z-scored.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack {
    pub grid: Grid,
    pub data: Vec<f32>,
    /// Gaps, uneven spacing, dropped frames, planes outside the acquired stack.
    pub warnings: Vec<String>,
    /// Where the grid lies in the patient, and the acquired planes it was sampled from.
    pub geometry: StackGeometry,
}

/// The grid of a [`Stack`] in patient coordinates (DICOM LPS, mm): grid point (slice `s`, row
/// `i`, column `j`) lies at `centre + (j − c)·pixel·row_dir + (i − c)·pixel·col_dir +
/// (s − m)·spacing·normal`, with `c = (size − 1)/2` and `m = (slices − 1)/2` — the same
/// formula `resample` samples with, so an explanation's grid peak maps back to the patient.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackGeometry {
    pub centre: [f64; 3],
    /// Direction of increasing output column.
    pub row_dir: [f64; 3],
    /// Direction of increasing output row.
    pub col_dir: [f64; 3],
    pub normal: [f64; 3],
    /// The acquired planes by position along `normal`: (depth, in-plane geometry, source).
    pub planes: Vec<SourcePlane>,
}

/// One acquired plane of a stack, without its pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct SourcePlane {
    /// Position along the stack normal, mm (`position · normal`).
    pub depth: f64,
    pub rows: usize,
    pub columns: usize,
    pub position: [f64; 3],
    pub pixel_spacing: [f64; 2],
    pub source: PlaneSource,
}

impl StackGeometry {
    /// Patient position of the (fractional) grid point (`s`, `i`, `j`).
    pub fn point(&self, grid: &Grid, s: f64, i: f64, j: f64) -> [f64; 3] {
        let c = 0.5 * (grid.size as f64 - 1.0);
        let m = 0.5 * (grid.slices as f64 - 1.0);
        [0, 1, 2].map(|x| {
            self.centre[x]
                + (j - c) * grid.pixel_mm * self.row_dir[x]
                + (i - c) * grid.pixel_mm * self.col_dir[x]
                + (s - m) * grid.slice_spacing_mm * self.normal[x]
        })
    }

    /// Fractional grid coordinates (`s`, `i`, `j`) of a patient position (the inverse of
    /// [`StackGeometry::point`]).
    pub fn grid_coords(&self, grid: &Grid, p: [f64; 3]) -> [f64; 3] {
        let d = [0, 1, 2].map(|x| p[x] - self.centre[x]);
        let c = 0.5 * (grid.size as f64 - 1.0);
        let m = 0.5 * (grid.slices as f64 - 1.0);
        [
            m + dot(d, self.normal) / grid.slice_spacing_mm,
            c + dot(d, self.col_dir) / grid.pixel_mm,
            c + dot(d, self.row_dir) / grid.pixel_mm,
        ]
    }

    /// The acquired plane nearest to `p` along the normal.
    pub fn nearest_plane(&self, p: [f64; 3]) -> Option<&SourcePlane> {
        let d = dot(p, self.normal);
        self.planes
            .iter()
            .min_by(|a, b| (a.depth - d).abs().total_cmp(&(b.depth - d).abs()))
    }
}

/// Resamples the planes of one series onto `grid`, then clips and z-scores.
pub fn resample(
    series: &str,
    mut planes: Vec<Plane>,
    grid: Grid,
    clip: (f64, f64),
) -> Result<Stack, PreprocessError> {
    let first = planes
        .first()
        .ok_or_else(|| PreprocessError::NoGeometry {
            series: series.into(),
        })?
        .clone();
    let same = |p: &Plane| {
        p.rows == first.rows
            && p.columns == first.columns
            && p.orientation
                .iter()
                .zip(&first.orientation)
                .all(|(a, b)| (a - b).abs() < 1e-3)
    };
    if !planes.iter().all(same) {
        return Err(PreprocessError::Inconsistent {
            series: series.into(),
        });
    }
    let o = first.orientation;
    let (row_dir, col_dir, n) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]], normal(&o));
    planes.sort_by(|a, b| dot(a.position, n).total_cmp(&dot(b.position, n)));
    let depth: Vec<f64> = planes.iter().map(|p| dot(p.position, n)).collect();
    let mut warnings = Vec::new();
    if planes.len() > 2 {
        let mut steps: Vec<f64> = depth.windows(2).map(|w| w[1] - w[0]).collect();
        let mut sorted = steps.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        for (k, s) in steps.iter_mut().enumerate() {
            if *s < 1e-3 {
                warnings.push(format!(
                    "duplicate slice position {:.2} mm along the normal",
                    depth[k]
                ));
            } else if *s > 1.5 * median {
                warnings.push(format!(
                    "missing slice(s) between {:.2} and {:.2} mm (step {:.2} vs {:.2})",
                    depth[k],
                    depth[k + 1],
                    s,
                    median
                ));
            } else if (*s - median).abs() > 0.1 * median {
                warnings.push(format!(
                    "uneven slice spacing: {:.2} mm where most are {:.2}",
                    s, median
                ));
            }
        }
    }
    // Stack centre: midpoint of the acquired planes, in-plane centre of the middle plane.
    let mid = &planes[planes.len() / 2];
    let half_h = 0.5 * (mid.rows as f64 - 1.0) * mid.pixel_spacing[0];
    let half_w = 0.5 * (mid.columns as f64 - 1.0) * mid.pixel_spacing[1];
    let centre_depth = 0.5 * (depth[0] + depth[depth.len() - 1]);
    let in_plane_centre =
        [0, 1, 2].map(|i| mid.position[i] + half_w * row_dir[i] + half_h * col_dir[i]);
    let centre =
        [0, 1, 2].map(|i| in_plane_centre[i] + (centre_depth - dot(mid.position, n)) * n[i]);

    let size = grid.size;
    let mut data = Vec::with_capacity(grid.slices * size * size);
    for s in 0..grid.slices {
        let offset = (s as f64 - 0.5 * (grid.slices as f64 - 1.0)) * grid.slice_spacing_mm;
        let d = centre_depth + offset;
        // Bracketing planes along the normal; outside the stack, the nearest plane.
        let k = depth.partition_point(|&x| x < d);
        let (a, b, w) = if k == 0 {
            (0, 0, 0.0)
        } else if k >= depth.len() {
            (depth.len() - 1, depth.len() - 1, 0.0)
        } else {
            let span = depth[k] - depth[k - 1];
            (
                k - 1,
                k,
                if span > 1e-6 {
                    (d - depth[k - 1]) / span
                } else {
                    0.0
                },
            )
        };
        if d < depth[0] - 1.0 || d > depth[depth.len() - 1] + 1.0 {
            warnings.push(format!(
                "plane {s} at {offset:+.1} mm lies outside the acquired stack; nearest slice used"
            ));
        }
        // Row and column directions are orthonormal and shared by all planes, so a source
        // plane's (row, col) coordinate depends on the output row only and on the output column
        // only: tabulate both once per plane instead of projecting every pixel.
        let half = 0.5 * (size as f64 - 1.0) * grid.pixel_mm;
        let corner =
            [0, 1, 2].map(|x| centre[x] - half * row_dir[x] - half * col_dir[x] + offset * n[x]);
        let mut plane_out = vec![0f32; size * size];
        for (pl, weight) in [(&planes[a], 1.0 - w), (&planes[b], w)] {
            if weight <= 0.0 {
                continue;
            }
            let rel = [
                corner[0] - pl.position[0],
                corner[1] - pl.position[1],
                corner[2] - pl.position[2],
            ];
            let taps = |start: f64, step: f64, len: usize| -> Vec<Option<(usize, usize, f32)>> {
                (0..size)
                    .map(|k| {
                        let x = start + k as f64 * step;
                        if x < 0.0 || x > (len - 1) as f64 {
                            return None;
                        }
                        let lo = x.floor() as usize;
                        Some((lo, (lo + 1).min(len - 1), (x - lo as f64) as f32))
                    })
                    .collect()
            };
            let rows = taps(
                dot(rel, col_dir) / pl.pixel_spacing[0],
                grid.pixel_mm / pl.pixel_spacing[0],
                pl.rows,
            );
            let cols = taps(
                dot(rel, row_dir) / pl.pixel_spacing[1],
                grid.pixel_mm / pl.pixel_spacing[1],
                pl.columns,
            );
            let weight = weight as f32;
            for (i, r) in rows.iter().enumerate() {
                let Some((r0, r1, fr)) = *r else { continue };
                let (top, bottom) = (&pl.data[r0 * pl.columns..], &pl.data[r1 * pl.columns..]);
                let out = &mut plane_out[i * size..(i + 1) * size];
                for (o, c) in out.iter_mut().zip(&cols) {
                    let Some((c0, c1, fc)) = *c else { continue };
                    let t = top[c0] + (top[c1] - top[c0]) * fc;
                    let btm = bottom[c0] + (bottom[c1] - bottom[c0]) * fc;
                    *o += weight * (t + (btm - t) * fr);
                }
            }
        }
        data.extend_from_slice(&plane_out);
    }
    normalise(&mut data, clip);
    let geometry = StackGeometry {
        centre,
        row_dir,
        col_dir,
        normal: n,
        planes: planes
            .into_iter()
            .zip(&depth)
            .map(|(p, &depth)| SourcePlane {
                depth,
                rows: p.rows,
                columns: p.columns,
                position: p.position,
                pixel_spacing: p.pixel_spacing,
                source: p.source,
            })
            .collect(),
    };
    Ok(Stack {
        grid,
        data,
        warnings,
        geometry,
    })
}

/// Clips to the given percentiles and z-scores in place.
pub fn normalise(data: &mut [f32], (lo_pct, hi_pct): (f64, f64)) {
    if data.is_empty() {
        return;
    }
    // Two selections instead of a sort: O(n) for the percentiles.
    let mut scratch = data.to_vec();
    let last = scratch.len() - 1;
    let mut at = |p: f64| {
        let k = ((p / 100.0) * last as f64).round() as usize;
        *scratch
            .select_nth_unstable_by(k.min(last), f32::total_cmp)
            .1
    };
    let (lo, hi) = (at(lo_pct), at(hi_pct));
    let n = data.len() as f64;
    let mut sum = 0.0;
    for v in data.iter_mut() {
        *v = v.clamp(lo, hi);
        sum += *v as f64;
    }
    let mean = sum / n;
    let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt().max(1e-6);
    for v in data.iter_mut() {
        *v = ((*v as f64 - mean) / sd) as f32;
    }
}

/// Clinical vector layout (model card `clinical_layout`): age/scale, age missing, male, female,
/// sex missing, cervical, thoracic, lumbar, region missing.
pub const CLINICAL_LAYOUT: [&str; 9] = [
    "age_over_scale",
    "age_missing",
    "sex_male",
    "sex_female",
    "sex_missing",
    "region_cervical",
    "region_thoracic",
    "region_lumbar",
    "region_missing",
];

/// The header values the clinical vector is made from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClinicalHeader {
    pub patient_age: Option<String>,
    pub patient_birth_date: Option<String>,
    pub study_date: Option<String>,
    pub patient_sex: Option<String>,
    pub body_part: Option<String>,
    /// StudyDescription and series descriptions, for the region when BodyPartExamined says SPINE.
    pub descriptions: Vec<String>,
}

/// Age in years from PatientAge (`nnnY|M|W|D`), else StudyDate − PatientBirthDate.
pub fn age_years(h: &ClinicalHeader) -> Option<f64> {
    if let Some(a) = h
        .patient_age
        .as_deref()
        .map(str::trim)
        .filter(|a| a.len() == 4)
    {
        let (num, unit) = a.split_at(3);
        if let Ok(n) = num.parse::<f64>() {
            let years = match unit {
                "Y" => Some(n),
                "M" => Some(n / 12.0),
                "W" => Some(n * 7.0 / 365.25),
                "D" => Some(n / 365.25),
                _ => None,
            };
            if years.is_some() {
                return years;
            }
        }
    }
    let date = |s: &str| -> Option<(i32, u32, u32)> {
        let s = s.trim();
        if s.len() != 8 {
            return None;
        }
        Some((
            s[0..4].parse().ok()?,
            s[4..6].parse().ok()?,
            s[6..8].parse().ok()?,
        ))
    };
    let (sy, sm, sd) = date(h.study_date.as_deref()?)?;
    let (by, bm, bd) = date(h.patient_birth_date.as_deref()?)?;
    let mut years = sy - by;
    if (sm, sd) < (bm, bd) {
        years -= 1;
    }
    (years >= 0).then_some(years as f64)
}

/// Spine region from BodyPartExamined, else from description words.
pub fn region(h: &ClinicalHeader) -> Option<usize> {
    match h
        .body_part
        .as_deref()
        .map(|s| s.trim().to_uppercase())
        .as_deref()
    {
        Some("CSPINE") | Some("NECK") => return Some(0),
        Some("TSPINE") | Some("CHEST") => return Some(1),
        Some("LSPINE") | Some("SSPINE") | Some("ABDOMEN") => return Some(2),
        _ => {}
    }
    let words = h.descriptions.join(" ").to_lowercase();
    let any = |ws: &[&str]| ws.iter().any(|w| words.contains(w));
    if any(&["cervical", "c-spine", "cspine", "c spine"]) {
        Some(0)
    } else if any(&["thoracic", "t-spine", "tspine", "dorsal"]) {
        Some(1)
    } else if any(&["lumbar", "l-spine", "lspine", "lumbosacral"]) {
        Some(2)
    } else {
        None
    }
}

/// The clinical vector in [`CLINICAL_LAYOUT`] order.
pub fn clinical_vector(h: &ClinicalHeader, p: &PreprocessParams) -> [f32; 9] {
    let mut v = [0f32; 9];
    match age_years(h) {
        Some(a) => v[0] = (a / p.age_scale_years) as f32,
        None => {
            v[0] = (p.default_age_years / p.age_scale_years) as f32;
            v[1] = 1.0;
        }
    }
    match h.patient_sex.as_deref().map(str::trim) {
        Some("M") => v[2] = 1.0,
        Some("F") => v[3] = 1.0,
        _ => v[4] = 1.0,
    }
    match region(h) {
        Some(r) => v[5 + r] = 1.0,
        None => v[8] = 1.0,
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(z: f64, value: f32) -> Plane {
        // Axial 20 × 20 at 1 mm, centred on x = y = 0.
        Plane {
            rows: 20,
            columns: 20,
            data: (0..400).map(|i| value + (i % 20) as f32).collect(),
            position: [-9.5, -9.5, z],
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            pixel_spacing: [1.0, 1.0],
            source: PlaneSource::default(),
        }
    }

    #[test]
    fn slices_are_ordered_by_position_and_interpolated() {
        let grid = Grid {
            slices: 3,
            slice_spacing_mm: 2.0,
            size: 4,
            pixel_mm: 1.0,
        };
        // Given out of order; z = 0, 4, 8 with values 0, 40, 80: planes at z = 2, 4, 6.
        let planes = vec![plane(8.0, 80.0), plane(0.0, 0.0), plane(4.0, 40.0)];
        let s = resample("t", planes, grid, (0.0, 100.0)).expect("resample");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // z-scored, so compare differences: mean of plane k grows by 20 per plane.
        let mean = |k: usize| s.data[k * 16..(k + 1) * 16].iter().sum::<f32>() / 16.0;
        assert!(mean(0) < mean(1) && mean(1) < mean(2));
        let d1 = mean(1) - mean(0);
        let d2 = mean(2) - mean(1);
        assert!((d1 - d2).abs() < 1e-3);
    }

    #[test]
    fn a_point_lands_where_its_patient_position_says() {
        // Axial planes at z = 0, 4, 8; pixel (r, c) sits at x = c − 9.5, y = r − 9.5. One bright
        // voxel at (r, c) = (7, 12), i.e. patient (2.5, −2.5, 4).
        let mut planes = vec![plane(0.0, 0.0), plane(4.0, 0.0), plane(8.0, 0.0)];
        for p in &mut planes {
            p.data.iter_mut().for_each(|v| *v = 0.0);
        }
        planes[1].data[7 * 20 + 12] = 100.0;
        // Output pixel (i, j) sits at x = (j − 4.5)·2, y = (i − 4.5)·2 around the centre (0, 0):
        // the nearest to (2.5, −2.5) is (i, j) = (3, 6).
        let grid = Grid {
            slices: 3,
            slice_spacing_mm: 4.0,
            size: 10,
            pixel_mm: 2.0,
        };
        let s = resample("t", planes, grid, (0.0, 100.0)).expect("resample");
        let middle = &s.data[100..200];
        let best = (0..100)
            .max_by(|&a, &b| middle[a].total_cmp(&middle[b]))
            .unwrap_or(0);
        assert_eq!((best / 10, best % 10), (3, 6));
        // The outer planes (z = 0 and 8) hold nothing.
        assert!(s.data[..100].iter().all(|&v| v == s.data[0]));
    }

    #[test]
    fn gaps_and_uneven_spacing_are_reported() {
        let grid = Grid {
            slices: 1,
            slice_spacing_mm: 1.0,
            size: 4,
            pixel_mm: 1.0,
        };
        let planes = vec![
            plane(0.0, 0.0),
            plane(4.0, 0.0),
            plane(8.0, 0.0),
            plane(16.0, 0.0),
            plane(20.0, 0.0),
        ];
        let s = resample("t", planes, grid, (0.0, 100.0)).expect("resample");
        assert!(
            s.warnings.iter().any(|w| w.contains("missing slice")),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn normalised_stack_has_zero_mean_unit_variance() {
        let mut d: Vec<f32> = (0..1000).map(|x| (x as f32).sqrt()).collect();
        normalise(&mut d, (0.5, 99.5));
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / d.len() as f32;
        assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3);
    }

    #[test]
    fn clinical_vector_handles_ages_units_and_missing_values() {
        let p = PreprocessParams::default();
        let h = ClinicalHeader {
            patient_age: Some("045Y".into()),
            patient_sex: Some("F".into()),
            body_part: Some("TSPINE".into()),
            ..Default::default()
        };
        assert_eq!(
            clinical_vector(&h, &p),
            [0.45, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        );
        let h = ClinicalHeader {
            patient_birth_date: Some("19800615".into()),
            study_date: Some("20250614".into()),
            body_part: Some("SPINE".into()),
            descriptions: vec!["MRI LUMBAR SPINE".into()],
            ..Default::default()
        };
        let v = clinical_vector(&h, &p);
        assert!((v[0] - 0.44).abs() < 1e-6, "{v:?}");
        assert_eq!(&v[1..], &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
        let v = clinical_vector(&ClinicalHeader::default(), &p);
        assert_eq!(v, [0.5, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(
            age_years(&ClinicalHeader {
                patient_age: Some("018M".into()),
                ..Default::default()
            }),
            Some(1.5)
        );
    }
}
