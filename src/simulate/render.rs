//! Acquisition: each series is rendered from the 3-D patient on its own slice grid.
//!
//! A pixel averages three samples through the slice thickness (partial volume), takes its
//! tissue's signal from the series' [`SignalTable`], applies the fat suppression of the series
//! (spatially varying for chemical fat-sat), the posterior spine-coil sensitivity, and Rician
//! noise (the magnitude of complex Gaussian noise), then is stored as a 12-bit integer with a
//! per-series scale, as scanners do.

use super::anatomy::Anatomy;
use super::protocol::{FatSuppression, Plane, SeriesProtocol};
use super::tissue::{SignalTable, Tissue, TissueId, TissueTable};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

pub type Vec3 = [f32; 3];

fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn scale(a: Vec3, s: f32) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
pub fn dot(a: Vec3, b: Vec3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Rotates `v` about unit axis `k` by `angle` radians (Rodrigues).
fn rotate(v: Vec3, k: Vec3, angle: f32) -> Vec3 {
    let (s, c) = angle.sin_cos();
    let kxv = cross(k, v);
    let kdv = dot(k, v);
    [0, 1, 2].map(|i| v[i] * c + kxv[i] * s + k[i] * kdv * (1.0 - c))
}

/// A stack of parallel slices: the DICOM image-plane geometry of one or more instances.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceStack {
    pub plane: Plane,
    /// Direction of increasing column index (first triplet of ImageOrientationPatient).
    pub row_dir: Vec3,
    /// Direction of increasing row index (second triplet).
    pub col_dir: Vec3,
    /// row_dir × col_dir; slices step along it.
    pub normal: Vec3,
    /// Centre of the first slice.
    pub first_centre: Vec3,
    pub slices: usize,
    pub spacing: f32,
    pub thickness: f32,
    pub rows: usize,
    pub cols: usize,
    /// Pixel size in mm: (between rows, between columns), as in PixelSpacing.
    pub pixel: (f32, f32),
}

impl SliceStack {
    /// A stack of `slices` slices centred on `centre`, in `plane`, rotated by `tilt` (radians)
    /// about the stack's column axis and by `roll` about its row axis.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plane: Plane,
        centre: Vec3,
        slices: usize,
        spacing: f32,
        thickness: f32,
        matrix: usize,
        fov: f32,
        tilt: f32,
        roll: f32,
    ) -> Self {
        let (row, col) = match plane {
            Plane::Sagittal => ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0]),
            Plane::Coronal => ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0]),
            Plane::Axial => ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        };
        // Tilt about the column axis swings the normal within the row plane (yaw for sagittal);
        // roll about the row axis swings it towards the column axis.
        let row = rotate(row, col, tilt);
        let col = rotate(col, row, roll);
        let normal = cross(row, col);
        let first_centre = add(
            centre,
            scale(normal, -0.5 * (slices as f32 - 1.0) * spacing),
        );
        let px = fov / matrix as f32;
        SliceStack {
            plane,
            row_dir: row,
            col_dir: col,
            normal,
            first_centre,
            slices,
            spacing,
            thickness,
            rows: matrix,
            cols: matrix,
            pixel: (px, px),
        }
    }

    /// ImagePositionPatient of slice `k`: the centre of its first (top-left) pixel.
    pub fn position(&self, k: usize) -> Vec3 {
        let c = add(
            self.first_centre,
            scale(self.normal, k as f32 * self.spacing),
        );
        let half_w = 0.5 * (self.cols as f32 - 1.0) * self.pixel.1;
        let half_h = 0.5 * (self.rows as f32 - 1.0) * self.pixel.0;
        add(
            c,
            add(scale(self.row_dir, -half_w), scale(self.col_dir, -half_h)),
        )
    }

    /// Patient position of pixel (row, col) of slice `k`.
    pub fn point(&self, k: usize, row: usize, col: usize) -> Vec3 {
        add(
            self.position(k),
            add(
                scale(self.row_dir, col as f32 * self.pixel.1),
                scale(self.col_dir, row as f32 * self.pixel.0),
            ),
        )
    }

    pub fn centre(&self) -> Vec3 {
        add(
            self.first_centre,
            scale(self.normal, 0.5 * (self.slices as f32 - 1.0) * self.spacing),
        )
    }
}

/// Where the receive coil sits and how its sensitivity falls off.
#[derive(Clone, Copy, Debug)]
pub struct Coil {
    /// Patient y of the posterior coil surface.
    pub y_surface: f32,
    pub falloff: f32,
}

impl Coil {
    /// Smooth multiplicative sensitivity: strong at the back, weaker anteriorly, with a gentle
    /// ripple between coil elements along z.
    pub fn sensitivity(&self, p: Vec3) -> f32 {
        let depth = (self.y_surface - p[1]).max(0.0);
        (0.3 + 0.7 * (-depth / self.falloff).exp()) * (1.0 + 0.08 * (p[2] * 0.05).cos())
    }
}

/// The rendered pixels of one series, stored values row-major per slice.
#[derive(Clone, Debug)]
pub struct SeriesPixels {
    pub stacks: Vec<SliceStack>,
    pub values: Vec<u16>,
    /// Real-world value = stored × slope + intercept.
    pub slope: f64,
    pub intercept: f64,
    pub window: (f64, f64),
    /// Stored value per unit of simulated signal.
    pub gain: f32,
}

/// Largest stored value; 12 of 16 bits.
pub const MAX_STORED: u16 = 4095;

/// Everything a series render needs besides its stacks.
pub struct RenderInput<'a> {
    pub anatomy: &'a Anatomy,
    pub tissues: &'a TissueTable,
    pub protocol: &'a SeriesProtocol,
    pub coil: Coil,
    pub snr: f32,
    pub noise_seed: u64,
}

/// Signal the noise level is referred to: a bright-ish soft tissue of this series.
fn reference_signal(table: &SignalTable) -> f32 {
    [
        Tissue::Cord,
        Tissue::Muscle,
        Tissue::Csf,
        Tissue::Fat,
        Tissue::Marrow,
    ]
    .iter()
    .map(|t| table.signal(t.id(), 1.0))
    .fold(0.0, f32::max)
        * 0.6
}

/// Noise-free signal at a pixel: the mean over samples through the slice.
fn pixel_signal(
    input: &RenderInput<'_>,
    table: &SignalTable,
    stack: &SliceStack,
    p: Vec3,
    iso: Vec3,
    half_fov: f32,
) -> f32 {
    let fat_residual = match input.protocol.fat {
        FatSuppression::None | FatSuppression::Stir => 1.0,
        FatSuppression::DixonWater { residual } => residual,
        FatSuppression::Chemical { residual, edge } => {
            let d = [p[0] - iso[0], p[1] - iso[1], p[2] - iso[2]];
            let r = (dot(d, d).sqrt() / half_fov).min(1.5);
            (residual + edge * r.powi(4)).min(1.0)
        }
    };
    let offsets = [-stack.thickness / 3.0, 0.0, stack.thickness / 3.0];
    let mut s = 0.0;
    for t in offsets {
        let q = add(p, scale(stack.normal, t));
        let id: TissueId = input.anatomy.tissue_at(q);
        s += table.signal(id, fat_residual);
    }
    s / offsets.len() as f32 * input.coil.sensitivity(p)
}

/// The tissue a pixel shows unmixed — every sample through its slice and across its area
/// agrees — or `None` at a boundary. Tests use it to measure tissue signal in written images.
pub fn pure_tissue(
    anatomy: &Anatomy,
    stack: &SliceStack,
    k: usize,
    row: usize,
    col: usize,
) -> Option<TissueId> {
    let p = stack.point(k, row, col);
    let first = anatomy.tissue_at(p);
    let (hr, hc) = (0.5 * stack.pixel.0, 0.5 * stack.pixel.1);
    for t in [-stack.thickness / 3.0, 0.0, stack.thickness / 3.0] {
        for (dr, dc) in [(0.0, 0.0), (hr, 0.0), (-hr, 0.0), (0.0, hc), (0.0, -hc)] {
            let q = add(
                p,
                add(
                    scale(stack.normal, t),
                    add(scale(stack.col_dir, dr), scale(stack.row_dir, dc)),
                ),
            );
            if anatomy.tissue_at(q) != first {
                return None;
            }
        }
    }
    Some(first)
}

/// Renders every stack of a series, slices in parallel; identical output for any thread count
/// because each slice draws its noise from its own seeded generator.
pub fn render_series(input: &RenderInput<'_>, stacks: Vec<SliceStack>) -> SeriesPixels {
    let table = SignalTable::new(
        input.tissues,
        input.protocol.weighting,
        input.protocol.contrast,
    );
    // Noise grows with smaller voxels and shrinks with field, thickness and averages.
    let stack0 = &stacks[0];
    let voxel = stack0.pixel.0 * stack0.pixel.1 * stack0.thickness / (0.75 * 0.75 * 3.5);
    let snr = input.snr * input.tissues.field.tesla().powf(0.5) / 1.5f32.sqrt()
        * voxel.sqrt()
        * input.protocol.averages.sqrt();
    let sigma = reference_signal(&table) / snr.max(1.0);
    let slices: Vec<(usize, usize)> = stacks
        .iter()
        .enumerate()
        .flat_map(|(si, s)| (0..s.slices).map(move |k| (si, k)))
        .collect();
    let float_slices: Vec<Vec<f32>> = slices
        .par_iter()
        .enumerate()
        .map(|(n, &(si, k))| {
            let stack = &stacks[si];
            let iso = stack.centre();
            let half_fov = 0.5 * stack.rows as f32 * stack.pixel.0;
            let mut rng = ChaCha8Rng::seed_from_u64(
                input.noise_seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            let mut out = Vec::with_capacity(stack.rows * stack.cols);
            for row in 0..stack.rows {
                for col in 0..stack.cols {
                    let p = stack.point(k, row, col);
                    let s = pixel_signal(input, &table, stack, p, iso, half_fov);
                    let n1: f32 = StandardNormal.sample(&mut rng);
                    let n2: f32 = StandardNormal.sample(&mut rng);
                    let re = s + sigma * n1;
                    let im = sigma * n2;
                    out.push((re * re + im * im).sqrt());
                }
            }
            out
        })
        .collect();
    // Scanner-style scaling: the 99.8th percentile maps to ~75 % of the 12-bit range.
    let mut sample: Vec<f32> = float_slices
        .iter()
        .flat_map(|s| s.iter().step_by(7).copied())
        .collect();
    let idx = ((sample.len() as f32 * 0.998) as usize).min(sample.len().saturating_sub(1));
    let p998 = if sample.is_empty() {
        1.0
    } else {
        *sample.select_nth_unstable_by(idx, f32::total_cmp).1
    };
    let gain = 3000.0 / p998.max(1e-6);
    let values: Vec<u16> = float_slices
        .iter()
        .flatten()
        .map(|&s| (s * gain).round().clamp(0.0, MAX_STORED as f32) as u16)
        .collect();
    let centre = 1500.0f64;
    SeriesPixels {
        stacks,
        values,
        slope: 1.0,
        intercept: 0.0,
        window: (centre, 3000.0),
        gain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_normals_and_steps() {
        let s = SliceStack::new(
            Plane::Sagittal,
            [0.0, 0.0, 0.0],
            15,
            3.6,
            3.0,
            320,
            300.0,
            0.1,
            0.05,
        );
        assert!(
            s.normal[0].abs() > 0.9,
            "sagittal normal x-dominant: {:?}",
            s.normal
        );
        let d = [0, 1, 2].map(|i| s.position(1)[i] - s.position(0)[i]);
        assert!((dot(d, s.normal) - 3.6).abs() < 1e-4);
        assert!(dot(s.row_dir, s.col_dir).abs() < 1e-6);
        let a = SliceStack::new(
            Plane::Axial,
            [0.0, 0.0, 0.0],
            20,
            4.0,
            4.0,
            256,
            200.0,
            0.0,
            0.1,
        );
        assert!(a.normal[2].abs() > 0.9);
        let c = a.centre();
        assert!(c.iter().all(|x| x.abs() < 1e-3), "stack centred: {c:?}");
    }

    #[test]
    fn coil_is_stronger_at_the_back() {
        let coil = Coil {
            y_surface: 80.0,
            falloff: 120.0,
        };
        assert!(coil.sensitivity([0.0, 70.0, 0.0]) > coil.sensitivity([0.0, -50.0, 0.0]));
    }
}
