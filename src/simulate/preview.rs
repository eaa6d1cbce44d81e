//! A PNG montage so a person can see what was simulated: one row per study with the
//! mid-sagittal T1W, T2W and T2FS slices and the axial T2W slice through the lesion.

use super::protocol::SeriesRole;
use super::render::{dot, SeriesPixels};
use super::study::Study;
use image::{imageops, GrayImage, Luma};
use std::path::Path;

/// Edge of one montage tile in pixels.
pub const TILE: u32 = 256;

/// The four tiles of one study, in montage order.
pub type PreviewRow = Vec<GrayImage>;

/// Windows a slice to its 1st–99.5th percentile and scales it into a square tile.
fn tile(pixels: &SeriesPixels, stack: usize, slice: usize) -> GrayImage {
    let s = &pixels.stacks[stack];
    let n = s.rows * s.cols;
    let offset: usize = pixels.stacks[..stack]
        .iter()
        .map(|t| t.slices * n)
        .sum::<usize>()
        + slice * n;
    let values = &pixels.values[offset..offset + n];
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let lo = sorted[n / 100] as f32;
    let hi = (sorted[(n * 995) / 1000] as f32).max(lo + 1.0);
    let img = GrayImage::from_fn(s.cols as u32, s.rows as u32, |x, y| {
        let v = values[y as usize * s.cols + x as usize] as f32;
        Luma([(((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0) as u8])
    });
    imageops::resize(&img, TILE, TILE, imageops::FilterType::Triangle)
}

/// Picks the preview tiles from a study's rendered series (`None` if a required one is absent).
pub fn preview_row(study: &Study, rendered: &[(SeriesRole, &SeriesPixels)]) -> Option<PreviewRow> {
    let find = |role| rendered.iter().find(|(r, _)| *r == role).map(|(_, p)| *p);
    let mut row = Vec::new();
    for role in [SeriesRole::SagT1w, SeriesRole::SagT2w, SeriesRole::SagT2fs] {
        let p = find(role)?;
        row.push(tile(p, 0, p.stacks[0].slices / 2));
    }
    let ax = find(SeriesRole::AxT2w)?;
    let s = &ax.stacks[0];
    let target = dot(study.lesion_centre(), s.normal);
    let k = (0..s.slices)
        .min_by(|&a, &b| {
            let da = (dot(s.position(a), s.normal) - target).abs();
            let db = (dot(s.position(b), s.normal) - target).abs();
            da.total_cmp(&db)
        })
        .unwrap_or(0);
    row.push(tile(ax, 0, k));
    Some(row)
}

/// Writes the montage of `rows` to `path`.
pub fn write_montage(path: &Path, rows: &[PreviewRow]) -> Result<(), image::ImageError> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut out = GrayImage::new((cols * TILE).max(1), (rows.len() as u32 * TILE).max(1));
    for (r, row) in rows.iter().enumerate() {
        for (c, t) in row.iter().enumerate() {
            imageops::replace(
                &mut out,
                t,
                (c as u32 * TILE) as i64,
                (r as u32 * TILE) as i64,
            );
        }
    }
    out.save(path)
}
