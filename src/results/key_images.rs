//! The key-image montage: for each sequence, the acquired slice through its explanation peak,
//! drawn from the original DICOM pixels at native resolution (window from the image's own 1st
//! and 99th percentiles), the map over it in viridis (perceptually uniform, readable in grey and
//! by most colour-vision deficiencies) with a colour bar, the five probabilities as labelled
//! bars, the model, and the banner. No patient identity is drawn: the PNG travels over MQTT,
//! where the PHI policy rules.

use super::inputs::ResultsError;
use crate::explain::{Explanation, SequenceMap};
use crate::model::{Probabilities, CLASSES};
use crate::pixels;
use crate::preprocess::SourcePlane;
use image::{Rgb, RgbImage};

/// The banner every key image carries.
pub const BANNER: &str = "AI generated — not for diagnostic use";
/// The banner in DICOM text, which keeps to the default (ASCII) repertoire so that it is valid
/// whatever Specific Character Set the copied patient module declares.
pub const BANNER_ASCII: &str = "AI generated - not for diagnostic use";

/// Full names of [`CLASSES`], for labels.
pub const CLASS_NAMES: [&str; 5] = [
    "schwannoma",
    "meningioma",
    "astrocytoma",
    "ependymoma",
    "metastasis",
];

/// One rendered source slice.
#[derive(Clone, Debug)]
pub struct KeySlice {
    pub sequence: &'static str,
    pub sop_instance_uid: Option<String>,
    pub path: std::path::PathBuf,
    pub frame: usize,
}

/// The montage and the slices it shows.
#[derive(Clone, Debug)]
pub struct KeyImages {
    pub image: RgbImage,
    pub slices: Vec<KeySlice>,
}

impl KeyImages {
    /// The montage as PNG within `limit` bytes: at native resolution when it fits (it does for
    /// matrices up to 384), else scaled down in steps (the DICOM SC keeps native resolution).
    /// Returns the bytes and the scale used.
    pub fn png_within(&self, limit: usize) -> Result<(Vec<u8>, f32), ResultsError> {
        let mut bytes = encode_png(&self.image)?;
        for scale in [0.75f32, 0.5] {
            if bytes.len() <= limit {
                return Ok((bytes, if scale == 0.75 { 1.0 } else { 0.75 }));
            }
            let (w, h) = (
                (self.image.width() as f32 * scale) as u32,
                (self.image.height() as f32 * scale) as u32,
            );
            let small =
                image::imageops::resize(&self.image, w, h, image::imageops::FilterType::Triangle);
            bytes = encode_png(&small)?;
        }
        Ok((bytes, 0.5))
    }

    /// The montage as PNG bytes at native resolution.
    pub fn png(&self) -> Result<Vec<u8>, ResultsError> {
        encode_png(&self.image)
    }
}

/// PNG at deflate's best compression.
fn encode_png(image: &RgbImage) -> Result<Vec<u8>, ResultsError> {
    {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        let mut out = Vec::new();
        let encoder =
            PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive);
        image
            .write_with_encoder(encoder)
            .map_err(|e| ResultsError::Render {
                series: "montage".into(),
                reason: e.to_string(),
            })?;
        Ok(out)
    }
}

/// What the header line says about the model.
#[derive(Clone, Debug)]
pub struct Caption {
    pub model: String,
    pub version: String,
    pub precision: String,
}

const SCALE: u32 = 2;
const GLYPH: u32 = 8 * SCALE;
const PAD: u32 = 8;
const BG: Rgb<u8> = Rgb([16, 16, 16]);
const FG: Rgb<u8> = Rgb([235, 235, 235]);

/// Renders the montage; a slice that cannot be decoded is an error naming its file.
pub fn render(
    explanation: &Explanation,
    probabilities: &Probabilities,
    caption: &Caption,
    max_voxels: u64,
) -> Result<KeyImages, ResultsError> {
    let mut tiles = Vec::new();
    let mut slices = Vec::new();
    let vmax = explanation
        .maps
        .iter()
        .map(SequenceMap::max)
        .fold(1e-6f32, f32::max);
    for map in &explanation.maps {
        let plane =
            map.geometry
                .nearest_plane(map.peak_lps)
                .ok_or_else(|| ResultsError::Render {
                    series: map.kind.key().into(),
                    reason: "no acquired plane".into(),
                })?;
        tiles.push(render_tile(map, plane, vmax, max_voxels)?);
        slices.push(KeySlice {
            sequence: map.kind.key(),
            sop_instance_uid: plane.source.sop_instance_uid.clone(),
            path: plane.source.path.clone(),
            frame: plane.source.frame,
        });
    }
    let cell = tiles
        .iter()
        .map(|t| t.width().max(t.height()))
        .max()
        .unwrap_or(256);
    let label_h = GLYPH + 6;
    let bar_w = 20 + 6 * GLYPH;
    let width = PAD + 2 * (cell + PAD) + bar_w + PAD;
    let banner_h = GLYPH + 12;
    let header_h = 2 * (GLYPH + 6);
    let grid_top = banner_h + header_h + PAD;
    let grid_h = 2 * (label_h + cell + PAD);
    let probs_h = 5 * (GLYPH + 8) + PAD;
    let height = grid_top + grid_h + probs_h + PAD;
    let mut img = RgbImage::from_pixel(width, height, BG);

    fill_rect(&mut img, 0, 0, width, banner_h, Rgb([150, 20, 20]));
    text(&mut img, PAD, 6, BANNER, Rgb([255, 255, 255]));
    let top = CLASSES
        .iter()
        .zip(probabilities)
        .enumerate()
        .max_by(|a, b| a.1 .1.total_cmp(b.1 .1))
        .map_or(0, |(i, _)| i);
    text(
        &mut img,
        PAD,
        banner_h + 4,
        &format!(
            "{} {} ({})  occlusion sensitivity",
            caption.model, caption.version, caption.precision
        ),
        FG,
    );
    text(
        &mut img,
        PAD,
        banner_h + GLYPH + 10,
        &format!(
            "model output: {} {} {:.2}",
            CLASSES[explanation.class], CLASS_NAMES[explanation.class], probabilities[top]
        ),
        FG,
    );
    for (n, (tile, map)) in tiles.iter().zip(&explanation.maps).enumerate() {
        let (col, row) = ((n % 2) as u32, (n / 2) as u32);
        let x = PAD + col * (cell + PAD);
        let y = grid_top + row * (label_h + cell + PAD);
        text(
            &mut img,
            x,
            y,
            &format!("{}  drop {:.2}", map.kind.key(), map.max()),
            FG,
        );
        let (ox, oy) = (
            x + (cell - tile.width()) / 2,
            y + label_h + (cell - tile.height()) / 2,
        );
        image::imageops::replace(&mut img, tile, ox as i64, oy as i64);
    }
    // Colour bar: bottom 0, top the largest drop of any sequence.
    let bx = PAD + 2 * (cell + PAD);
    let (by, bh) = (grid_top + label_h, grid_h - label_h - PAD);
    for k in 0..bh {
        let t = 1.0 - k as f32 / (bh - 1).max(1) as f32;
        fill_rect(&mut img, bx, by + k, 16, 1, viridis(t));
    }
    text(&mut img, bx + 20, by, &format!("{vmax:.2}"), FG);
    text(&mut img, bx + 20, by + bh - GLYPH, "0", FG);
    text(&mut img, bx + 20, by + bh / 2 - GLYPH, "drop", FG);
    text(
        &mut img,
        bx + 20,
        by + bh / 2 + 2,
        &format!("P({})", CLASSES[explanation.class]),
        FG,
    );
    // Probabilities, as labelled bars (the number is printed: nothing by colour alone).
    let py = grid_top + grid_h;
    let label_w = 16 * 8 * SCALE;
    let bar_max = width - 2 * PAD - label_w - 6 * GLYPH;
    for (k, (p, class)) in probabilities.iter().zip(CLASSES).enumerate() {
        let y = py + k as u32 * (GLYPH + 8);
        text(&mut img, PAD, y, &format!("{class} {}", CLASS_NAMES[k]), FG);
        let w = (p.clamp(0.0, 1.0) * bar_max as f32).round() as u32;
        let colour = if k == top {
            Rgb([230, 230, 230])
        } else {
            Rgb([120, 120, 120])
        };
        fill_rect(&mut img, PAD + label_w, y, w.max(1), GLYPH, colour);
        text(&mut img, PAD + label_w + w + 6, y, &format!("{p:.3}"), FG);
    }
    Ok(KeyImages { image: img, slices })
}

/// The source slice of `map`, windowed, with the map blended over it and the peak marked.
fn render_tile(
    map: &SequenceMap,
    plane: &SourcePlane,
    vmax: f32,
    max_voxels: u64,
) -> Result<RgbImage, ResultsError> {
    let series = map.kind.key().to_string();
    let volume =
        pixels::decode_file(&plane.source.path, max_voxels).map_err(|e| ResultsError::Render {
            series: series.clone(),
            reason: crate::logging::Chain(&e).to_string(),
        })?;
    let (rows, cols) = (volume.rows, volume.columns);
    let n = rows * cols;
    let frame = plane.source.frame.min(volume.frames.saturating_sub(1));
    let data = volume
        .data
        .get(frame * n..(frame + 1) * n)
        .ok_or_else(|| ResultsError::Render {
            series: series.clone(),
            reason: format!("frame {frame} missing"),
        })?;
    let (lo, hi) = window(data);
    let g = &map.geometry;
    let ps = plane.pixel_spacing;
    let size = map.grid.size;
    let mut img = RgbImage::new(cols as u32, rows as u32);
    for r in 0..rows {
        for c in 0..cols {
            let v = ((data[r * cols + c] - lo) / (hi - lo).max(1e-6)).clamp(0.0, 1.0);
            // 32 grey levels: about what a reader tells apart on a key image, and the PNG
            // (which travels over MQTT) compresses to a third.
            let grey = ((v * 31.0).round() * (255.0 / 31.0)) as u8;
            let p = [0, 1, 2].map(|x| {
                plane.position[x]
                    + c as f64 * ps[1] * g.row_dir[x]
                    + r as f64 * ps[0] * g.col_dir[x]
            });
            let [_, i, j] = g.grid_coords(&map.grid, p);
            let m = sample(&map.pixels, size, i, j);
            let t = (m / vmax).clamp(0.0, 1.0);
            let px = if t > 0.05 {
                let alpha = 0.25 + 0.45 * t;
                let col = viridis(t);
                Rgb([0, 1, 2]
                    .map(|k| (grey as f32 * (1.0 - alpha) + col.0[k] as f32 * alpha).round() as u8))
            } else {
                Rgb([grey; 3])
            };
            img.put_pixel(c as u32, r as u32, px);
        }
    }
    // The peak: a white cross with a dark outline, 9 pixels each way.
    let d = [0, 1, 2].map(|x| map.peak_lps[x] - plane.position[x]);
    let pc = (d[0] * g.row_dir[0] + d[1] * g.row_dir[1] + d[2] * g.row_dir[2]) / ps[1];
    let pr = (d[0] * g.col_dir[0] + d[1] * g.col_dir[1] + d[2] * g.col_dir[2]) / ps[0];
    let (pr, pc) = (pr.round() as i64, pc.round() as i64);
    for k in -9i64..=9 {
        for (r, c, colour) in [
            (pr + k, pc - 1, Rgb([0, 0, 0])),
            (pr + k, pc + 1, Rgb([0, 0, 0])),
            (pr - 1, pc + k, Rgb([0, 0, 0])),
            (pr + 1, pc + k, Rgb([0, 0, 0])),
            (pr + k, pc, Rgb([255, 255, 255])),
            (pr, pc + k, Rgb([255, 255, 255])),
        ] {
            if k.abs() > 2 && r >= 0 && c >= 0 && (r as usize) < rows && (c as usize) < cols {
                img.put_pixel(c as u32, r as u32, colour);
            }
        }
    }
    Ok(img)
}

/// 1st and 99th percentiles of the image (a robust display window).
fn window(data: &[f32]) -> (f32, f32) {
    let mut v: Vec<f32> = data.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f32::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.01), at(0.99))
}

/// Bilinear sample of a `size²` map at fractional (row, column); 0 outside.
fn sample(map: &[f32], size: usize, i: f64, j: f64) -> f32 {
    if i < 0.0 || j < 0.0 || i > (size - 1) as f64 || j > (size - 1) as f64 {
        return 0.0;
    }
    let (i0, j0) = (i.floor() as usize, j.floor() as usize);
    let (i1, j1) = ((i0 + 1).min(size - 1), (j0 + 1).min(size - 1));
    let (fi, fj) = ((i - i0 as f64) as f32, (j - j0 as f64) as f32);
    let at = |a: usize, b: usize| map[a * size + b];
    let top = at(i0, j0) + (at(i0, j1) - at(i0, j0)) * fj;
    let bottom = at(i1, j0) + (at(i1, j1) - at(i1, j0)) * fj;
    top + (bottom - top) * fi
}

fn viridis(t: f32) -> Rgb<u8> {
    let c = colorous::VIRIDIS.eval_continuous(t.clamp(0.0, 1.0) as f64);
    Rgb([c.r, c.g, c.b])
}

fn fill_rect(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, colour: Rgb<u8>) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, colour);
        }
    }
}

/// Draws `s` with the 8 × 8 bitmap font at [`SCALE`]; an em dash is drawn as a rule, other
/// characters the font lacks as '?'.
fn text(img: &mut RgbImage, x: u32, y: u32, s: &str, colour: Rgb<u8>) {
    use font8x8::UnicodeFonts;
    for (n, ch) in s.chars().enumerate() {
        let x0 = x + n as u32 * GLYPH;
        let glyph = if ch == '—' {
            let mut g = [0u8; 8];
            g[4] = 0xff;
            g
        } else {
            font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8])
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    fill_rect(
                        img,
                        x0 + col * SCALE,
                        y + row as u32 * SCALE,
                        SCALE,
                        SCALE,
                        colour,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_sampling() {
        let data: Vec<f32> = (0..101).map(|x| x as f32).collect();
        assert_eq!(window(&data), (1.0, 99.0));
        let map = vec![0.0, 1.0, 2.0, 3.0];
        assert_eq!(sample(&map, 2, 0.5, 0.5), 1.5);
        assert_eq!(sample(&map, 2, 2.0, 0.0), 0.0);
    }
}
