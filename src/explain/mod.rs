//! Explanation maps: which region of each sequence drove the model's call.
//!
//! The method is **occlusion sensitivity** (Zeiler & Fergus 2014): a square patch of one
//! sequence's stack is set to the stack's mean (0 after z-scoring) through all its planes, the
//! whole model runs again, and the drop in the predicted class's probability is that patch's
//! importance. It needs nothing but the model's inputs and outputs, so it works unchanged for
//! any weights a hospital drops in, for every precision and backend the card names, and for
//! graphs we cannot differentiate (tract has no autodiff; a class-activation output would need
//! the card to declare one, which real ISMF-Net weights will not). Its cost is a fixed number
//! of forward runs, spread over the cores with rayon (`Model::run_raw` is thread-safe).
//!
//! Per sequence: a `cells × cells` grid of patches (`patch` pixels, `stride` apart), averaged
//! into a pixel map where patches overlap; the peak is the centre of the pixel block where the
//! map is highest. The plane through the peak is the one whose own occlusion (that patch, that
//! plane only) lowers the probability most. The peak then goes back to the patient through the
//! stack's geometry, and to the acquired slice nearest to it.

pub mod pointing;

use crate::model::{Model, ModelError};
use crate::preprocess::{Grid, ModelInputs, StackGeometry};
use crate::series::SequenceKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::PathBuf;

/// The method name carried in predictions and results.
pub const METHOD: &str = "occlusion-sensitivity";

/// Occlusion settings, in output-grid pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occlusion {
    pub patch: usize,
    pub stride: usize,
}

impl Default for Occlusion {
    /// 32-pixel patches 16 apart: 9 × 9 positions on a 160² grid (56 mm sagittal, 40 mm axial
    /// patches — the size of the lesions the simulator draws), 344 runs a study in all.
    fn default() -> Self {
        Occlusion {
            patch: 32,
            stride: 16,
        }
    }
}

impl Occlusion {
    /// Patch origins along one axis of a `size` grid; the last patch ends at the edge.
    pub fn origins(&self, size: usize) -> Vec<usize> {
        let patch = self.patch.min(size);
        let last = size - patch;
        let mut v: Vec<usize> = (0..=last).step_by(self.stride.max(1)).collect();
        if v.last() != Some(&last) {
            v.push(last);
        }
        v
    }
}

/// The map of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceMap {
    pub kind: SequenceKind,
    pub grid: Grid,
    /// `size × size` pixel map: mean probability drop of the patches covering each pixel.
    pub pixels: Vec<f32>,
    /// Probability drop when only the peak patch of each plane is occluded.
    pub plane_drops: Vec<f32>,
    /// Peak in grid coordinates (plane, row, column), fractional.
    pub peak_grid: [f64; 3],
    /// Peak in patient coordinates (DICOM LPS, mm).
    pub peak_lps: [f64; 3],
    /// The acquired slice nearest to the peak.
    pub source_sop_instance_uid: Option<String>,
    pub source_path: PathBuf,
    pub source_frame: usize,
    pub geometry: StackGeometry,
}

impl SequenceMap {
    /// The map's largest value (the peak's probability drop).
    pub fn max(&self) -> f32 {
        self.pixels.iter().copied().fold(f32::MIN, f32::max)
    }
}

/// Maps for all four sequences, for one class.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// Index into [`crate::model::CLASSES`] of the explained class.
    pub class: usize,
    /// The class's probability on the unoccluded inputs.
    pub base: f32,
    pub maps: Vec<SequenceMap>,
    /// Forward runs spent.
    pub runs: usize,
}

/// What the prediction message carries of one map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakSummary {
    pub sequence: String,
    /// Peak in patient coordinates (DICOM LPS), mm.
    pub peak_lps_mm: [f64; 3],
    /// The source slice through the peak.
    pub sop_instance_uid: Option<String>,
    /// Probability drop of the predicted class when the peak region is occluded.
    pub peak_drop: f32,
}

/// The prediction message's `explanation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplanationSummary {
    pub method: String,
    /// The class explained (the predicted one).
    pub class: String,
    pub patch_px: usize,
    pub stride_px: usize,
    pub sequences: Vec<PeakSummary>,
}

impl Explanation {
    pub fn summary(&self, occlusion: Occlusion) -> ExplanationSummary {
        ExplanationSummary {
            method: METHOD.to_string(),
            class: crate::model::CLASSES[self.class].to_string(),
            patch_px: occlusion.patch,
            stride_px: occlusion.stride,
            sequences: self
                .maps
                .iter()
                .map(|m| PeakSummary {
                    sequence: m.kind.key().to_string(),
                    peak_lps_mm: m.peak_lps.map(|x| (x * 10.0).round() / 10.0),
                    sop_instance_uid: m.source_sop_instance_uid.clone(),
                    peak_drop: m.max(),
                })
                .collect(),
        }
    }
}

/// Occlusion maps of `class` for every sequence of `inputs`, through `model`.
pub fn explain(
    model: &Model,
    inputs: &ModelInputs,
    class: usize,
    occlusion: Occlusion,
) -> Result<Explanation, ModelError> {
    let raw = model.raw_inputs(inputs)?;
    let base = model.run_raw(&raw)?[class];
    // Which raw input holds each sequence.
    let slots: Vec<(usize, SequenceKind)> = inputs
        .stacks
        .iter()
        .filter_map(|(kind, _)| model.input_index(*kind).map(|i| (i, *kind)))
        .collect();
    let drop_with = |slot: usize, occlude: &dyn Fn(&mut [f32])| -> Result<f32, ModelError> {
        let mut data = raw[slot].to_vec();
        occlude(&mut data);
        let inputs: Vec<Cow<[f32]>> = raw
            .iter()
            .enumerate()
            .map(|(k, r)| {
                if k == slot {
                    Cow::Owned(std::mem::take(&mut data))
                } else {
                    Cow::Borrowed(*r)
                }
            })
            .collect();
        Ok(base - model.run_raw(&inputs)?[class])
    };
    let mut maps = Vec::with_capacity(slots.len());
    let mut runs = 1;
    // Stage 1: every patch of every sequence, all at once over the pool.
    let mut jobs = Vec::new();
    for (n, (_, kind)) in slots.iter().enumerate() {
        let grid = stack_of(inputs, *kind).grid;
        let origins = occlusion.origins(grid.size);
        for &r in &origins {
            for &c in &origins {
                jobs.push((n, r, c));
            }
        }
    }
    let drops: Vec<f32> = jobs
        .par_iter()
        .map(|&(n, r, c)| {
            let (slot, kind) = slots[n];
            let grid = stack_of(inputs, kind).grid;
            drop_with(slot, &|d| fill(d, &grid, None, r, c, occlusion.patch))
        })
        .collect::<Result<_, _>>()?;
    runs += jobs.len();
    // Pixel maps and their peaks.
    let mut peaks = Vec::new();
    for (n, (_, kind)) in slots.iter().enumerate() {
        let grid = stack_of(inputs, *kind).grid;
        let size = grid.size;
        let patch = occlusion.patch.min(size);
        let (mut sum, mut count) = (vec![0f32; size * size], vec![0u32; size * size]);
        for ((_, r, c), d) in jobs.iter().zip(&drops).filter(|((m, _, _), _)| *m == n) {
            for i in *r..r + patch {
                for j in *c..c + patch {
                    sum[i * size + j] += d;
                    count[i * size + j] += 1;
                }
            }
        }
        let pixels: Vec<f32> = sum
            .iter()
            .zip(&count)
            .map(|(s, &k)| if k > 0 { s / k as f32 } else { 0.0 })
            .collect();
        let (pi, pj) = peak(&pixels, size);
        // The patch, among those covering the peak, with the largest drop: the one whose
        // planes are compared next.
        let at = |x: f64| x.round().clamp(0.0, (size - 1) as f64) as usize;
        let (ai, aj) = (at(pi), at(pj));
        let best = jobs
            .iter()
            .zip(&drops)
            .filter(|((m, r, c), _)| {
                *m == n && (*r..r + patch).contains(&ai) && (*c..c + patch).contains(&aj)
            })
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|((_, r, c), _)| (*r, *c))
            .unwrap_or((0, 0));
        peaks.push((pixels, pi, pj, best));
    }
    // Stage 2: the best patch, one plane at a time, to find the plane through the peak.
    let plane_jobs: Vec<(usize, usize)> = slots
        .iter()
        .enumerate()
        .flat_map(|(n, (_, kind))| (0..stack_of(inputs, *kind).grid.slices).map(move |s| (n, s)))
        .collect();
    let plane_drops: Vec<f32> = plane_jobs
        .par_iter()
        .map(|&(n, s)| {
            let (slot, kind) = slots[n];
            let grid = stack_of(inputs, kind).grid;
            let (r, c) = peaks[n].3;
            drop_with(slot, &|d| fill(d, &grid, Some(s), r, c, occlusion.patch))
        })
        .collect::<Result<_, _>>()?;
    runs += plane_jobs.len();
    for (n, ((_, kind), (pixels, pi, pj, _))) in slots.iter().zip(peaks).enumerate() {
        let stack = stack_of(inputs, *kind);
        let drops: Vec<f32> = plane_jobs
            .iter()
            .zip(&plane_drops)
            .filter(|((m, _), _)| *m == n)
            .map(|(_, d)| *d)
            .collect();
        let s = drops
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(s, _)| s);
        let peak_grid = [s as f64, pi, pj];
        let peak_lps = stack.geometry.point(&stack.grid, s as f64, pi, pj);
        let source = stack.geometry.nearest_plane(peak_lps);
        maps.push(SequenceMap {
            kind: *kind,
            grid: stack.grid,
            pixels,
            plane_drops: drops,
            peak_grid,
            peak_lps,
            source_sop_instance_uid: source.and_then(|p| p.source.sop_instance_uid.clone()),
            source_path: source.map(|p| p.source.path.clone()).unwrap_or_default(),
            source_frame: source.map_or(0, |p| p.source.frame),
            geometry: stack.geometry.clone(),
        });
    }
    Ok(Explanation {
        class,
        base,
        maps,
        runs,
    })
}

fn stack_of(inputs: &ModelInputs, kind: SequenceKind) -> &crate::preprocess::Stack {
    &inputs
        .stacks
        .iter()
        .find(|(k, _)| *k == kind)
        .expect("slots are built from the stacks")
        .1
}

/// Sets the patch at (`r`, `c`) to 0 (the z-scored stack's mean) in every plane, or in one.
fn fill(data: &mut [f32], grid: &Grid, plane: Option<usize>, r: usize, c: usize, patch: usize) {
    let size = grid.size;
    let patch = patch.min(size);
    for s in 0..grid.slices {
        if plane.is_some_and(|p| p != s) {
            continue;
        }
        for i in r..r + patch {
            let row = (s * size + i) * size;
            data[row + c..row + c + patch].fill(0.0);
        }
    }
}

/// Centre of the pixels where the map is highest (a block where patches overlap alike).
fn peak(map: &[f32], size: usize) -> (f64, f64) {
    let max = map.iter().copied().fold(f32::MIN, f32::max);
    let (mut si, mut sj, mut k) = (0.0, 0.0, 0.0);
    for (n, v) in map.iter().enumerate() {
        if *v >= max {
            si += (n / size) as f64;
            sj += (n % size) as f64;
            k += 1.0;
        }
    }
    if k == 0.0 {
        let c = 0.5 * (size as f64 - 1.0);
        return (c, c);
    }
    (si / k, sj / k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_cover_the_grid_to_its_edge() {
        let o = Occlusion::default();
        assert_eq!(o.origins(160), vec![0, 16, 32, 48, 64, 80, 96, 112, 128]);
        let o = Occlusion {
            patch: 40,
            stride: 25,
        };
        assert_eq!(o.origins(100), vec![0, 25, 50, 60]);
    }

    #[test]
    fn fill_touches_the_patch_only_and_the_peak_is_the_block_centre() {
        let grid = Grid {
            slices: 2,
            slice_spacing_mm: 1.0,
            size: 8,
            pixel_mm: 1.0,
        };
        let mut d = vec![1f32; 2 * 64];
        fill(&mut d, &grid, Some(1), 2, 4, 3);
        assert_eq!(d.iter().filter(|v| **v == 0.0).count(), 9);
        assert_eq!(d[64 + 2 * 8 + 4], 0.0);
        assert_eq!(d[2 * 8 + 4], 1.0, "plane 0 untouched");
        let mut map = vec![0f32; 64];
        for i in 2..4 {
            for j in 5..8 {
                map[i * 8 + j] = 0.5;
            }
        }
        assert_eq!(peak(&map, 8), (2.5, 6.0));
    }
}
