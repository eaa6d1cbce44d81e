//! One simulated study: the patient, the scanner, the series plan and the ground truth.
//!
//! Everything is drawn from a generator seeded by the run's seed, its generating options and the
//! study's index, so a study is identical whichever order or thread renders it.

use super::anatomy::Anatomy;
use super::lesion::{self, TumourClass};
use super::protocol::{
    pick_weighted, DistractorRates, FatSuppression, Plane, Scanner, SeriesProtocol, SeriesRole,
    Site, Vendor,
};
use super::render::{render_series, Coil, RenderInput, SeriesPixels, SliceStack, Vec3};
use super::spine::{PatientShape, Region, Spine};
use super::tissue::TissueTable;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

/// Version of the simulator's models; recorded in the ground truth and the model card.
pub const SIMULATOR_VERSION: &str = "2";

/// Options that decide what is generated (not how it is written).
#[derive(Clone, Debug, PartialEq)]
pub struct StudyOptions {
    pub seed: u64,
    pub site: Site,
    /// Classes to cycle through; empty draws from the paper's cohort mix.
    pub classes: Vec<TumourClass>,
    pub vendor: Option<Vendor>,
    pub distractors: DistractorRates,
}

/// Patient sex as recorded in DICOM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Sex {
    M,
    F,
}

/// A calendar date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub seconds: u32,
}

impl DateTime {
    /// DICOM DA.
    pub fn da(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }
    /// DICOM TM, with `offset` seconds added (within the day).
    pub fn tm(&self, offset: u32) -> String {
        let s = (self.seconds + offset).min(86_399);
        format!("{:02}{:02}{:02}", s / 3600, (s / 60) % 60, s % 60)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// A planned series: its protocol, numbering, identity and slice geometry.
#[derive(Clone, Debug)]
pub struct SeriesPlan {
    pub number: u32,
    pub uid: String,
    pub protocol: SeriesProtocol,
    pub stacks: Vec<SliceStack>,
    /// Seconds after the study start when the series was acquired.
    pub time_offset: u32,
    pub noise_seed: u64,
    /// SOP Instance UIDs, one per image.
    pub instance_uids: Vec<String>,
}

impl SeriesPlan {
    pub fn images(&self) -> usize {
        self.stacks.iter().map(|s| s.slices).sum()
    }
}

/// A simulated study before rendering.
#[derive(Clone, Debug)]
pub struct Study {
    pub index: usize,
    pub seed: u64,
    pub class: TumourClass,
    pub region: Region,
    pub age_years: u32,
    pub sex: Sex,
    pub scanner: Scanner,
    pub anatomy: Anatomy,
    pub tissues: TissueTable,
    pub coil: Coil,
    pub patient_name: String,
    pub patient_id: String,
    pub accession: String,
    pub study_id: String,
    pub study_uid: String,
    pub frame_of_reference_uid: String,
    pub study_time: DateTime,
    pub birth_date: DateTime,
    /// PatientAge is left out of some headers (DOMAIN.md: derive it from the birth date).
    pub age_in_header: bool,
    /// BodyPartExamined as written (some sites only write SPINE).
    pub body_part: &'static str,
    pub study_description: String,
    pub series: Vec<SeriesPlan>,
}

/// A random DICOM UID under the UUID-derived root `2.25` (ISO/IEC 9834-8): deterministic per
/// seed, unique across seeds with overwhelming probability.
pub fn uid(rng: &mut ChaCha8Rng) -> String {
    let v: u128 = rng.random::<u128>() >> 1;
    format!("2.25.{}", v.max(1))
}

/// Mixes the run's generating options and a study index into one seed (SplitMix64 steps).
pub fn study_seed(opts: &StudyOptions, index: usize) -> u64 {
    let mut h = opts.seed ^ 0x6a09_e667_f3bc_c908;
    let mut mix = |x: u64| {
        h = h.wrapping_add(x).wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h = z ^ (z >> 31);
    };
    mix(opts.site as u64 + 1);
    mix(opts.vendor.map_or(0, |v| v as u64 + 1));
    for c in &opts.classes {
        mix(*c as u64 + 11);
    }
    mix(index as u64);
    h
}

const FIRST_NAMES: [&str; 12] = [
    "ALEX", "SAM", "ROBIN", "KIM", "JORDAN", "MORGAN", "TAYLOR", "CASEY", "JAMIE", "RILEY",
    "AVERY", "QUINN",
];

impl Study {
    /// Draws study `index` of a run.
    pub fn sample(opts: &StudyOptions, index: usize) -> Study {
        let seed = study_seed(opts, index);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let class = match opts.classes.len() {
            0 => pick_weighted(
                &mut rng,
                &TumourClass::ALL,
                &TumourClass::ALL.map(|c| c.prevalence()),
            ),
            n => opts.classes[index % n],
        };
        let region = pick_weighted(
            &mut rng,
            &[Region::Cervical, Region::Thoracic, Region::Lumbar],
            &class.region_mix(),
        );
        let ((mean, sd, lo, hi), p_male) = class.demographics();
        let shift = if opts.site == Site::External {
            4.0
        } else {
            0.0
        };
        let age = Normal::new(mean + shift, sd)
            .map(|n| n.sample(&mut rng))
            .unwrap_or(mean)
            .clamp(lo, hi);
        let age_years = age.round() as u32;
        let sex = if rng.random_bool(p_male) {
            Sex::M
        } else {
            Sex::F
        };
        let scanner = Scanner::sample(opts.site, opts.vendor, &mut rng);

        let plan = lesion::plan_levels(class, region, age as f32, &mut rng);
        let shape = PatientShape::sample(&mut rng, age as f32);
        let marrow_fat = shape.marrow_fat;
        let spine = Spine::new(region, shape, plan.states.clone());
        let lesion = lesion::place(class, &plan, &spine, &mut rng);
        let tissues = TissueTable::new(scanner.field, marrow_fat, &lesion.tumour);
        let anatomy = Anatomy::new(spine, lesion);

        // Identity and dates.
        let year = 2024 + rng.random_range(0..2);
        let month = rng.random_range(1..=12);
        let day = rng.random_range(1..=days_in_month(year, month));
        let study_time = DateTime {
            year,
            month,
            day,
            seconds: rng.random_range(7 * 3600..19 * 3600),
        };
        let birth_year = year - age_years as i32 - 1 + i32::from(rng.random_bool(0.5));
        let birth_month = rng.random_range(1..=12);
        let birth_date = DateTime {
            year: birth_year,
            month: birth_month,
            day: rng.random_range(1..=days_in_month(birth_year, birth_month)),
            seconds: 0,
        };
        let patient_number: u32 = rng.random_range(0..1_000_000);
        let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let patient_name = format!("SYNTHETIC^{first}^{patient_number:06}");
        let patient_id = format!(
            "SIM{}{patient_number:06}",
            &opts.site.name()[..1].to_uppercase()
        );
        let accession = format!("A{:09}", rng.random_range(0..1_000_000_000u32));
        let study_id = format!("{}", rng.random_range(1000..99999));
        let study_uid = uid(&mut rng);
        let frame_of_reference_uid = uid(&mut rng);
        let body_part = if opts.site == Site::External && rng.random_bool(0.1) {
            "SPINE"
        } else {
            region.body_part()
        };
        let study_description = format!("MRI {} SPINE", region.name().to_uppercase());

        let mut study = Study {
            index,
            seed,
            class,
            region,
            age_years,
            sex,
            scanner,
            anatomy,
            tissues,
            coil: Coil {
                y_surface: 0.0,
                falloff: 1.0,
            },
            patient_name,
            patient_id,
            accession,
            study_id,
            study_uid,
            frame_of_reference_uid,
            study_time,
            birth_date,
            age_in_header: rng.random_bool(0.95),
            body_part,
            study_description,
            series: Vec::new(),
        };
        study.coil = Coil {
            y_surface: study.anatomy.posterior_skin(study.lesion_centre()[2]) + 5.0,
            falloff: study.scanner.coil_falloff,
        };
        study.series = study.plan_series(&opts.distractors, &mut rng);
        study
    }

    /// Centre of the lesion's main mass in patient coordinates.
    /// Bounding box of the lesion in patient coordinates (DICOM LPS, mm), min then max corner:
    /// the mass's local box swept along the cord's course (the canal centre moves with z), and
    /// the vertebral bodies over the lesion's extent where that reaches beyond the mass (a
    /// metastasis's involved bodies; some metastases are bone only).
    pub fn lesion_box(&self) -> [Vec3; 2] {
        let lesion = &self.anatomy.lesion;
        let b = lesion.local_box();
        let (mut lo, mut hi) = ([f32::MAX; 3], [f32::MIN; 3]);
        let mut sweep = |z0: f32, z1: f32, uv: &dyn Fn(f32) -> [f32; 4]| {
            let steps = ((z1 - z0).max(0.0).ceil() as usize).max(1);
            for k in 0..=steps {
                let z = z0 + (z1 - z0) * k as f32 / steps as f32;
                let (xc, yc) = self.anatomy.centre(z);
                let [u0, v0, u1, v1] = uv(z);
                for (x, y) in [(xc + v0, yc + u0), (xc + v1, yc + u1)] {
                    lo = [lo[0].min(x), lo[1].min(y), lo[2].min(z)];
                    hi = [hi[0].max(x), hi[1].max(y), hi[2].max(z)];
                }
            }
        };
        let has_mass = b[0] <= b[3];
        if has_mass {
            sweep(b[2], b[5], &|_| [b[0], b[1], b[3], b[4]]);
        }
        let (top, bottom) = lesion.z_extent;
        if !has_mass || top > b[5] + 1.0 || bottom < b[2] - 1.0 {
            sweep(bottom, top, &|z| {
                let s = self.anatomy.slab(z).section;
                [
                    s.body_cu - s.body_ru,
                    -s.body_rv,
                    s.body_cu + s.body_ru,
                    s.body_rv,
                ]
            });
        }
        [lo, hi]
    }

    pub fn lesion_centre(&self) -> Vec3 {
        let [u, v, z] = self.anatomy.lesion.centre;
        let (xc, yc) = self.anatomy.centre(z);
        [xc + v, yc + u, z]
    }

    fn plan_series(&self, rates: &DistractorRates, rng: &mut ChaCha8Rng) -> Vec<SeriesPlan> {
        let mut roles = Vec::new();
        if rng.random_bool(rates.localizer) {
            roles.push(SeriesRole::Localizer);
        }
        roles.extend([SeriesRole::SagT1w, SeriesRole::SagT2w, SeriesRole::SagT2fs]);
        // An extra STIR beside a chemical or Dixon fat-suppressed T2 (DOMAIN.md); a site whose
        // T2FS is already STIR does not repeat it.
        let extra_stir = rng.random_bool(rates.extra_stir);
        if extra_stir && self.scanner.fat_suppression != FatSuppression::Stir {
            roles.push(SeriesRole::SagStir);
        }
        roles.push(SeriesRole::AxT2w);
        if rng.random_bool(rates.ax_t1) {
            roles.push(SeriesRole::AxT1w);
        }
        if rng.random_bool(rates.dwi) {
            roles.push(SeriesRole::Dwi);
        }
        if rng.random_bool(rates.post_contrast) {
            roles.push(SeriesRole::SagT1Post);
        }

        let lesion = self.lesion_centre();
        let (top, bottom) = self.anatomy.lesion.z_extent;
        let ext = self.scanner.site == Site::External;
        let max_tilt = if ext { 8f32 } else { 5f32 }.to_radians();
        // One sagittal geometry shared by the sagittal series, as a technologist copies it.
        let (xc, yc) = self.anatomy.centre(lesion[2]);
        let sag_centre = [
            xc + rng.random_range(-2.0..2.0),
            yc - 25.0,
            0.5 * lesion[2] + rng.random_range(-10.0..10.0),
        ];
        let sag_tilt = rng.random_range(-max_tilt..max_tilt);
        let sag_roll = rng.random_range(-0.5 * max_tilt..0.5 * max_tilt);
        // Axial slices follow the spine's slope at the lesion.
        let (_, y_up) = self.anatomy.centre(lesion[2] + 10.0);
        let (_, y_down) = self.anatomy.centre(lesion[2] - 10.0);
        let slope = ((y_up - y_down) / 20.0).atan();
        let ax_roll = -slope + rng.random_range(-3f32..3.0).to_radians();
        let ax_centre_z = 0.5 * (top + bottom);
        let (axc, ayc) = self.anatomy.centre(ax_centre_z);

        let mut out = Vec::new();
        let mut time = 0u32;
        for (i, role) in roles.into_iter().enumerate() {
            let mut protocol = SeriesProtocol::sample(role, &self.scanner, rng);
            let stacks = match role {
                SeriesRole::Localizer => vec![
                    SliceStack::new(
                        Plane::Sagittal,
                        [xc, yc - 40.0, 0.0],
                        1,
                        10.0,
                        10.0,
                        protocol.matrix,
                        protocol.fov,
                        0.0,
                        0.0,
                    ),
                    SliceStack::new(
                        Plane::Coronal,
                        [xc, yc - 20.0, 0.0],
                        1,
                        10.0,
                        10.0,
                        protocol.matrix,
                        protocol.fov,
                        0.0,
                        0.0,
                    ),
                    SliceStack::new(
                        Plane::Axial,
                        [xc, yc - 40.0, lesion[2]],
                        1,
                        10.0,
                        10.0,
                        protocol.matrix,
                        protocol.fov,
                        0.0,
                        0.0,
                    ),
                ],
                SeriesRole::AxT2w | SeriesRole::AxT1w => {
                    let needed = ((top - bottom + 10.0) / protocol.spacing).ceil() as usize + 1;
                    protocol.slices = needed.clamp(20, 40);
                    vec![SliceStack::new(
                        Plane::Axial,
                        [axc, ayc - 20.0, ax_centre_z],
                        protocol.slices,
                        protocol.spacing,
                        protocol.thickness,
                        protocol.matrix,
                        protocol.fov,
                        0.0,
                        ax_roll,
                    )]
                }
                _ => vec![SliceStack::new(
                    Plane::Sagittal,
                    sag_centre,
                    protocol.slices,
                    protocol.spacing,
                    protocol.thickness,
                    protocol.matrix,
                    protocol.fov,
                    sag_tilt,
                    sag_roll,
                )],
            };
            let number = match self.scanner.vendor {
                Vendor::Philips => (i as u32 + 1) * 100 + 1,
                _ => i as u32 + 1,
            };
            let images: usize = stacks.iter().map(|s| s.slices).sum();
            let instance_uids = (0..images).map(|_| uid(rng)).collect();
            out.push(SeriesPlan {
                number,
                uid: uid(rng),
                protocol,
                stacks,
                time_offset: time,
                noise_seed: rng.random(),
                instance_uids,
            });
            time += rng.random_range(90..300);
        }
        out
    }

    /// Renders one planned series.
    pub fn render(&self, plan: &SeriesPlan) -> SeriesPixels {
        let input = RenderInput {
            anatomy: &self.anatomy,
            tissues: &self.tissues,
            protocol: &plan.protocol,
            coil: self.coil,
            snr: self.scanner.snr,
            noise_seed: plan.noise_seed,
        };
        let mut pixels = render_series(&input, plan.stacks.clone());
        if self.scanner.vendor == Vendor::Philips {
            // Philips stores a real-valued rescale; others store display values directly.
            pixels.slope = ((1000.0 / pixels.gain as f64) * 1e6).round() / 1e6;
        }
        pixels
    }

    /// The ground-truth record of this study.
    pub fn truth(&self) -> Truth {
        let l = &self.anatomy.lesion;
        Truth {
            study_instance_uid: self.study_uid.clone(),
            class: self.class,
            age: self.age_years,
            sex: self.sex,
            region: self.region,
            site: self.scanner.site,
            vendor: self.scanner.vendor,
            field_strength: self.scanner.field,
            lesion_levels: l.levels.clone(),
            lesion_center_mm: self.lesion_centre().map(|x| (x * 10.0).round() / 10.0),
            lesion_extent_mm: [l.z_extent.0, l.z_extent.1].map(|x| (x * 10.0).round() / 10.0),
            lesion_box_mm: self
                .lesion_box()
                .map(|c| c.map(|x| (x * 10.0).round() / 10.0)),
            lesion_features: l.features.clone(),
            fat_suppression: self.scanner.fat_suppression,
            patient_id: self.patient_id.clone(),
            series: self
                .series
                .iter()
                .map(|s| TruthSeries {
                    series_number: s.number,
                    series_instance_uid: s.uid.clone(),
                    role: s.protocol.role,
                    images: s.images(),
                })
                .collect(),
            simulator_version: SIMULATOR_VERSION,
        }
    }
}

/// One line of `truth.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct Truth {
    pub study_instance_uid: String,
    pub class: TumourClass,
    pub age: u32,
    pub sex: Sex,
    pub region: Region,
    pub site: Site,
    pub vendor: Vendor,
    pub field_strength: super::tissue::FieldStrength,
    pub lesion_levels: Vec<&'static str>,
    pub lesion_center_mm: [f32; 3],
    /// Superior and inferior z of the lesion (patient coordinates, mm).
    pub lesion_extent_mm: [f32; 2],
    /// Bounding box of the mass (patient coordinates, mm): min corner, max corner.
    pub lesion_box_mm: [[f32; 3]; 2],
    pub lesion_features: Vec<&'static str>,
    pub fat_suppression: super::protocol::FatSuppression,
    pub patient_id: String,
    pub series: Vec<TruthSeries>,
    pub simulator_version: &'static str,
}

/// The true role of each series, for testing sequence identification.
#[derive(Clone, Debug, Serialize)]
pub struct TruthSeries {
    pub series_number: u32,
    pub series_instance_uid: String,
    pub role: SeriesRole,
    pub images: usize,
}
