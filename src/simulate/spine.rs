//! The vertebral column of one patient: levels C2–S1 placed along a curved centre line, each
//! cross-section (vertebral body, canal, thecal sac, cord, posterior elements, outline) as
//! ellipses, and the per-level state a patient and a lesion set (degeneration, marrow, collapse).
//!
//! Coordinates are DICOM patient coordinates (LPS, mm): +x to the patient's left, +y posterior,
//! +z superior. The spine's centre line (the canal centre) follows a sagittal curve
//! (lordosis/kyphosis) and a small coronal curve (scoliosis); every cross-section is described
//! relative to it in local coordinates `u` (posterior offset) and `v` (left offset).
//!
//! The simulator's geometry runs one way: [`Spine`] here → [`super::lesion`] placed in it →
//! [`super::anatomy::Anatomy`], the assembled patient.

use super::tissue::{Tissue, TissueId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Spine region of a study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Cervical,
    Thoracic,
    Lumbar,
}

impl Region {
    /// DICOM BodyPartExamined defined term.
    pub fn body_part(self) -> &'static str {
        match self {
            Region::Cervical => "CSPINE",
            Region::Thoracic => "TSPINE",
            Region::Lumbar => "LSPINE",
        }
    }

    /// Index (into [`LEVEL_NAMES`]) of the level at the centre of a scan of this region.
    pub fn centre_level(self) -> usize {
        match self {
            Region::Cervical => 3,
            Region::Thoracic => 12,
            Region::Lumbar => 20,
        }
    }

    /// Levels a lesion of this region may be centred on (inclusive index range).
    pub fn lesion_levels(self) -> (usize, usize) {
        match self {
            Region::Cervical => (0, 5),
            Region::Thoracic => (7, 17),
            Region::Lumbar => (18, 22),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Region::Cervical => "cervical",
            Region::Thoracic => "thoracic",
            Region::Lumbar => "lumbar",
        }
    }
}

/// Vertebral levels modelled, top to bottom.
pub const LEVEL_NAMES: [&str; 24] = [
    "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9",
    "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1",
];

/// Piecewise-linear interpolation over (level index, value) anchors.
pub(super) fn interp(anchors: &[(f32, f32)], t: f32) -> f32 {
    let first = anchors[0];
    if t <= first.0 {
        return first.1;
    }
    for w in anchors.windows(2) {
        let ((t0, a), (t1, b)) = (w[0], w[1]);
        if t <= t1 {
            return a + (b - a) * (t - t0) / (t1 - t0);
        }
    }
    anchors[anchors.len() - 1].1
}

// Adult dimensions in mm by level index (C2 = 0 … S1 = 23), from standard anatomy texts;
// approximate and scaled per patient.
const BODY_H: &[(f32, f32)] = &[
    (0.0, 15.0),
    (5.0, 14.0),
    (6.0, 16.0),
    (12.0, 21.0),
    (17.0, 25.0),
    (18.0, 26.0),
    (22.0, 28.0),
    (23.0, 30.0),
];
const DISC_H: &[(f32, f32)] = &[
    (0.0, 5.0),
    (5.0, 5.5),
    (6.0, 4.5),
    (12.0, 5.5),
    (17.0, 7.0),
    (18.0, 8.5),
    (22.0, 11.0),
];
const BODY_AP: &[(f32, f32)] = &[
    (0.0, 15.0),
    (5.0, 17.0),
    (6.0, 18.0),
    (12.0, 27.0),
    (17.0, 30.0),
    (18.0, 31.0),
    (22.0, 35.0),
];
const BODY_W: &[(f32, f32)] = &[
    (0.0, 18.0),
    (5.0, 22.0),
    (6.0, 26.0),
    (12.0, 32.0),
    (17.0, 40.0),
    (18.0, 42.0),
    (22.0, 50.0),
];
const CANAL_AP: &[(f32, f32)] = &[
    (0.0, 17.0),
    (3.0, 14.0),
    (12.0, 14.0),
    (17.0, 15.0),
    (18.0, 17.0),
    (23.0, 15.0),
];
const CANAL_W: &[(f32, f32)] = &[
    (0.0, 26.0),
    (3.0, 24.0),
    (5.0, 23.0),
    (6.0, 19.0),
    (12.0, 16.0),
    (17.0, 19.0),
    (18.0, 22.0),
    (23.0, 25.0),
];
const CORD_AP: &[(f32, f32)] = &[(0.0, 8.5), (3.0, 7.5), (6.0, 7.0), (12.0, 6.5), (17.0, 7.5)];
const CORD_W: &[(f32, f32)] = &[
    (0.0, 11.0),
    (3.0, 13.0),
    (5.0, 12.5),
    (6.0, 9.0),
    (12.0, 8.0),
    (17.0, 9.0),
];
const EPI_FAT_POST: &[(f32, f32)] = &[(0.0, 1.5), (5.0, 2.0), (6.0, 3.0), (17.0, 4.0), (22.0, 5.0)];

/// What lies in front of the spine at a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Zone {
    Neck,
    Thorax,
    Abdomen,
}

pub(super) fn zone_of(level: usize) -> Zone {
    match level {
        0..=5 => Zone::Neck,
        6..=17 => Zone::Thorax,
        _ => Zone::Abdomen,
    }
}

/// Patient-level anatomical variation, drawn once per study.
#[derive(Clone, Debug, PartialEq)]
pub struct PatientShape {
    /// Body size factor (outline, posterior depth).
    pub body_size: f32,
    /// Bony size factor (vertebral bodies, discs).
    pub bone_size: f32,
    /// Canal size factor (a narrow canal is a common variant).
    pub canal_size: f32,
    pub cord_size: f32,
    /// Subcutaneous fat thickness over the trunk, mm.
    pub subcutaneous_fat: f32,
    /// Peak sagittal displacement of each curve, mm (lordosis negative = anterior).
    pub cervical_lordosis: f32,
    pub thoracic_kyphosis: f32,
    pub lumbar_lordosis: f32,
    /// Peak coronal displacement (scoliosis), mm.
    pub scoliosis: f32,
    /// Conus tip as a level coordinate (L1 = 18).
    pub conus_level: f32,
    /// Marrow fat fraction (rises with age).
    pub marrow_fat: f32,
}

impl PatientShape {
    pub fn sample(rng: &mut ChaCha8Rng, age: f32) -> Self {
        let kyphosis_age = ((age - 20.0) / 60.0).clamp(0.0, 1.0);
        PatientShape {
            body_size: rng.random_range(0.88..1.12),
            bone_size: rng.random_range(0.92..1.08),
            canal_size: rng.random_range(0.85..1.1),
            cord_size: rng.random_range(0.92..1.08),
            subcutaneous_fat: rng.random_range(5.0..30.0),
            cervical_lordosis: -rng.random_range(4.0..14.0),
            thoracic_kyphosis: rng.random_range(12.0..24.0) + 10.0 * kyphosis_age,
            lumbar_lordosis: -rng.random_range(8.0..20.0),
            scoliosis: rng.random_range(-6.0..6.0),
            conus_level: rng.random_range(17.8..19.2),
            marrow_fat: (0.25 + 0.005 * (age - 20.0) + rng.random_range(-0.07..0.07))
                .clamp(0.2, 0.75),
        }
    }
}

/// Per-level state set by the patient and the lesion.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelState {
    /// Marrow tissue of the body (normal, or replaced by metastasis).
    pub marrow: TissueId,
    /// Marrow tissue of the posterior elements.
    pub arch_marrow: TissueId,
    /// Body height factor (< 1 for a pathological collapse).
    pub height_factor: f32,
    /// Degenerated disc below this level: lower, with a dark nucleus.
    pub disc_degenerated: bool,
    /// Modic type 1 oedema in the inferior endplate band of this body (beside a degenerated disc).
    pub modic: bool,
    /// Haemangioma as (u offset, v offset, z offset from body centre, radius), mm.
    pub hemangioma: Option<[f32; 4]>,
}

impl Default for LevelState {
    fn default() -> Self {
        LevelState {
            marrow: Tissue::Marrow.id(),
            arch_marrow: Tissue::Marrow.id(),
            height_factor: 1.0,
            disc_degenerated: false,
            modic: false,
            hemangioma: None,
        }
    }
}

/// A positioned vertebra: body from `body_top` down to `body_bottom`, disc below to `disc_bottom`.
#[derive(Clone, Debug, PartialEq)]
pub struct Vertebra {
    pub name: &'static str,
    pub body_top: f32,
    pub body_bottom: f32,
    pub disc_bottom: f32,
    pub state: LevelState,
}

impl Vertebra {
    pub fn body_centre(&self) -> f32 {
        0.5 * (self.body_top + self.body_bottom)
    }
}

/// The positioned column and the patient's shape: enough for a lesion to be placed.
#[derive(Clone, Debug)]
pub struct Spine {
    pub region: Region,
    pub shape: PatientShape,
    pub vertebrae: Vec<Vertebra>,
}

/// Cross-section of the spine at one height, in local (u, v) coordinates.
#[derive(Clone, Copy, Debug, Default)]
pub struct Section {
    /// Continuous level coordinate (C2 = 0).
    pub level_t: f32,
    pub body_cu: f32,
    pub body_ru: f32,
    pub body_rv: f32,
    pub canal_ru: f32,
    pub canal_rv: f32,
    pub sac_cu: f32,
    pub sac_ru: f32,
    pub sac_rv: f32,
    pub cord_cu: f32,
    pub cord_cv: f32,
    pub cord_ru: f32,
    pub cord_rv: f32,
}

impl Spine {
    /// Lays out the column so that the region's centre level sits at z = 0.
    pub fn new(region: Region, shape: PatientShape, states: Vec<LevelState>) -> Self {
        let mut z = 0.0;
        let mut vertebrae = Vec::with_capacity(LEVEL_NAMES.len());
        for (i, (name, state)) in LEVEL_NAMES.iter().zip(states).enumerate() {
            let t = i as f32;
            let body_h = interp(BODY_H, t) * shape.bone_size * state.height_factor;
            let mut disc_h = interp(DISC_H, t) * shape.bone_size;
            if state.disc_degenerated {
                disc_h *= 0.65;
            }
            let body_top = z;
            let body_bottom = z - body_h;
            let disc_bottom = body_bottom - disc_h;
            z = disc_bottom;
            vertebrae.push(Vertebra {
                name,
                body_top,
                body_bottom,
                disc_bottom,
                state,
            });
        }
        let centre = vertebrae[region.centre_level()].body_centre();
        for v in &mut vertebrae {
            v.body_top -= centre;
            v.body_bottom -= centre;
            v.disc_bottom -= centre;
        }
        Spine {
            region,
            shape,
            vertebrae,
        }
    }

    /// The vertebra whose body or disc contains `z` (clamped to the modelled column).
    pub fn level_index_at(&self, z: f32) -> usize {
        self.vertebrae
            .iter()
            .position(|v| z > v.disc_bottom)
            .unwrap_or(self.vertebrae.len() - 1)
    }

    /// Continuous level coordinate at `z`: the index, plus the fraction down its body + disc.
    pub fn level_t(&self, z: f32) -> f32 {
        let i = self.level_index_at(z);
        let v = &self.vertebrae[i];
        let frac = ((v.body_top - z) / (v.body_top - v.disc_bottom)).clamp(0.0, 1.0);
        i as f32 + frac
    }

    /// Spine centre line (canal centre) at height z, patient x and y.
    pub fn centre_line(&self, z: f32) -> (f32, f32) {
        let t = self.level_t(z);
        let s = &self.shape;
        // One half-sine per curve across its levels: cervical C2–C7, thoracic T1–T12, lumbar
        // L1–S1; sagittal curves meet smoothly at zero displacement at the junctions.
        let bump = |a: f32, b: f32| {
            if t < a || t > b {
                0.0
            } else {
                (std::f32::consts::PI * (t - a) / (b - a)).sin()
            }
        };
        let y = s.cervical_lordosis * bump(-1.0, 6.0)
            + s.thoracic_kyphosis * bump(6.0, 18.0)
            + s.lumbar_lordosis * bump(18.0, 24.0);
        let x = s.scoliosis * (std::f32::consts::PI * t / 12.0).sin();
        // The y baseline is shifted so the canal at the origin level is near y = 0.
        (x, y)
    }

    /// Normal cross-section at height z (before lesion effects).
    pub fn section(&self, z: f32) -> Section {
        let t = self.level_t(z);
        let s = &self.shape;
        let canal_ru = 0.5 * interp(CANAL_AP, t) * s.canal_size;
        let canal_rv = 0.5 * interp(CANAL_W, t) * s.canal_size;
        let body_ru = 0.5 * interp(BODY_AP, t) * s.bone_size;
        let body_rv = 0.5 * interp(BODY_W, t) * s.bone_size;
        let post_fat = interp(EPI_FAT_POST, t);
        let (ant_fat, lat_fat) = (0.6, 1.2);
        let sac_ru = (canal_ru - 0.5 * (post_fat + ant_fat)).max(2.0);
        let sac_cu = canal_ru - post_fat - sac_ru;
        let sac_rv = (canal_rv - lat_fat).max(2.0);
        // The cord tapers to the conus; below it the sac holds only CSF and roots.
        let taper = ((s.conus_level - t) / 1.0).clamp(0.0, 1.0).sqrt();
        let cord_ru = 0.5 * interp(CORD_AP, t.min(17.0)) * s.cord_size * taper;
        let cord_rv = 0.5 * interp(CORD_W, t.min(17.0)) * s.cord_size * taper;
        Section {
            level_t: t,
            body_cu: -(canal_ru + body_ru + 1.5),
            body_ru,
            body_rv,
            canal_ru,
            canal_rv,
            sac_cu,
            sac_ru,
            sac_rv,
            cord_cu: sac_cu - 0.1 * sac_ru,
            cord_cv: 0.0,
            cord_ru,
            cord_rv,
        }
    }
}

/// Normalised squared radius of (u, v) in an axis-aligned ellipse with radii (ru, rv): ≤ 1 inside.
pub fn ellipse(u: f32, v: f32, ru: f32, rv: f32) -> f32 {
    (u / ru) * (u / ru) + (v / rv) * (v / rv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    pub(crate) fn spine(region: Region) -> Spine {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let shape = PatientShape::sample(&mut rng, 50.0);
        Spine::new(
            region,
            shape,
            vec![LevelState::default(); LEVEL_NAMES.len()],
        )
    }

    #[test]
    fn levels_descend_without_gaps() {
        let s = spine(Region::Thoracic);
        for w in s.vertebrae.windows(2) {
            assert!(w[0].body_top > w[0].body_bottom && w[0].body_bottom > w[0].disc_bottom);
            assert_eq!(w[0].disc_bottom, w[1].body_top);
        }
        let c = &s.vertebrae[Region::Thoracic.centre_level()];
        assert!(
            c.body_top > 0.0 && c.body_bottom < 0.0,
            "centre level straddles z = 0"
        );
        assert_eq!(s.vertebrae[s.level_index_at(0.0)].name, "T7");
    }

    #[test]
    fn cross_section_is_nested() {
        let s = spine(Region::Cervical);
        for z in [-30.0, 0.0, 30.0] {
            let c = s.section(z);
            assert!(c.cord_ru < c.sac_ru && c.sac_ru < c.canal_ru);
            assert!(c.cord_rv < c.sac_rv && c.sac_rv < c.canal_rv);
            assert!(
                c.body_cu + c.body_ru < -c.canal_ru,
                "body in front of the canal"
            );
        }
    }
}
