//! One lesion per study, drawn from its class's distribution (location, shape, signal and
//! demographics as README.md's simulator section lists them).
//!
//! A lesion is a short list of ellipsoid [`Blob`]s in the spine's local coordinates (u posterior,
//! v left, z superior) evaluated before the normal anatomy, plus its effects on the normal
//! cross-section (cord expansion or displacement, sac compression, canal widening) and on whole
//! levels (marrow replacement, collapse). The distributions overlap on purpose: schwannoma and
//! meningioma are both intradural extramedullary, astrocytoma and ependymoma both expand the cord,
//! a myxopapillary ependymoma sits in the sac like a schwannoma, and metastasis may reach the
//! epidural space or (rarely) the cord. No single cue decides the class.

use super::spine::{ellipse, LevelState, Region, Section, Spine, LEVEL_NAMES};
use super::tissue::{tumour_id, Tissue, TissueId, TumourProperties, TUMOUR_BINS};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The five tumour classes, in ISMF-Net's output order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TumourClass {
    #[serde(rename = "SCN")]
    Schwannoma,
    #[serde(rename = "MNG")]
    Meningioma,
    #[serde(rename = "AST")]
    Astrocytoma,
    #[serde(rename = "EPN")]
    Ependymoma,
    #[serde(rename = "MET")]
    Metastasis,
}

impl TumourClass {
    pub const ALL: [TumourClass; 5] = [
        TumourClass::Schwannoma,
        TumourClass::Meningioma,
        TumourClass::Astrocytoma,
        TumourClass::Ependymoma,
        TumourClass::Metastasis,
    ];

    pub fn code(self) -> &'static str {
        match self {
            TumourClass::Schwannoma => "SCN",
            TumourClass::Meningioma => "MNG",
            TumourClass::Astrocytoma => "AST",
            TumourClass::Ependymoma => "EPN",
            TumourClass::Metastasis => "MET",
        }
    }

    /// Cohort mix of the ISMF-Net paper (DOMAIN.md), used when no class is forced.
    pub fn prevalence(self) -> f64 {
        match self {
            TumourClass::Schwannoma => 0.226,
            TumourClass::Meningioma => 0.218,
            TumourClass::Astrocytoma => 0.149,
            TumourClass::Ependymoma => 0.182,
            TumourClass::Metastasis => 0.225,
        }
    }

    /// Region probabilities (cervical, thoracic, lumbar).
    pub fn region_mix(self) -> [f64; 3] {
        match self {
            TumourClass::Schwannoma => [0.35, 0.25, 0.40],
            TumourClass::Meningioma => [0.15, 0.78, 0.07],
            TumourClass::Astrocytoma => [0.50, 0.47, 0.03],
            TumourClass::Ependymoma => [0.50, 0.25, 0.25],
            TumourClass::Metastasis => [0.15, 0.60, 0.25],
        }
    }

    /// Age (mean, sd, min, max) in years and the probability of male sex.
    pub fn demographics(self) -> ((f64, f64, f64, f64), f64) {
        match self {
            TumourClass::Schwannoma => ((50.0, 12.0, 18.0, 85.0), 0.50),
            TumourClass::Meningioma => ((60.0, 12.0, 25.0, 90.0), 0.20),
            TumourClass::Astrocytoma => ((27.0, 13.0, 4.0, 75.0), 0.57),
            TumourClass::Ependymoma => ((40.0, 13.0, 8.0, 80.0), 0.57),
            TumourClass::Metastasis => ((63.0, 11.0, 30.0, 92.0), 0.52),
        }
    }
}

impl fmt::Display for TumourClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for TumourClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TumourClass::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown tumour class '{s}' (expected SCN, MNG, AST, EPN or MET)")
            })
    }
}

/// Where a blob may appear: it is clipped to its compartment.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Compartment {
    Anywhere,
    /// Inside the (possibly expanded) cord.
    Cord,
    /// Inside the bony canal.
    Canal,
    /// Inside the vertebral body, within its cortical rim.
    Body,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum BlobTissue {
    Fixed(TissueId),
    /// Tumour whose sub-tissue follows a noise field; `het` is the spread (0 homogeneous).
    Tumour {
        het: f32,
    },
}

/// An ellipsoid piece of a lesion.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Blob {
    centre: [f32; 3],
    inv_radius: [f32; 3],
    tissue: BlobTissue,
    within: Compartment,
    /// Border irregularity: 0 sharp, ≈ 0.4 infiltrative.
    fuzz: f32,
}

impl Blob {
    fn new(centre: [f32; 3], radius: [f32; 3], tissue: BlobTissue, within: Compartment) -> Self {
        Blob {
            centre,
            inv_radius: radius.map(|r| 1.0 / r.max(0.3)),
            tissue,
            within,
            fuzz: 0.0,
        }
    }

    fn radius(&self) -> [f32; 3] {
        self.inv_radius.map(|r| 1.0 / r)
    }
}

/// A smooth window: 1 at `centre`, falling to 0 at ±`half`.
fn bump(z: f32, centre: f32, half: f32) -> f32 {
    let t = ((z - centre) / half).abs();
    if t >= 1.0 {
        0.0
    } else {
        let c = (std::f32::consts::FRAC_PI_2 * t).cos();
        c * c
    }
}

/// A lesion's effect on the normal cross-section.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SectionChange {
    /// Cord (and, where needed, sac and canal) expanded by `factor` at the centre.
    ExpandCord { z: f32, half: f32, factor: f32 },
    /// Cord pushed by (du, dv) and flattened by `squash` at the centre.
    DisplaceCord {
        z: f32,
        half: f32,
        du: f32,
        dv: f32,
        squash: f32,
    },
    /// Sac pushed back and flattened by an anterior epidural mass.
    CompressSac {
        z: f32,
        half: f32,
        du: f32,
        squash: f32,
    },
    /// Canal widened (bone remodelling around a slow-growing mass).
    WidenCanal { z: f32, half: f32, factor: f32 },
    /// Cord oedema between the two heights.
    Edema { top: f32, bottom: f32 },
}

/// The lesion of one study.
#[derive(Clone, Debug)]
pub struct Lesion {
    pub class: TumourClass,
    pub tumour: TumourProperties,
    blobs: Vec<Blob>,
    changes: Vec<SectionChange>,
    /// Bounding box in (u, v, z): min then max.
    bbox: [f32; 6],
    /// Centre of the main mass in local (u, v, z).
    pub centre: [f32; 3],
    /// Superior-inferior extent of the lesion (top, bottom), patient z.
    pub z_extent: (f32, f32),
    /// Level names the lesion touches, top to bottom.
    pub levels: Vec<&'static str>,
    /// Findings drawn for this lesion (e.g. "cysts", "hemosiderin_cap"), for the ground truth.
    pub features: Vec<&'static str>,
    noise_seed: u32,
}

/// Hash-based value noise in [0, 1] at 4 mm scale: cheap, deterministic heterogeneity.
fn value_noise(p: [f32; 3], seed: u32) -> f32 {
    let q = p.map(|x| x * 0.25);
    let i = q.map(|x| x.floor());
    let f = [q[0] - i[0], q[1] - i[1], q[2] - i[2]].map(|t| t * t * (3.0 - 2.0 * t));
    let h = |a: i32, b: i32, c: i32| -> f32 {
        let mut x = (a as u32).wrapping_mul(0x8da6_b343)
            ^ (b as u32).wrapping_mul(0xd816_3841)
            ^ (c as u32).wrapping_mul(0xcb1a_b31f)
            ^ seed;
        x ^= x >> 15;
        x = x.wrapping_mul(0x2c1b_3c6d);
        x ^= x >> 12;
        x = x.wrapping_mul(0x297a_2d39);
        x ^= x >> 15;
        (x & 0xffff) as f32 / 65535.0
    };
    let (a, b, c) = (i[0] as i32, i[1] as i32, i[2] as i32);
    let lerp = |x: f32, y: f32, t: f32| x + (y - x) * t;
    let x00 = lerp(h(a, b, c), h(a + 1, b, c), f[0]);
    let x10 = lerp(h(a, b + 1, c), h(a + 1, b + 1, c), f[0]);
    let x01 = lerp(h(a, b, c + 1), h(a + 1, b, c + 1), f[0]);
    let x11 = lerp(h(a, b + 1, c + 1), h(a + 1, b + 1, c + 1), f[0]);
    lerp(lerp(x00, x10, f[1]), lerp(x01, x11, f[1]), f[2])
}

impl Lesion {
    /// Bounding box of the mass in local (u, v, z), mm: min then max.
    pub fn local_box(&self) -> [f32; 6] {
        self.bbox
    }

    /// The lesion's tissue at local (u, v, z), or `None` where the normal anatomy shows.
    pub fn tissue_at(&self, u: f32, v: f32, z: f32, sec: &Section) -> Option<TissueId> {
        let b = &self.bbox;
        if u < b[0] || v < b[1] || z < b[2] || u > b[3] || v > b[4] || z > b[5] {
            return None;
        }
        for blob in &self.blobs {
            let d = [
                (u - blob.centre[0]) * blob.inv_radius[0],
                (v - blob.centre[1]) * blob.inv_radius[1],
                (z - blob.centre[2]) * blob.inv_radius[2],
            ];
            let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            if r2 > (1.0 + blob.fuzz) * (1.0 + blob.fuzz) {
                continue;
            }
            if blob.fuzz > 0.0 {
                let edge =
                    1.0 + blob.fuzz * (2.0 * value_noise([u, v, z], self.noise_seed ^ 0x55) - 1.0);
                if r2 > edge * edge {
                    continue;
                }
            }
            let inside = match blob.within {
                Compartment::Anywhere => true,
                Compartment::Cord => {
                    ellipse(u - sec.cord_cu, v - sec.cord_cv, sec.cord_ru, sec.cord_rv) <= 1.0
                }
                Compartment::Canal => ellipse(u, v, sec.canal_ru, sec.canal_rv) <= 1.0,
                Compartment::Body => {
                    let rim = 1.0 - 2.6 / sec.body_ru.min(sec.body_rv);
                    ellipse(u - sec.body_cu, v, sec.body_ru, sec.body_rv) <= rim
                }
            };
            if !inside {
                continue;
            }
            return Some(match blob.tissue {
                BlobTissue::Fixed(t) => t,
                BlobTissue::Tumour { het } => {
                    let n = value_noise([u, v, z], self.noise_seed);
                    let h = (0.5 + het * (n - 0.5) * 2.2).clamp(0.0, 0.999);
                    tumour_id((h * TUMOUR_BINS as f32) as usize)
                }
            });
        }
        None
    }

    /// Applies the lesion's effects on the normal cross-section at height `z`; returns whether
    /// the cord is oedematous there.
    pub fn apply(&self, z: f32, s: &mut Section) -> bool {
        let mut edema = false;
        for change in &self.changes {
            match *change {
                SectionChange::ExpandCord { z: c, half, factor } => {
                    let f = 1.0 + (factor - 1.0) * bump(z, c, half);
                    s.cord_ru *= f;
                    s.cord_rv *= f;
                    s.cord_cu = s.cord_cu * (2.0 - f).max(0.0) + s.sac_cu * (f - 1.0).min(1.0);
                    s.sac_ru = s.sac_ru.max(s.cord_ru + 0.8);
                    s.sac_rv = s.sac_rv.max(s.cord_rv + 0.8);
                    s.canal_ru = s.canal_ru.max(s.sac_ru + 0.8 + s.sac_cu.abs());
                    s.canal_rv = s.canal_rv.max(s.sac_rv + 0.8);
                }
                SectionChange::DisplaceCord {
                    z: c,
                    half,
                    du,
                    dv,
                    squash,
                } => {
                    let w = bump(z, c, half);
                    s.cord_cu += du * w;
                    s.cord_cv += dv * w;
                    let flatten = 1.0 - squash * w;
                    if du.abs() > dv.abs() {
                        s.cord_ru *= flatten;
                    } else {
                        s.cord_rv *= flatten;
                    }
                }
                SectionChange::CompressSac {
                    z: c,
                    half,
                    du,
                    squash,
                } => {
                    let w = bump(z, c, half);
                    s.sac_cu += du * w;
                    s.sac_ru *= 1.0 - squash * w;
                    s.cord_cu += du * w;
                    s.cord_ru *= 1.0 - 0.5 * squash * w;
                }
                SectionChange::WidenCanal { z: c, half, factor } => {
                    let f = 1.0 + (factor - 1.0) * bump(z, c, half);
                    s.canal_ru *= f;
                    s.canal_rv *= f;
                }
                SectionChange::Edema { top, bottom } => {
                    edema |= z <= top && z >= bottom;
                }
            }
        }
        edema
    }
}

/// Level-wide choices made before the column is laid out: where the lesion is centred and
/// what it (and the patient's age) does to whole levels.
#[derive(Clone, Debug)]
pub struct LevelPlan {
    pub centre_level: usize,
    pub states: Vec<LevelState>,
    /// Metastasis: the involved levels; other classes: empty.
    pub involved: Vec<usize>,
    pub intramedullary_met: bool,
}

/// Draws the lesion level and the level states (degeneration, haemangiomas, metastatic marrow).
pub fn plan_levels(
    class: TumourClass,
    region: Region,
    age: f32,
    rng: &mut ChaCha8Rng,
) -> LevelPlan {
    let (lo, hi) = region.lesion_levels();
    let centre_level = match (class, region) {
        // Myxopapillary ependymoma sits at the conus and filum (L1–L3).
        (TumourClass::Ependymoma, Region::Lumbar) => rng.random_range(18..=20),
        (TumourClass::Schwannoma | TumourClass::Meningioma, Region::Lumbar) => {
            rng.random_range(18..=22)
        }
        _ => rng.random_range(lo..=hi),
    };
    let mut states = vec![LevelState::default(); LEVEL_NAMES.len()];
    let degen = ((age - 25.0) / 60.0).clamp(0.0, 0.7);
    for (i, s) in states.iter_mut().enumerate() {
        let p = if i >= 18 || (1..=5).contains(&i) {
            degen
        } else {
            0.5 * degen
        };
        s.disc_degenerated = rng.random_bool(p as f64);
        // Modic type 1 change beside some degenerated discs, in every class.
        s.modic = s.disc_degenerated && rng.random_bool(0.2);
    }
    // Incidental haemangiomas in about a quarter of adults, any class.
    if age > 20.0 && rng.random_bool(0.25) {
        for _ in 0..rng.random_range(1..=2) {
            let i = rng.random_range(0..LEVEL_NAMES.len());
            states[i].hemangioma = Some([
                rng.random_range(-4.0..4.0),
                rng.random_range(-6.0..6.0),
                rng.random_range(-3.0..3.0),
                rng.random_range(3.0..7.0),
            ]);
        }
    }
    let mut involved = Vec::new();
    let mut intramedullary_met = false;
    if class == TumourClass::Metastasis {
        intramedullary_met = rng.random_bool(0.05);
        let n = *[1, 1, 1, 2, 2, 2, 3, 3, 4].choose(rng).unwrap_or(&1);
        involved.push(centre_level);
        while involved.len() < n {
            let step = rng.random_range(1..=3) as isize * if rng.random_bool(0.5) { 1 } else { -1 };
            let next = centre_level as isize + step;
            if (0..LEVEL_NAMES.len() as isize).contains(&next)
                && !involved.contains(&(next as usize))
            {
                involved.push(next as usize);
            }
        }
        for (k, &i) in involved.iter().enumerate() {
            if intramedullary_met && k > 0 {
                break;
            }
            if rng.random_bool(0.6) {
                states[i].marrow = Tissue::MarrowMet.id();
            }
            if rng.random_bool(0.3) {
                states[i].arch_marrow = Tissue::MarrowMet.id();
            }
        }
        if !intramedullary_met && rng.random_bool(0.3) {
            states[centre_level].height_factor = rng.random_range(0.5..0.78);
        }
        involved.sort_unstable();
    }
    LevelPlan {
        centre_level,
        states,
        involved,
        intramedullary_met,
    }
}

/// Builder for a lesion's blobs and changes.
struct Draft {
    class: TumourClass,
    blobs: Vec<Blob>,
    changes: Vec<SectionChange>,
    features: Vec<&'static str>,
}

impl Draft {
    fn blob(&mut self, c: [f32; 3], r: [f32; 3], t: BlobTissue, within: Compartment) -> &mut Blob {
        self.blobs.push(Blob::new(c, r, t, within));
        let n = self.blobs.len();
        &mut self.blobs[n - 1]
    }

    /// Small round inclusions (cysts, calcifications) inside the main mass.
    fn inclusions(
        &mut self,
        rng: &mut ChaCha8Rng,
        main: [f32; 3],
        r: [f32; 3],
        tissue: TissueId,
        size: (f32, f32),
        within: Compartment,
    ) {
        for _ in 0..rng.random_range(1..=3) {
            let c = [0, 1, 2].map(|k| main[k] + rng.random_range(-0.5..0.5) * r[k]);
            let rr = rng.random_range(size.0..size.1).min(0.5 * r[0].min(r[1]));
            self.blobs.insert(
                0,
                Blob::new(c, [rr, rr, rr * 1.3], BlobTissue::Fixed(tissue), within),
            );
        }
    }

    /// Subacute intratumoural haemorrhage with probability `p`: bright on T1 where cysts are
    /// dark, and on T2 alike to the cysts schwannomas and ependymomas also carry, so telling
    /// blood from fluid needs the T1 series. Common in ependymomas (the source of their
    /// hemosiderin caps), occasional in schwannomas, astrocytomas and haemorrhagic metastases.
    fn haemorrhage(
        &mut self,
        rng: &mut ChaCha8Rng,
        p: f64,
        main: [f32; 3],
        r: [f32; 3],
        within: Compartment,
    ) {
        if rng.random_bool(p) {
            self.features.push("haemorrhage");
            self.inclusions(
                rng,
                main,
                r,
                Tissue::Methaemoglobin.id(),
                (1.5, 4.0),
                within,
            );
        }
    }
}

fn tumour_props(
    rng: &mut ChaCha8Rng,
    t1: (f32, f32),
    t2_lo: (f32, f32),
    t2_span: (f32, f32),
    adc: (f32, f32),
    enh: f32,
) -> TumourProperties {
    let t1_lo = rng.random_range(t1.0..t1.1);
    let lo = rng.random_range(t2_lo.0..t2_lo.1);
    TumourProperties {
        t1_range: (t1_lo, t1_lo + rng.random_range(50.0..200.0)),
        t2_range: (lo, lo + rng.random_range(t2_span.0..t2_span.1)),
        pd: rng.random_range(0.78..0.9),
        adc: rng.random_range(adc.0..adc.1),
        enhancement: enh * rng.random_range(0.6..1.3),
    }
}

/// A point on the wall of the sac facing `side` (0 dorsal, 1 left, 2 right, 3 ventral), and the
/// unit direction from the sac centre towards it.
fn sac_wall(sec: &Section, side: usize) -> ([f32; 2], [f32; 2]) {
    match side {
        0 => ([sec.sac_cu + sec.sac_ru, 0.0], [1.0, 0.0]),
        1 => ([sec.sac_cu, sec.sac_rv], [0.0, 1.0]),
        2 => ([sec.sac_cu, -sec.sac_rv], [0.0, -1.0]),
        _ => ([sec.sac_cu - sec.sac_ru, 0.0], [-1.0, 0.0]),
    }
}

/// Places the lesion on the laid-out spine.
pub fn place(class: TumourClass, plan: &LevelPlan, spine: &Spine, rng: &mut ChaCha8Rng) -> Lesion {
    let vert = &spine.vertebrae[plan.centre_level];
    let span = vert.body_top - vert.disc_bottom;
    let zc = vert.body_top - rng.random_range(0.15..0.85) * span;
    let sec = spine.section(zc);
    let mut d = Draft {
        class,
        blobs: Vec::new(),
        changes: Vec::new(),
        features: Vec::new(),
    };
    let (mut tumour, centre, half_z);
    match class {
        TumourClass::Schwannoma => {
            tumour = tumour_props(
                rng,
                (1000.0, 1250.0),
                (85.0, 125.0),
                (25.0, 70.0),
                (1.3, 1.9),
                0.003,
            );
            let het = rng.random_range(0.15..0.9);
            let rs = rng.random_range(7.0..18.0);
            let side = *[1, 2, 1, 2, 0, 3].choose(rng).unwrap_or(&1);
            let (wall, dir) = sac_wall(&sec, side);
            let (r_perp, r_tan) = (
                rng.random_range(3.5..6.5_f32),
                rng.random_range(3.5..7.0_f32),
            );
            let depth = rng.random_range(0.5..0.9) * r_perp;
            let c = [wall[0] - dir[0] * depth, wall[1] - dir[1] * depth, zc];
            let r = if dir[0] != 0.0 {
                [r_perp, r_tan, rs]
            } else {
                [r_tan, r_perp, rs]
            };
            half_z = rs;
            centre = c;
            d.blob(c, r, BlobTissue::Tumour { het }, Compartment::Canal)
                .fuzz = 0.03;
            if rng.random_bool(0.45) {
                d.features.push("cysts");
                d.inclusions(
                    rng,
                    c,
                    r,
                    Tissue::CystFluid.id(),
                    (1.2, 3.5),
                    Compartment::Canal,
                );
            }
            d.haemorrhage(rng, 0.08, c, r, Compartment::Canal);
            let push = (r_perp * 0.9).min(sec.sac_ru.min(sec.sac_rv));
            d.changes.push(SectionChange::DisplaceCord {
                z: zc,
                half: rs * 1.4,
                du: -dir[0] * push,
                dv: -dir[1] * push * 0.8,
                squash: 0.3,
            });
            d.changes.push(SectionChange::WidenCanal {
                z: zc,
                half: rs * 1.2,
                factor: 1.0 + 0.02 * r_perp,
            });
            if side != 0 && side != 3 && rng.random_bool(0.15) {
                // Dumbbell: extension through the neural foramen (at the disc level).
                d.features.push("foraminal_extension");
                let zf = 0.5 * (vert.body_bottom + vert.disc_bottom);
                let rf = rng.random_range(5.0..11.0);
                let vf = dir[1] * (sec.canal_rv + 4.0 + rf * 0.8);
                d.blob(
                    [sec.sac_cu, dir[1] * (sec.canal_rv + 2.0), zf],
                    [3.5, 6.0, 4.0],
                    BlobTissue::Tumour { het },
                    Compartment::Anywhere,
                );
                d.blob(
                    [sec.sac_cu - 2.0, vf, zf],
                    [rf, rf, rf * 1.1],
                    BlobTissue::Tumour { het },
                    Compartment::Anywhere,
                );
            }
        }
        TumourClass::Meningioma => {
            tumour = tumour_props(
                rng,
                (850.0, 1050.0),
                (70.0, 95.0),
                (8.0, 35.0),
                (0.8, 1.2),
                0.0035,
            );
            let het = rng.random_range(0.05..0.3);
            let rs = rng.random_range(7.0..14.0);
            let side = *[0, 0, 0, 0, 0, 0, 1, 2, 1, 2, 3, 3]
                .choose(rng)
                .unwrap_or(&0);
            let (wall, dir) = sac_wall(&sec, side);
            let (r_perp, r_tan) = (
                rng.random_range(3.5..6.5_f32),
                rng.random_range(5.0..8.5_f32),
            );
            let c = [
                wall[0] - dir[0] * 0.55 * r_perp,
                wall[1] - dir[1] * 0.55 * r_perp,
                zc,
            ];
            let r = if dir[0] != 0.0 {
                [r_perp, r_tan, rs]
            } else {
                [r_tan, r_perp, rs]
            };
            half_z = rs;
            centre = c;
            if rng.random_bool(0.2) {
                d.features.push("calcification");
                d.inclusions(
                    rng,
                    c,
                    r,
                    Tissue::Calcification.id(),
                    (0.8, 2.2),
                    Compartment::Canal,
                );
            }
            d.blob(c, r, BlobTissue::Tumour { het }, Compartment::Canal)
                .fuzz = 0.02;
            if rng.random_bool(0.4) {
                d.features.push("dural_tail");
                let rt = if dir[0] != 0.0 {
                    [1.0, r_tan * 0.8, rs * 2.0]
                } else {
                    [r_tan * 0.8, 1.0, rs * 2.0]
                };
                d.blob(
                    [wall[0], wall[1], zc],
                    rt,
                    BlobTissue::Tumour { het: 0.0 },
                    Compartment::Canal,
                );
            }
            let push = (r_perp * 0.9).min(sec.sac_ru.min(sec.sac_rv));
            d.changes.push(SectionChange::DisplaceCord {
                z: zc,
                half: rs * 1.4,
                du: -dir[0] * push,
                dv: -dir[1] * push * 0.8,
                squash: 0.35,
            });
        }
        TumourClass::Astrocytoma => {
            tumour = tumour_props(
                rng,
                (950.0, 1250.0),
                (95.0, 130.0),
                (30.0, 70.0),
                (1.2, 1.6),
                0.0015,
            );
            let het = rng.random_range(0.4..0.9);
            let levels = rng.random_range(2.0..4.0);
            let rs = 0.5 * levels * span;
            let factor = rng.random_range(1.3..1.8);
            let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let off_v = side * rng.random_range(0.2..0.5) * sec.cord_rv * factor;
            let off_u = rng.random_range(-0.25..0.25) * sec.cord_ru * factor;
            let c = [sec.cord_cu + off_u, off_v, zc];
            let r = [0.75 * sec.cord_ru * factor, 0.75 * sec.cord_rv * factor, rs];
            half_z = rs;
            centre = c;
            d.changes.push(SectionChange::ExpandCord {
                z: zc,
                half: rs * 1.15,
                factor,
            });
            let margin = rng.random_range(5.0..20.0);
            d.changes.push(SectionChange::Edema {
                top: zc + rs + margin,
                bottom: zc - rs - margin,
            });
            if rng.random_bool(0.3) {
                d.features.push("cysts");
                d.inclusions(
                    rng,
                    c,
                    r,
                    Tissue::CystFluid.id(),
                    (1.0, 2.5),
                    Compartment::Cord,
                );
            }
            d.haemorrhage(rng, 0.08, c, r, Compartment::Cord);
            d.blob(c, r, BlobTissue::Tumour { het }, Compartment::Cord)
                .fuzz = rng.random_range(0.15..0.45);
            if rng.random_bool(0.2) {
                d.features.push("syrinx");
                syrinx(&mut d, rng, &sec, zc, rs);
            }
        }
        TumourClass::Ependymoma => {
            tumour = tumour_props(
                rng,
                (950.0, 1250.0),
                (95.0, 125.0),
                (20.0, 55.0),
                (1.1, 1.5),
                0.0025,
            );
            let het = rng.random_range(0.2..0.6);
            let rs = rng.random_range(12.0..32.0);
            half_z = rs;
            let myxopapillary = spine.region == Region::Lumbar && plan.centre_level >= 18;
            let (c, r, within) = if myxopapillary {
                d.features.push("myxopapillary");
                if rng.random_bool(0.6) {
                    // Mucin shortens T1: myxopapillary tumours are often iso- to hyperintense
                    // to the cord on T1, where a schwannoma at the same level is hypointense.
                    d.features.push("mucin");
                    let lo = rng.random_range(650.0..850.0);
                    tumour.t1_range = (lo, lo + rng.random_range(50.0..150.0));
                }
                let f = rng.random_range(0.6..0.9);
                (
                    [sec.sac_cu, 0.0, zc],
                    [sec.sac_ru * f, sec.sac_rv * f, rs],
                    Compartment::Canal,
                )
            } else {
                let factor = rng.random_range(1.3..1.7);
                d.changes.push(SectionChange::ExpandCord {
                    z: zc,
                    half: rs * 1.2,
                    factor,
                });
                if rng.random_bool(0.5) {
                    let m = rng.random_range(3.0..12.0);
                    d.changes.push(SectionChange::Edema {
                        top: zc + rs + m,
                        bottom: zc - rs - m,
                    });
                }
                let off = rng.random_range(-0.15..0.15) * sec.cord_rv;
                (
                    [sec.cord_cu, off, zc],
                    [0.8 * sec.cord_ru * factor, 0.8 * sec.cord_rv * factor, rs],
                    Compartment::Cord,
                )
            };
            centre = c;
            if rng.random_bool(if myxopapillary { 0.3 } else { 0.25 }) {
                // Hemosiderin caps at both poles (DOMAIN.md: 20–33 %).
                d.features.push("hemosiderin_cap");
                for pole in [1.0, -1.0] {
                    d.blob(
                        [c[0], c[1], zc + pole * (rs - 1.3)],
                        [r[0] * 0.85, r[1] * 0.85, 1.8],
                        BlobTissue::Fixed(Tissue::Hemosiderin.id()),
                        within,
                    );
                }
            }
            d.haemorrhage(rng, 0.35, c, r, within);
            d.blob(c, r, BlobTissue::Tumour { het }, within).fuzz = rng.random_range(0.02..0.15);
            if !myxopapillary && rng.random_bool(0.55) {
                d.features.push("polar_cysts");
                for pole in [1.0, -1.0] {
                    let len = rng.random_range(6.0..20.0);
                    d.blob(
                        [sec.cord_cu, 0.0, zc + pole * (rs + len)],
                        [0.5 * sec.cord_ru, 0.5 * sec.cord_rv, len],
                        BlobTissue::Fixed(Tissue::CystFluid.id()),
                        Compartment::Cord,
                    );
                }
            }
        }
        TumourClass::Metastasis => {
            tumour = tumour_props(
                rng,
                (1100.0, 1300.0),
                (75.0, 95.0),
                (10.0, 30.0),
                (0.8, 1.1),
                0.0025,
            );
            let het = rng.random_range(0.2..0.5);
            if plan.intramedullary_met {
                d.features.push("intramedullary");
                let rs = rng.random_range(4.0..9.0);
                let c = [sec.cord_cu, 0.0, zc];
                d.changes.push(SectionChange::ExpandCord {
                    z: zc,
                    half: rs * 1.5,
                    factor: 1.2,
                });
                let m = rng.random_range(15.0..40.0);
                d.changes.push(SectionChange::Edema {
                    top: zc + rs + m,
                    bottom: zc - rs - m,
                });
                d.blob(
                    c,
                    [0.6 * sec.cord_ru, 0.6 * sec.cord_rv, rs],
                    BlobTissue::Tumour { het },
                    Compartment::Cord,
                );
                centre = c;
                half_z = rs;
            } else {
                let body_zc = vert.body_centre();
                let bsec = spine.section(body_zc);
                centre = [bsec.body_cu, 0.0, body_zc];
                half_z = 0.5 * (vert.body_top - vert.body_bottom);
                for &i in &plan.involved {
                    let lv = &spine.vertebrae[i];
                    if lv.state.marrow != Tissue::MarrowMet.id() {
                        // Focal deposit rather than whole-body replacement.
                        let z = lv.body_centre() + rng.random_range(-3.0..3.0);
                        let s = spine.section(z);
                        let rr = rng.random_range(5.0..10.0);
                        d.blob(
                            [
                                s.body_cu + rng.random_range(-3.0..3.0),
                                rng.random_range(-6.0..6.0),
                                z,
                            ],
                            [rr, rr * 1.2, rr],
                            BlobTissue::Fixed(Tissue::MarrowMet.id()),
                            Compartment::Body,
                        );
                    }
                }
                if rng.random_bool(0.55) {
                    d.features.push("epidural_extension");
                    let (ru, rv) = (
                        rng.random_range(3.0..6.0_f32),
                        rng.random_range(5.0..9.0_f32),
                    );
                    let rs = half_z * rng.random_range(0.6..1.1);
                    let ce = [
                        -bsec.canal_ru + 0.6 * ru,
                        rng.random_range(-3.0..3.0),
                        body_zc,
                    ];
                    d.blob(
                        ce,
                        [ru, rv, rs],
                        BlobTissue::Tumour { het },
                        Compartment::Canal,
                    );
                    d.haemorrhage(rng, 0.1, ce, [ru, rv, rs], Compartment::Canal);
                    d.changes.push(SectionChange::CompressSac {
                        z: body_zc,
                        half: rs * 1.3,
                        du: 0.6 * ru,
                        squash: 0.35,
                    });
                }
                if rng.random_bool(0.25) {
                    d.features.push("paravertebral_mass");
                    let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                    let rr = rng.random_range(8.0..15.0);
                    d.blob(
                        [bsec.body_cu, side * (bsec.body_rv + 0.6 * rr), body_zc],
                        [rr, rr, rr * 1.2],
                        BlobTissue::Tumour { het },
                        Compartment::Anywhere,
                    );
                }
                if spine.vertebrae[plan.centre_level].state.height_factor < 1.0 {
                    d.features.push("collapse");
                }
            }
        }
    }
    finish(d, tumour, centre, half_z, plan, spine, rng)
}

fn syrinx(d: &mut Draft, rng: &mut ChaCha8Rng, sec: &Section, zc: f32, rs: f32) {
    let len = rng.random_range(15.0..40.0);
    let pole = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let r = [0.35 * sec.cord_ru, 0.35 * sec.cord_rv, len];
    d.blob(
        [sec.cord_cu, 0.0, zc + pole * (rs + len * 0.9)],
        r,
        BlobTissue::Fixed(Tissue::CystFluid.id()),
        Compartment::Cord,
    );
}

fn finish(
    d: Draft,
    tumour: TumourProperties,
    centre: [f32; 3],
    half_z: f32,
    plan: &LevelPlan,
    spine: &Spine,
    rng: &mut ChaCha8Rng,
) -> Lesion {
    let mut bbox = [f32::MAX, f32::MAX, f32::MAX, f32::MIN, f32::MIN, f32::MIN];
    for b in &d.blobs {
        let r = b.radius();
        for k in 0..3 {
            let grow = 1.0 + b.fuzz;
            bbox[k] = bbox[k].min(b.centre[k] - r[k] * grow);
            bbox[k + 3] = bbox[k + 3].max(b.centre[k] + r[k] * grow);
        }
    }
    let mut z_extent = (centre[2] + half_z, centre[2] - half_z);
    let mut touched: Vec<usize> = Vec::new();
    let mut touch = |top: f32, bottom: f32| {
        for (i, v) in spine.vertebrae.iter().enumerate() {
            if top > v.disc_bottom && bottom < v.body_top && !touched.contains(&i) {
                touched.push(i);
            }
        }
    };
    touch(z_extent.0, z_extent.1);
    for &i in &plan.involved {
        let v = &spine.vertebrae[i];
        touch(v.body_top, v.body_bottom);
        z_extent = (z_extent.0.max(v.body_top), z_extent.1.min(v.body_bottom));
    }
    touched.sort_unstable();
    Lesion {
        class: d.class,
        tumour,
        blobs: d.blobs,
        changes: d.changes,
        bbox,
        centre,
        z_extent,
        levels: touched.into_iter().map(|i| LEVEL_NAMES[i]).collect(),
        features: d.features,
        noise_seed: rng.random(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::spine::{PatientShape, Spine};
    use rand::SeedableRng;

    #[test]
    fn noise_is_smooth_and_bounded() {
        let mut prev = value_noise([0.0, 0.0, 0.0], 7);
        for k in 1..400 {
            let n = value_noise([k as f32 * 0.05, 1.0, 2.0], 7);
            assert!((0.0..=1.0).contains(&n));
            assert!((n - prev).abs() < 0.1, "noise jumps at step {k}");
            prev = n;
        }
    }

    #[test]
    fn every_class_places_a_lesion_at_its_centre() {
        use crate::simulate::anatomy::Anatomy;
        let lesional = |t: TissueId| {
            t >= Tissue::Tumour.id()
                || [
                    Tissue::MarrowMet,
                    Tissue::CystFluid,
                    Tissue::Hemosiderin,
                    Tissue::Calcification,
                    Tissue::Methaemoglobin,
                ]
                .iter()
                .any(|x| x.id() == t)
        };
        for (k, class) in TumourClass::ALL.into_iter().enumerate() {
            for seed in 0..20u64 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed * 31 + k as u64);
                let region = if k == 1 {
                    Region::Thoracic
                } else {
                    Region::Cervical
                };
                let plan = plan_levels(class, region, 50.0, &mut rng);
                let shape = PatientShape::sample(&mut rng, 50.0);
                let spine = Spine::new(region, shape, plan.states.clone());
                let lesion = place(class, &plan, &spine, &mut rng);
                assert!(!lesion.levels.is_empty(), "{class}: no level");
                assert!(lesion.z_extent.0 > lesion.z_extent.1);
                let [u, v, z] = lesion.centre;
                let anatomy = Anatomy::new(spine, lesion);
                let (xc, yc) = anatomy.centre(z);
                let t = anatomy.tissue_at([xc + v, yc + u, z]);
                assert!(
                    lesional(t),
                    "{class} seed {seed}: tissue {t} at the lesion centre"
                );
            }
        }
    }

    /// Haemorrhage is drawn at the class's rate and rendered as blood; mucin shortens the T1 of
    /// lumbar (myxopapillary) ependymomas only.
    #[test]
    fn haemorrhage_and_mucin_follow_the_class() {
        let blood = Tissue::Methaemoglobin.id();
        let count = |class: TumourClass, region: Region| {
            let (mut bleeds, mut mucin) = (0, 0);
            for seed in 0..200u64 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let plan = plan_levels(class, region, 45.0, &mut rng);
                let shape = PatientShape::sample(&mut rng, 45.0);
                let spine = Spine::new(region, shape, plan.states.clone());
                let lesion = place(class, &plan, &spine, &mut rng);
                let has_blood = lesion
                    .blobs
                    .iter()
                    .any(|b| matches!(b.tissue, BlobTissue::Fixed(t) if t == blood));
                assert_eq!(has_blood, lesion.features.contains(&"haemorrhage"));
                bleeds += usize::from(has_blood);
                if lesion.features.contains(&"mucin") {
                    mucin += 1;
                    assert!(lesion.features.contains(&"myxopapillary"));
                    assert!(lesion.tumour.t1_range.1 < 1000.0);
                }
            }
            (bleeds, mucin)
        };
        let (epn, _) = count(TumourClass::Ependymoma, Region::Cervical);
        let (scn, scn_mucin) = count(TumourClass::Schwannoma, Region::Lumbar);
        let (mng, _) = count(TumourClass::Meningioma, Region::Thoracic);
        assert!((45..=95).contains(&epn), "ependymoma haemorrhage {epn}/200");
        assert!((4..=30).contains(&scn), "schwannoma haemorrhage {scn}/200");
        assert_eq!((mng, scn_mucin), (0, 0));
        let (_, myxo_mucin) = count(TumourClass::Ependymoma, Region::Lumbar);
        assert!(myxo_mucin > 20, "lumbar ependymoma mucin {myxo_mucin}/200");
    }

    #[test]
    fn class_codes_round_trip() {
        for c in TumourClass::ALL {
            assert_eq!(c.code().parse::<TumourClass>(), Ok(c));
        }
        assert!("XYZ".parse::<TumourClass>().is_err());
    }
}
