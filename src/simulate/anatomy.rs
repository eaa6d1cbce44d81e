//! The assembled 3-D patient: the [`Spine`] with its [`Lesion`], discs, canal, thecal sac, cord,
//! posterior elements, paraspinal muscle, body outline with subcutaneous fat, and the organs in
//! front of the spine.
//!
//! The column is precomputed into thin axial slabs so that [`Anatomy::tissue_at`] is a table
//! lookup plus a few ellipse tests — the renderer calls it tens of millions of times per study.

use super::lesion::Lesion;
use super::spine::{ellipse, interp, zone_of, Section, Spine, Zone};
use super::tissue::{Tissue, TissueId};

const POST_DEPTH: &[(f32, f32)] = &[
    (0.0, 55.0),
    (5.0, 45.0),
    (12.0, 40.0),
    (17.0, 45.0),
    (18.0, 55.0),
    (22.0, 70.0),
];
const OUTLINE_AP: &[(f32, f32)] = &[
    (0.0, 55.0),
    (5.0, 60.0),
    (6.0, 95.0),
    (12.0, 110.0),
    (17.0, 115.0),
    (23.0, 110.0),
];
const OUTLINE_W: &[(f32, f32)] = &[
    (0.0, 60.0),
    (5.0, 70.0),
    (6.0, 150.0),
    (12.0, 160.0),
    (17.0, 150.0),
    (23.0, 170.0),
];
const PARA_W: &[(f32, f32)] = &[
    (0.0, 35.0),
    (5.0, 40.0),
    (6.0, 45.0),
    (17.0, 50.0),
    (22.0, 60.0),
];
const SPINOUS: &[(f32, f32)] = &[
    (0.0, 30.0),
    (5.0, 35.0),
    (6.0, 40.0),
    (17.0, 35.0),
    (23.0, 20.0),
];

/// Which part of a vertebral level a slab belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    Body,
    Endplate,
    Disc,
}

/// An axis-aligned ellipse in local (u, v) with precomputed inverse radii: the hot path tests
/// millions of points per series, and multiplications are cheaper than divisions.
#[derive(Clone, Copy, Debug, Default)]
struct Ellipse {
    cu: f32,
    cv: f32,
    iu: f32,
    iv: f32,
}

impl Ellipse {
    fn new(cu: f32, cv: f32, ru: f32, rv: f32) -> Self {
        Ellipse {
            cu,
            cv,
            iu: 1.0 / ru.max(1e-3),
            iv: 1.0 / rv.max(1e-3),
        }
    }
    /// Squared normalised radius of (u, v): ≤ 1 inside.
    #[inline]
    fn r2(&self, u: f32, v: f32) -> f32 {
        let a = (u - self.cu) * self.iu;
        let b = (v - self.cv) * self.iv;
        a * a + b * b
    }
}

/// Everything [`Anatomy::tissue_at`] needs at one height.
#[derive(Clone, Copy, Debug)]
pub struct Slab {
    pub xc: f32,
    pub yc: f32,
    pub section: Section,
    segment: Segment,
    level: u8,
    zone: Zone,
    cord_tissue: TissueId,
    outline_cu: f32,
    outline_ru: f32,
    subq: f32,
    outline: Ellipse,
    inner_outline: Ellipse,
    canal: Ellipse,
    sac: Ellipse,
    cord: Ellipse,
    body: Ellipse,
    para_w: f32,
    spinous: f32,
    body_z: f32,
}

/// Slab thickness in mm: finer than any slice thickness and pixel of the simulated protocols.
const SLAB_MM: f32 = 0.25;

/// The complete patient: column, lesion and precomputed slabs.
#[derive(Clone, Debug)]
pub struct Anatomy {
    pub spine: Spine,
    pub lesion: Lesion,
    slabs: Vec<Slab>,
    z_top: f32,
}

impl Anatomy {
    pub fn new(spine: Spine, lesion: Lesion) -> Self {
        let z_top = spine.vertebrae[0].body_top + 60.0;
        let z_bottom = spine.vertebrae[spine.vertebrae.len() - 1].disc_bottom - 60.0;
        let n = ((z_top - z_bottom) / SLAB_MM).ceil() as usize + 1;
        let s = &spine.shape;
        let mut slabs = Vec::with_capacity(n);
        for k in 0..n {
            let z = z_top - (k as f32 + 0.5) * SLAB_MM;
            let level = spine.level_index_at(z);
            let vert = &spine.vertebrae[level];
            let segment = if z > vert.body_top {
                // Above C2 (odontoid, skull base) reads as bone.
                Segment::Body
            } else if z > vert.body_bottom {
                if z > vert.body_top - 1.0 || z < vert.body_bottom + 1.0 {
                    Segment::Endplate
                } else {
                    Segment::Body
                }
            } else if level == spine.vertebrae.len() - 1 {
                // Below S1 the sacrum continues.
                Segment::Body
            } else {
                Segment::Disc
            };
            let mut section = spine.section(z);
            let edema = lesion.apply(z, &mut section);
            let t = section.level_t;
            let (xc, yc) = spine.centre_line(z);
            let half_ap = interp(OUTLINE_AP, t) * s.body_size;
            let post = section.canal_ru + interp(POST_DEPTH, t) * s.body_size;
            let neck = if t < 6.0 { 0.5 } else { 1.0 };
            let outline_cu = post - half_ap;
            let outline_rv = interp(OUTLINE_W, t) * s.body_size;
            let subq = s.subcutaneous_fat * neck;
            let sec = &section;
            slabs.push(Slab {
                xc,
                yc,
                section,
                segment,
                level: level as u8,
                zone: zone_of(level),
                cord_tissue: if edema {
                    Tissue::CordEdema.id()
                } else {
                    Tissue::Cord.id()
                },
                outline_cu,
                outline_ru: half_ap,
                subq,
                outline: Ellipse::new(outline_cu, 0.0, half_ap, outline_rv),
                inner_outline: Ellipse::new(outline_cu, 0.0, half_ap - subq, outline_rv - subq),
                canal: Ellipse::new(0.0, 0.0, sec.canal_ru, sec.canal_rv),
                sac: Ellipse::new(sec.sac_cu, 0.0, sec.sac_ru, sec.sac_rv),
                cord: Ellipse::new(sec.cord_cu, sec.cord_cv, sec.cord_ru, sec.cord_rv),
                body: Ellipse::new(sec.body_cu, 0.0, sec.body_ru, sec.body_rv),
                para_w: interp(PARA_W, t) * s.body_size,
                spinous: interp(SPINOUS, t) * s.bone_size,
                body_z: vert.body_centre(),
            });
        }
        Anatomy {
            spine,
            lesion,
            slabs,
            z_top,
        }
    }

    /// The slab at height z (clamped to the modelled range).
    pub fn slab(&self, z: f32) -> &Slab {
        let k = ((self.z_top - z) / SLAB_MM) as isize;
        &self.slabs[k.clamp(0, self.slabs.len() as isize - 1) as usize]
    }

    /// Spine centre line at height z, patient x and y.
    pub fn centre(&self, z: f32) -> (f32, f32) {
        let s = self.slab(z);
        (s.xc, s.yc)
    }

    /// Patient y of the posterior skin at height z (where the spine coil lies).
    pub fn posterior_skin(&self, z: f32) -> f32 {
        let s = self.slab(z);
        s.yc + s.outline_cu + s.outline_ru
    }

    /// The tissue at patient position `p` (mm, LPS).
    pub fn tissue_at(&self, p: [f32; 3]) -> TissueId {
        let slab = self.slab(p[2]);
        let u = p[1] - slab.yc;
        let v = p[0] - slab.xc;
        if let Some(t) = self.lesion.tissue_at(u, v, p[2], &slab.section) {
            return t;
        }
        normal_tissue(self, slab, u, v, p[2])
    }
}

/// Normal anatomy at local (u, v) in `slab`.
fn normal_tissue(anatomy: &Anatomy, slab: &Slab, u: f32, v: f32, z: f32) -> TissueId {
    let sec = &slab.section;
    if slab.outline.r2(u, v) > 1.0 {
        return Tissue::Air.id();
    }
    if slab.inner_outline.r2(u, v) > 1.0 {
        return Tissue::Fat.id();
    }
    // Canal: thecal sac (cord + CSF) surrounded by epidural fat.
    if slab.canal.r2(u, v) <= 1.0 {
        if slab.sac.r2(u, v) <= 1.0 {
            if sec.cord_ru > 0.3 && slab.cord.r2(u, v) <= 1.0 {
                return slab.cord_tissue;
            }
            return Tissue::Csf.id();
        }
        return Tissue::Fat.id();
    }
    let vert = &anatomy.spine.vertebrae[slab.level as usize];
    let state = &vert.state;
    // Vertebral body or disc in front of the canal.
    let r_body = slab.body.r2(u, v);
    if r_body <= 1.0 {
        return match slab.segment {
            Segment::Endplate => Tissue::Cortical.id(),
            Segment::Body => {
                let rim = 1.0 - 2.4 / sec.body_ru.min(sec.body_rv);
                if r_body > rim {
                    Tissue::Cortical.id()
                } else if state.modic && z < vert.body_bottom + 5.0 {
                    Tissue::MarrowEdema.id()
                } else if let Some([hu, hv, hz, hr]) = state.hemangioma {
                    let (a, b, c) = (u - sec.body_cu - hu, v - hv, z - slab.body_z - hz);
                    if a * a + b * b + c * c <= hr * hr {
                        Tissue::Hemangioma.id()
                    } else {
                        state.marrow
                    }
                } else {
                    state.marrow
                }
            }
            Segment::Disc => {
                let nf = if state.disc_degenerated { 0.45 } else { 0.6 };
                if ellipse(u - sec.body_cu, v, sec.body_ru * nf, sec.body_rv * nf) <= 1.0 {
                    if state.disc_degenerated {
                        Tissue::DiscAnnulus.id()
                    } else {
                        Tissue::DiscNucleus.id()
                    }
                } else {
                    Tissue::DiscAnnulus.id()
                }
            }
        };
    }
    // Neural arch (pedicles, laminae) ringing the canal, and the spinous process.
    let arch = 5.5;
    if u > sec.body_cu + 0.6 * sec.body_ru
        && ellipse(u, v, sec.canal_ru + arch, sec.canal_rv + arch) <= 1.0
    {
        return match slab.segment {
            Segment::Body => {
                if ellipse(u, v, sec.canal_ru + arch - 1.5, sec.canal_rv + arch - 1.5) <= 1.0 {
                    state.arch_marrow
                } else {
                    Tissue::Cortical.id()
                }
            }
            _ => Tissue::Ligament.id(),
        };
    }
    if v.abs() < 4.5 && u > sec.canal_ru && u < sec.canal_ru + slab.spinous {
        return match slab.segment {
            Segment::Body if v.abs() < 3.0 && u < sec.canal_ru + slab.spinous - 1.5 => {
                state.arch_marrow
            }
            Segment::Body => Tissue::Cortical.id(),
            _ => Tissue::Ligament.id(),
        };
    }
    // Paraspinal muscles: an oval block behind the body centre, up to the subcutaneous fat.
    let back = slab.outline_cu + slab.outline_ru - slab.subq;
    let (mc, mr) = (0.5 * (back + sec.body_cu), 0.5 * (back - sec.body_cu));
    if u > sec.body_cu && ellipse(u - mc, v, mr, slab.para_w * 1.3) <= 1.0 {
        return Tissue::Muscle.id();
    }
    match slab.zone {
        Zone::Neck => {
            let airway_u = sec.body_cu - sec.body_ru - 17.0;
            if ellipse(u - airway_u, v, 7.0, 9.0) <= 1.0 {
                Tissue::Air.id()
            } else if u > sec.body_cu - sec.body_ru - 6.0 {
                Tissue::Muscle.id()
            } else {
                Tissue::Viscera.id()
            }
        }
        Zone::Thorax => {
            if v.abs() < 30.0 + 0.3 * (sec.body_cu - u).max(0.0) {
                Tissue::Viscera.id()
            } else if u > sec.body_cu + 15.0 {
                Tissue::Muscle.id()
            } else {
                Tissue::Lung.id()
            }
        }
        Zone::Abdomen => {
            // Psoas beside the lumbar bodies, retroperitoneal fat, then bowel and organs.
            let psoas_v = sec.body_rv + 14.0;
            if ellipse(u - sec.body_cu, v.abs() - psoas_v, 16.0, 13.0) <= 1.0 {
                Tissue::Muscle.id()
            } else if u > sec.body_cu - sec.body_ru - 8.0 {
                Tissue::Fat.id()
            } else {
                Tissue::Viscera.id()
            }
        }
    }
}
