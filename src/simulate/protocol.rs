//! Sites, vendors and series protocols: what a scanner at a given site acquires and how its
//! vendor labels it in the DICOM header.
//!
//! The two sites differ the way DOMAIN.md says real centres do — vendor mix, field strength,
//! TE/TR/TI choices, resolution and slice thickness, SNR, coil falloff, fat-suppression method
//! and patient age — so that `external` is a genuine distribution shift.

use super::tissue::{FieldStrength, Weighting};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::str::FromStr;

/// Acquisition site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Site {
    Internal,
    External,
}

impl FromStr for Site {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "internal" => Ok(Site::Internal),
            "external" => Ok(Site::External),
            _ => Err(format!(
                "unknown site '{s}' (expected internal or external)"
            )),
        }
    }
}

impl Site {
    pub fn name(self) -> &'static str {
        match self {
            Site::Internal => "internal",
            Site::External => "external",
        }
    }
}

/// Scanner manufacturer, whose header conventions the series follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Siemens,
    Ge,
    Philips,
}

impl FromStr for Vendor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "siemens" => Ok(Vendor::Siemens),
            "ge" => Ok(Vendor::Ge),
            "philips" => Ok(Vendor::Philips),
            _ => Err(format!(
                "unknown vendor '{s}' (expected siemens, ge or philips)"
            )),
        }
    }
}

impl Vendor {
    pub const ALL: [Vendor; 3] = [Vendor::Siemens, Vendor::Ge, Vendor::Philips];

    pub fn manufacturer(self) -> &'static str {
        match self {
            Vendor::Siemens => "SIEMENS",
            Vendor::Ge => "GE MEDICAL SYSTEMS",
            Vendor::Philips => "Philips Medical Systems",
        }
    }

    fn model(self, field: FieldStrength, rng: &mut ChaCha8Rng) -> &'static str {
        let choices: &[&'static str] = match (self, field) {
            (Vendor::Siemens, FieldStrength::T1_5) => &["MAGNETOM Aera", "MAGNETOM Avanto_fit"],
            (Vendor::Siemens, FieldStrength::T3) => &["MAGNETOM Skyra", "MAGNETOM Vida"],
            (Vendor::Ge, FieldStrength::T1_5) => &["SIGNA Explorer", "Optima MR450w"],
            (Vendor::Ge, FieldStrength::T3) => &["SIGNA Premier", "DISCOVERY MR750"],
            (Vendor::Philips, FieldStrength::T1_5) => &["Ingenia", "Achieva"],
            (Vendor::Philips, FieldStrength::T3) => &["Ingenia", "Ingenia Elition X"],
        };
        choices.choose(rng).copied().unwrap_or("unknown")
    }

    fn software(self) -> &'static str {
        match self {
            Vendor::Siemens => "syngo MR XA31",
            Vendor::Ge => "27\\LX\\MR Software release:RX27.0_R05_2041.a",
            Vendor::Philips => "5.7.1\\5.7.1.2",
        }
    }
}

/// How fat is suppressed in the sagittal T2 fat-suppressed series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum FatSuppression {
    None,
    /// Chemical-shift selective saturation (FatSat, SPAIR, SPIR): fat scaled by `residual`,
    /// worse towards the edges of the field of view by up to `edge`.
    Chemical {
        residual: f32,
        edge: f32,
    },
    /// Short-TI inversion recovery: fat nulled by the physics of the inversion time.
    Stir,
    /// Dixon water image: uniform small fat residual.
    DixonWater {
        residual: f32,
    },
}

/// The role a series plays in a study (the ground truth the identifier should recover).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesRole {
    SagT1w,
    SagT2w,
    SagT2fs,
    AxT2w,
    Localizer,
    SagStir,
    AxT1w,
    #[serde(rename = "sag_t1w_post")]
    SagT1Post,
    Dwi,
}

impl SeriesRole {
    /// The sequence key used by the model for required series.
    pub fn key(self) -> &'static str {
        match self {
            SeriesRole::SagT1w => "sag_t1w",
            SeriesRole::SagT2w => "sag_t2w",
            SeriesRole::SagT2fs => "sag_t2fs",
            SeriesRole::AxT2w => "ax_t2w",
            SeriesRole::Localizer => "localizer",
            SeriesRole::SagStir => "sag_stir",
            SeriesRole::AxT1w => "ax_t1w",
            SeriesRole::SagT1Post => "sag_t1w_post",
            SeriesRole::Dwi => "dwi",
        }
    }

    pub fn is_required(self) -> bool {
        matches!(
            self,
            SeriesRole::SagT1w | SeriesRole::SagT2w | SeriesRole::SagT2fs | SeriesRole::AxT2w
        )
    }
}

/// Probabilities of each distractor series in a study.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistractorRates {
    pub localizer: f64,
    pub extra_stir: f64,
    pub ax_t1: f64,
    pub post_contrast: f64,
    pub dwi: f64,
}

impl Default for DistractorRates {
    fn default() -> Self {
        DistractorRates {
            localizer: 0.9,
            extra_stir: 0.25,
            ax_t1: 0.3,
            post_contrast: 0.5,
            dwi: 0.2,
        }
    }
}

impl FromStr for DistractorRates {
    type Err = String;
    /// Parses `name=p,name=p` over the defaults; `none` sets all to 0 and `all` to 1.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut r = DistractorRates::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "none" => {
                    r = DistractorRates {
                        localizer: 0.0,
                        extra_stir: 0.0,
                        ax_t1: 0.0,
                        post_contrast: 0.0,
                        dwi: 0.0,
                    }
                }
                "all" => {
                    r = DistractorRates {
                        localizer: 1.0,
                        extra_stir: 1.0,
                        ax_t1: 1.0,
                        post_contrast: 1.0,
                        dwi: 1.0,
                    }
                }
                _ => {
                    let (name, value) = part.split_once('=').ok_or_else(|| {
                        format!("distractor rate '{part}' is not name=probability")
                    })?;
                    let p: f64 = value
                        .parse()
                        .ok()
                        .filter(|p| (0.0..=1.0).contains(p))
                        .ok_or_else(|| {
                            format!("distractor rate '{part}': probability must be in 0..=1")
                        })?;
                    match name {
                        "localizer" => r.localizer = p,
                        "stir" => r.extra_stir = p,
                        "ax_t1" => r.ax_t1 = p,
                        "post_contrast" => r.post_contrast = p,
                        "dwi" => r.dwi = p,
                        _ => {
                            return Err(format!(
                                "unknown distractor '{name}' (expected localizer, stir, ax_t1, post_contrast, dwi, none or all)"
                            ))
                        }
                    }
                }
            }
        }
        Ok(r)
    }
}

/// The scanner a study was acquired on, with the site's habits.
#[derive(Clone, Debug, PartialEq)]
pub struct Scanner {
    pub site: Site,
    pub vendor: Vendor,
    pub field: FieldStrength,
    pub model: &'static str,
    pub software: &'static str,
    pub institution: &'static str,
    pub station: String,
    pub serial: String,
    /// Baseline SNR of a 3.5 mm slice at 0.75 mm pixels, 1.5 T.
    pub snr: f32,
    /// Posterior spine-coil sensitivity falloff length, mm.
    pub coil_falloff: f32,
    pub fat_suppression: FatSuppression,
    /// Vendor-specific chemical fat-sat flavour named in descriptions (Philips SPIR vs SPAIR).
    pub spair: bool,
}

impl Scanner {
    pub fn sample(site: Site, vendor: Option<Vendor>, rng: &mut ChaCha8Rng) -> Self {
        let vendor = vendor.unwrap_or_else(|| {
            let weights = match site {
                Site::Internal => [0.55, 0.30, 0.15],
                Site::External => [0.15, 0.45, 0.40],
            };
            pick_weighted(rng, &Vendor::ALL, &weights)
        });
        let p3t = match site {
            Site::Internal => 0.35,
            Site::External => 0.65,
        };
        let field = if rng.random_bool(p3t) {
            FieldStrength::T3
        } else {
            FieldStrength::T1_5
        };
        let fs_weights = match site {
            Site::Internal => [0.8, 0.15, 0.05],
            Site::External => [0.35, 0.4, 0.25],
        };
        let fs_kind = pick_weighted(rng, &[0, 1, 2], &fs_weights);
        let fat_suppression = match fs_kind {
            0 => FatSuppression::Chemical {
                residual: rng.random_range(0.05..0.15),
                edge: rng.random_range(0.1..0.4),
            },
            1 => FatSuppression::Stir,
            _ => FatSuppression::DixonWater {
                residual: rng.random_range(0.02..0.05),
            },
        };
        let (snr, coil_falloff) = match site {
            Site::Internal => (rng.random_range(28.0..40.0), rng.random_range(110.0..150.0)),
            Site::External => (rng.random_range(16.0..28.0), rng.random_range(70.0..110.0)),
        };
        Scanner {
            site,
            vendor,
            field,
            model: vendor.model(field, rng),
            software: vendor.software(),
            institution: match site {
                Site::Internal => "ISMF Synthetic Internal Hospital",
                Site::External => "ISMF Synthetic External Centre",
            },
            station: format!("SIMMR{:02}", rng.random_range(1..20)),
            serial: format!("{}", rng.random_range(10000..99999)),
            snr,
            coil_falloff,
            fat_suppression,
            spair: rng.random_bool(0.5),
        }
    }
}

pub fn pick_weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[T], weights: &[f64]) -> T {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random_range(0.0..total);
    for (item, w) in items.iter().zip(weights) {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1]
}

/// Image plane of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plane {
    Sagittal,
    Coronal,
    Axial,
}

/// Vendor header labels of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesLabels {
    pub description: String,
    pub protocol_name: String,
    pub sequence_name: &'static str,
    pub scanning_sequence: &'static str,
    pub sequence_variant: &'static str,
    pub scan_options: &'static str,
    pub image_type: &'static str,
}

/// Everything needed to acquire one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesProtocol {
    pub role: SeriesRole,
    pub plane: Plane,
    pub weighting: Weighting,
    pub fat: FatSuppression,
    pub contrast: bool,
    pub slices: usize,
    pub thickness: f32,
    pub spacing: f32,
    pub matrix: usize,
    pub fov: f32,
    pub echo_train: u32,
    pub flip_angle: f32,
    pub averages: f32,
    pub bandwidth: f32,
    pub labels: SeriesLabels,
}

fn r(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    rng.random_range(lo..hi)
}

/// Rounds a repetition or echo time the way consoles display them.
fn ms(x: f32) -> f32 {
    if x > 100.0 {
        x.round()
    } else {
        (x * 10.0).round() / 10.0
    }
}

impl SeriesProtocol {
    /// Draws the protocol of `role` for `scanner`.
    pub fn sample(role: SeriesRole, scanner: &Scanner, rng: &mut ChaCha8Rng) -> Self {
        let ext = scanner.site == Site::External;
        let t3 = scanner.field == FieldStrength::T3;
        let sag_matrix = *if ext {
            &[256, 288, 384, 448][..]
        } else {
            &[320, 320, 384][..]
        }
        .choose(rng)
        .unwrap_or(&320);
        let sag_thick = if ext {
            *[3.5, 4.0].choose(rng).unwrap_or(&4.0)
        } else {
            3.0
        };
        let sag_fov = if ext {
            r(rng, 260.0, 340.0)
        } else {
            r(rng, 280.0, 320.0)
        };
        let ax_thick = if ext {
            *[4.0, 5.0].choose(rng).unwrap_or(&4.0)
        } else {
            r(rng, 3.5, 4.0).round()
        };
        let sag_slices = rng.random_range(13..=17);
        let stir_ti = if t3 {
            r(rng, 200.0, 250.0)
        } else {
            r(rng, 150.0, 180.0)
        };
        let fat = match role {
            SeriesRole::SagT2fs => scanner.fat_suppression,
            SeriesRole::SagStir => FatSuppression::Stir,
            _ => FatSuppression::None,
        };
        let t2_te = if ext {
            r(rng, 105.0, 120.0)
        } else {
            r(rng, 85.0, 105.0)
        };
        let t1_tr = if ext {
            r(rng, 600.0, 800.0)
        } else {
            r(rng, 420.0, 650.0)
        };
        let weighting = match role {
            SeriesRole::SagT1w | SeriesRole::AxT1w | SeriesRole::SagT1Post => Weighting::SpinEcho {
                tr: ms(t1_tr),
                te: ms(r(rng, 8.0, 16.0)),
            },
            SeriesRole::SagT2w | SeriesRole::AxT2w => Weighting::SpinEcho {
                tr: ms(r(rng, 2800.0, 4500.0)),
                te: ms(t2_te),
            },
            SeriesRole::SagT2fs => match fat {
                FatSuppression::Stir => Weighting::InversionRecovery {
                    tr: ms(r(rng, 3500.0, 5000.0)),
                    te: ms(r(rng, 40.0, 70.0)),
                    ti: ms(stir_ti),
                },
                _ => Weighting::SpinEcho {
                    tr: ms(r(rng, 3000.0, 5000.0)),
                    te: ms(r(rng, 60.0, 100.0)),
                },
            },
            SeriesRole::SagStir => Weighting::InversionRecovery {
                tr: ms(r(rng, 3500.0, 5000.0)),
                te: ms(r(rng, 40.0, 70.0)),
                ti: ms(stir_ti),
            },
            SeriesRole::Localizer => Weighting::GradientEcho {
                tr: ms(r(rng, 7.0, 9.0)),
                te: ms(r(rng, 3.0, 4.5)),
                flip_deg: 20.0,
            },
            SeriesRole::Dwi => Weighting::Diffusion {
                tr: ms(r(rng, 3000.0, 5000.0)),
                te: ms(r(rng, 70.0, 90.0)),
                b: 800.0,
            },
        };
        let (plane, slices, thickness, gap, matrix, fov) = match role {
            SeriesRole::AxT2w | SeriesRole::AxT1w => (
                Plane::Axial,
                0,
                ax_thick,
                r(rng, 0.0, 0.1),
                *[256, 320, 384].choose(rng).unwrap_or(&320),
                r(rng, 180.0, 220.0),
            ),
            SeriesRole::Localizer => (Plane::Sagittal, 1, 10.0, 0.0, 256, r(rng, 400.0, 450.0)),
            SeriesRole::Dwi => (
                Plane::Sagittal,
                rng.random_range(10..=12),
                4.0,
                0.1,
                128,
                r(rng, 240.0, 280.0),
            ),
            _ => (
                Plane::Sagittal,
                sag_slices,
                sag_thick,
                r(rng, 0.1, 0.3),
                sag_matrix,
                sag_fov,
            ),
        };
        let spacing = ((thickness * (1.0 + gap)) * 10.0).round() / 10.0;
        let echo_train = match weighting {
            Weighting::SpinEcho { te, .. } if te < 30.0 => rng.random_range(3..=5),
            Weighting::SpinEcho { .. } | Weighting::InversionRecovery { .. } => {
                rng.random_range(12..=24)
            }
            Weighting::GradientEcho { .. } => 1,
            Weighting::Diffusion { .. } => 63,
        };
        let flip_angle = match weighting {
            Weighting::GradientEcho { flip_deg, .. } => flip_deg,
            _ => {
                if scanner.vendor == Vendor::Philips {
                    90.0
                } else {
                    150.0
                }
            }
        };
        SeriesProtocol {
            role,
            plane,
            weighting,
            fat,
            contrast: role == SeriesRole::SagT1Post,
            slices,
            thickness,
            spacing,
            matrix,
            fov: fov.round(),
            echo_train,
            flip_angle,
            averages: if matches!(role, SeriesRole::Localizer) {
                1.0
            } else {
                *[1.0, 2.0].choose(rng).unwrap_or(&1.0)
            },
            bandwidth: r(rng, 150.0, 300.0).round(),
            labels: labels(scanner, role, fat, sag_matrix),
        }
    }
}

/// Vendor naming for a series (DOMAIN.md examples).
fn labels(scanner: &Scanner, role: SeriesRole, fat: FatSuppression, matrix: usize) -> SeriesLabels {
    use SeriesRole as R;
    let stir = matches!(fat, FatSuppression::Stir);
    let dixon = matches!(fat, FatSuppression::DixonWater { .. });
    let (desc, seq, ss, sv, so, it): (String, &str, &str, &str, &str, &str) = match scanner.vendor {
        Vendor::Siemens => {
            let std = "ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D";
            match role {
                R::SagT1w => (
                    "t1_tse_sag".into(),
                    "*tse2d1_3",
                    "SE",
                    "SK\\SP\\OSP",
                    "PFP",
                    std,
                ),
                R::SagT2w => (
                    if matrix >= 384 {
                        "t2_tse_sag_384"
                    } else {
                        "t2_tse_sag"
                    }
                    .into(),
                    "*tse2d1_17",
                    "SE",
                    "SK\\SP\\OSP",
                    "",
                    std,
                ),
                R::SagT2fs if stir => (
                    "t2_tirm_sag".into(),
                    "*tir2d1_15",
                    "IR",
                    "SK\\SP\\MP\\OSP",
                    "IR",
                    std,
                ),
                R::SagT2fs if dixon => (
                    "t2_tse_dixon_sag_W".into(),
                    "*tse2d1_15",
                    "SE",
                    "SK\\SP\\OSP",
                    "",
                    "DERIVED\\PRIMARY\\DIXON\\WATER",
                ),
                R::SagT2fs => (
                    "t2_tse_fs_sag".into(),
                    "*tse2d1_15",
                    "SE",
                    "SK\\SP\\OSP",
                    "FS",
                    std,
                ),
                R::AxT2w => (
                    "t2_tse_tra".into(),
                    "*tse2d1_17",
                    "SE",
                    "SK\\SP\\OSP",
                    "",
                    std,
                ),
                R::Localizer => ("localizer".into(), "*fl2d1", "GR", "SP", "", std),
                R::SagStir => (
                    "t2_tirm_sag".into(),
                    "*tir2d1_15",
                    "IR",
                    "SK\\SP\\MP\\OSP",
                    "IR",
                    std,
                ),
                R::AxT1w => (
                    "t1_tse_tra".into(),
                    "*tse2d1_3",
                    "SE",
                    "SK\\SP\\OSP",
                    "PFP",
                    std,
                ),
                R::SagT1Post => (
                    "t1_tse_sag_post".into(),
                    "*tse2d1_3",
                    "SE",
                    "SK\\SP\\OSP",
                    "PFP",
                    std,
                ),
                R::Dwi => (
                    "ep2d_diff_sag_TRACEW".into(),
                    "*ep_b800t",
                    "EP",
                    "SK\\SP",
                    "PFP\\FS",
                    "ORIGINAL\\PRIMARY\\DIFFUSION\\TRACEW\\ND",
                ),
            }
        }
        Vendor::Ge => {
            let std = "ORIGINAL\\PRIMARY\\OTHER";
            match role {
                R::SagT1w => (
                    "Sag T1 FSE".into(),
                    "fsexl",
                    "SE",
                    "SK\\OSP",
                    "FAST_GEMS\\FILTERED_GEMS\\SAT_GEMS",
                    std,
                ),
                R::SagT2w => (
                    "Sag T2 FSE".into(),
                    "fsexl",
                    "SE",
                    "SK\\OSP",
                    "FAST_GEMS\\FILTERED_GEMS\\EDR_GEMS",
                    std,
                ),
                R::SagT2fs if stir => (
                    "SAG STIR".into(),
                    "fsexl_ir",
                    "SE\\IR",
                    "SK\\OSP",
                    "IR_GEMS\\FAST_GEMS\\FILTERED_GEMS",
                    std,
                ),
                R::SagT2fs if dixon => (
                    "Sag T2 FLEX WATER".into(),
                    "fsexl_flex",
                    "SE",
                    "SK\\OSP",
                    "FAST_GEMS\\FILTERED_GEMS",
                    "DERIVED\\PRIMARY\\DIXON\\WATER",
                ),
                R::SagT2fs => (
                    "Sag T2 FSE FS".into(),
                    "fsexl",
                    "SE",
                    "SK\\OSP",
                    "FAST_GEMS\\FILTERED_GEMS\\FS",
                    std,
                ),
                R::AxT2w => (
                    "Ax T2 FSE".into(),
                    "fsexl",
                    "SE",
                    "SK\\OSP",
                    "FAST_GEMS\\FILTERED_GEMS\\SAT_GEMS",
                    std,
                ),
                R::Localizer => (
                    "3-Plane Loc".into(),
                    "fgre",
                    "GR",
                    "SS\\SK",
                    "FAST_GEMS",
                    "ORIGINAL\\PRIMARY\\LOCALIZER",
                ),
                R::SagStir => (
                    "SAG STIR".into(),
                    "fsexl_ir",
                    "SE\\IR",
                    "SK\\OSP",
                    "IR_GEMS\\FAST_GEMS\\FILTERED_GEMS",
                    std,
                ),
                R::AxT1w => (
                    "Ax T1 FSE".into(),
                    "fsexl",
                    "SE",
                    "SK\\OSP",
                    "FAST_GEMS\\FILTERED_GEMS",
                    std,
                ),
                R::SagT1Post => (
                    "Sag T1 FSE +C".into(),
                    "fsexl",
                    "SE",
                    "SK\\OSP",
                    "FAST_GEMS\\FILTERED_GEMS\\SAT_GEMS",
                    std,
                ),
                R::Dwi => (
                    "Sag DWI b800".into(),
                    "epi2",
                    "EP\\SE",
                    "SK\\SS",
                    "EPI_GEMS\\ACC_GEMS",
                    std,
                ),
            }
        }
        Vendor::Philips => {
            let std = "ORIGINAL\\PRIMARY\\M_SE\\M\\SE";
            let chem = if scanner.spair {
                "sT2W_SPAIR SAG"
            } else {
                "T2W_TSE SPIR SAG"
            };
            match role {
                R::SagT1w => ("T1W_TSE SAG".into(), "TSE", "SE", "SK", "", std),
                R::SagT2w => ("T2W_TSE SAG".into(), "TSE", "SE", "SK", "", std),
                R::SagT2fs if stir => (
                    "T2W_STIR SAG".into(),
                    "TSE",
                    "IR",
                    "SK",
                    "",
                    "ORIGINAL\\PRIMARY\\M_IR\\M\\IR",
                ),
                R::SagT2fs if dixon => (
                    "T2W_mDIXON W SAG".into(),
                    "TSE",
                    "SE",
                    "SK",
                    "",
                    "ORIGINAL\\PRIMARY\\DIXON\\W",
                ),
                R::SagT2fs => (chem.into(), "TSE", "SE", "SK", "FS", std),
                R::AxT2w => ("T2W_TSE TRA".into(), "TSE", "SE", "SK", "", std),
                R::Localizer => (
                    "Survey".into(),
                    "FFE",
                    "GR",
                    "SP",
                    "",
                    "ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE",
                ),
                R::SagStir => (
                    "STIR SAG".into(),
                    "TSE",
                    "IR",
                    "SK",
                    "",
                    "ORIGINAL\\PRIMARY\\M_IR\\M\\IR",
                ),
                R::AxT1w => ("T1W_TSE TRA".into(), "TSE", "SE", "SK", "", std),
                R::SagT1Post => ("T1W_TSE SAG +Gd".into(), "TSE", "SE", "SK", "", std),
                R::Dwi => ("DWI SAG b800".into(), "EPI", "SE", "SK", "FS", std),
            }
        }
    };
    let protocol_name = match scanner.vendor {
        Vendor::Siemens => desc.clone(),
        Vendor::Ge => "SPINE ROUTINE".to_string(),
        Vendor::Philips => format!("WIP {desc}"),
    };
    SeriesLabels {
        description: desc,
        protocol_name,
        sequence_name: seq,
        scanning_sequence: ss,
        sequence_variant: sv,
        scan_options: so,
        image_type: it,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn distractor_rates_parse_and_reject() {
        let r: DistractorRates = "none,dwi=0.5".parse().unwrap_or_default();
        assert_eq!(r.dwi, 0.5);
        assert_eq!(r.localizer, 0.0);
        assert!("dwi=2".parse::<DistractorRates>().is_err());
        assert!("cats=0.1".parse::<DistractorRates>().is_err());
        assert!("dwi".parse::<DistractorRates>().is_err());
    }

    #[test]
    fn required_protocols_have_textbook_contrast() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for site in [Site::Internal, Site::External] {
            for vendor in Vendor::ALL {
                let sc = Scanner::sample(site, Some(vendor), &mut rng);
                let t1 = SeriesProtocol::sample(SeriesRole::SagT1w, &sc, &mut rng);
                let t2 = SeriesProtocol::sample(SeriesRole::SagT2w, &sc, &mut rng);
                match (t1.weighting, t2.weighting) {
                    (
                        Weighting::SpinEcho { tr: tr1, te: te1 },
                        Weighting::SpinEcho { tr: tr2, te: te2 },
                    ) => {
                        assert!(tr1 <= 800.0 && te1 < 30.0);
                        assert!(tr2 >= 2500.0 && te2 >= 80.0);
                    }
                    other => panic!("unexpected weightings {other:?}"),
                }
                let ax = SeriesProtocol::sample(SeriesRole::AxT2w, &sc, &mut rng);
                assert_eq!(ax.plane, Plane::Axial);
                assert!(ax.spacing >= ax.thickness);
            }
        }
    }
}
