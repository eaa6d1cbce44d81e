//! Tissues, their relaxation properties and the MR signal equations.
//!
//! Every voxel of the simulated patient is one [`TissueId`]. A series turns the ids into signal
//! through a [`SignalTable`] computed once per series from the sequence parameters, so the hot
//! rendering loop is a table lookup. Values are published relaxation times at 1.5 T and 3 T (the
//! project's domain notes, summarised in README.md's simulator section); where those give no
//! number (viscera, lung, ADC) the value is a textbook approximation noted beside it.

/// Index into a study's tissue table. Base tissues are [`Tissue`] variants; tumour tissue uses
/// [`TUMOUR_BINS`] consecutive ids from [`Tissue::Tumour`] so that a heterogeneous lesion is a
/// handful of slightly different tissues rather than a per-voxel computation.
pub type TissueId = u8;

/// Number of tumour sub-tissues spanning a lesion's heterogeneity range.
pub const TUMOUR_BINS: usize = 8;

/// The base tissues of the patient model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tissue {
    Air = 0,
    Fat,
    Muscle,
    Csf,
    Cord,
    /// Cord with raised water content around an intramedullary lesion (oedema).
    CordEdema,
    /// Normal vertebral marrow: a fat + water mixture, fat fraction set per patient.
    Marrow,
    /// Marrow whose fat is replaced by metastatic tumour.
    MarrowMet,
    /// Degenerative (Modic type 1) endplate marrow oedema: a benign mimic of marrow replacement.
    MarrowEdema,
    /// Cortical bone, endplates, dura and ligaments give almost no signal.
    Cortical,
    Ligament,
    DiscNucleus,
    DiscAnnulus,
    /// Abdominal and mediastinal organs, neck soft tissue (approximate: T1 700, T2 50).
    Viscera,
    /// Aerated lung: very low proton density.
    Lung,
    Hemosiderin,
    Calcification,
    /// Cysts, syrinx and other free fluid.
    CystFluid,
    /// Vertebral haemangioma: fatty stroma and slow-flowing blood; bright on T1 and T2.
    Hemangioma,
    /// Subacute intratumoural haemorrhage (extracellular methaemoglobin): short T1 and long T2,
    /// so bright on T1 where a cyst is dark, while on T2 the two look alike. Textbook values
    /// (DOMAIN.md gives none): T1 ≈ 350 / 420 ms, T2 ≈ 180 / 160 ms at 1.5 / 3 T.
    Methaemoglobin,
    /// First of the [`TUMOUR_BINS`] tumour sub-tissues.
    Tumour,
}

/// Number of tissue ids a study uses.
pub const N_TISSUES: usize = Tissue::Tumour as usize + TUMOUR_BINS;

impl Tissue {
    /// The id of this base tissue.
    pub const fn id(self) -> TissueId {
        self as TissueId
    }
}

/// The id of tumour sub-tissue `bin` (clamped to the available bins).
pub fn tumour_id(bin: usize) -> TissueId {
    (Tissue::Tumour as usize + bin.min(TUMOUR_BINS - 1)) as TissueId
}

/// Relaxation properties of one tissue at one field strength.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relaxation {
    /// Proton density, relative to free water.
    pub pd: f32,
    /// Fraction of the signal from fat protons (the rest is water).
    pub fat_fraction: f32,
    /// Water-component T1 in ms.
    pub t1: f32,
    /// Water-component T2 in ms.
    pub t2: f32,
    /// Apparent diffusion coefficient of the water component, 10⁻³ mm²/s.
    pub adc: f32,
    /// Gadolinium uptake as a T1 relaxation rate added after contrast, 1/ms.
    pub enhancement: f32,
}

/// Magnetic field strength of a scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum FieldStrength {
    #[serde(rename = "1.5T")]
    T1_5,
    #[serde(rename = "3T")]
    T3,
}

impl FieldStrength {
    pub fn tesla(self) -> f32 {
        match self {
            FieldStrength::T1_5 => 1.5,
            FieldStrength::T3 => 3.0,
        }
    }
}

/// Fat relaxation (subcutaneous and marrow fat), DOMAIN.md.
pub fn fat_relaxation(field: FieldStrength) -> (f32, f32) {
    match field {
        FieldStrength::T1_5 => (260.0, 80.0),
        FieldStrength::T3 => (380.0, 70.0),
    }
}

/// Picks the 1.5 T or 3 T value.
fn by_field(field: FieldStrength, at_1_5: f32, at_3: f32) -> f32 {
    match field {
        FieldStrength::T1_5 => at_1_5,
        FieldStrength::T3 => at_3,
    }
}

/// The tissue table of one study: base tissues plus its lesion's tumour bins.
#[derive(Clone, Debug)]
pub struct TissueTable {
    pub field: FieldStrength,
    pub entries: [Relaxation; N_TISSUES],
}

/// Tumour properties drawn for one lesion; the bins span `t2_range` (and `t1_range` alongside)
/// so heterogeneity shows as patchy T2 signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TumourProperties {
    pub t1_range: (f32, f32),
    pub t2_range: (f32, f32),
    pub pd: f32,
    pub adc: f32,
    pub enhancement: f32,
}

impl TissueTable {
    /// Builds the table for a patient with the given marrow fat fraction and tumour.
    pub fn new(field: FieldStrength, marrow_fat_fraction: f32, tumour: &TumourProperties) -> Self {
        let f = field;
        let r = |pd, fat_fraction, t1, t2, adc, enhancement| Relaxation {
            pd,
            fat_fraction,
            t1,
            t2,
            adc,
            enhancement,
        };
        let (fat_t1, fat_t2) = fat_relaxation(f);
        let mut entries = [r(0.0, 0.0, 1000.0, 1.0, 0.0, 0.0); N_TISSUES];
        entries[Tissue::Fat as usize] = r(1.0, 1.0, fat_t1, fat_t2, 0.0, 0.0);
        entries[Tissue::Muscle as usize] = r(
            0.8,
            0.0,
            by_field(f, 1000.0, 1400.0),
            by_field(f, 40.0, 35.0),
            1.5,
            0.0003,
        );
        entries[Tissue::Csf as usize] = r(
            1.0,
            0.0,
            by_field(f, 4000.0, 4200.0),
            by_field(f, 2000.0, 1800.0),
            3.0,
            0.0,
        );
        entries[Tissue::Cord as usize] = r(
            0.7,
            0.0,
            by_field(f, 750.0, 900.0),
            by_field(f, 75.0, 70.0),
            1.0,
            0.0,
        );
        entries[Tissue::CordEdema as usize] = r(
            0.8,
            0.0,
            by_field(f, 950.0, 1150.0),
            by_field(f, 110.0, 100.0),
            1.5,
            0.0,
        );
        // Marrow: a water component with T1 ≈ 1000, T2 ≈ 50 mixed with fat (DOMAIN.md).
        entries[Tissue::Marrow as usize] = r(
            0.9,
            marrow_fat_fraction,
            by_field(f, 1000.0, 1200.0),
            50.0,
            0.5,
            0.0005,
        );
        entries[Tissue::MarrowMet as usize] = r(
            0.9,
            0.04,
            by_field(f, 1200.0, 1450.0),
            by_field(f, 90.0, 80.0),
            0.9,
            0.0025,
        );
        entries[Tissue::MarrowEdema as usize] = r(
            0.9,
            0.15,
            by_field(f, 1150.0, 1350.0),
            by_field(f, 85.0, 75.0),
            1.2,
            0.0015,
        );
        entries[Tissue::Cortical as usize] = r(0.1, 0.0, 1000.0, 1.0, 0.0, 0.0);
        entries[Tissue::Ligament as usize] = r(0.15, 0.0, 1000.0, 5.0, 0.5, 0.0);
        entries[Tissue::DiscNucleus as usize] = r(
            0.9,
            0.0,
            by_field(f, 1100.0, 1200.0),
            by_field(f, 120.0, 100.0),
            1.5,
            0.0,
        );
        entries[Tissue::DiscAnnulus as usize] = r(
            0.6,
            0.0,
            by_field(f, 900.0, 1000.0),
            by_field(f, 30.0, 27.0),
            1.0,
            0.0,
        );
        entries[Tissue::Viscera as usize] = r(
            0.8,
            0.1,
            by_field(f, 700.0, 900.0),
            by_field(f, 50.0, 45.0),
            1.2,
            0.001,
        );
        entries[Tissue::Lung as usize] = r(0.06, 0.0, 1300.0, 30.0, 1.0, 0.0);
        entries[Tissue::Hemosiderin as usize] = r(0.5, 0.0, 900.0, 15.0, 0.5, 0.0);
        entries[Tissue::Calcification as usize] = r(0.2, 0.0, 1000.0, 3.0, 0.2, 0.0);
        entries[Tissue::CystFluid as usize] = r(
            1.0,
            0.0,
            by_field(f, 3000.0, 3300.0),
            by_field(f, 900.0, 800.0),
            2.8,
            0.0,
        );
        entries[Tissue::Hemangioma as usize] =
            r(0.95, 0.6, by_field(f, 1200.0, 1400.0), 180.0, 1.6, 0.0015);
        entries[Tissue::Methaemoglobin as usize] = r(
            0.9,
            0.0,
            by_field(f, 350.0, 420.0),
            by_field(f, 180.0, 160.0),
            0.8,
            0.0,
        );
        let t1_scale = by_field(f, 1.0, 1.2);
        for bin in 0..TUMOUR_BINS {
            let t = (bin as f32 + 0.5) / TUMOUR_BINS as f32;
            entries[tumour_id(bin) as usize] = r(
                tumour.pd,
                0.0,
                t1_scale * lerp(tumour.t1_range.0, tumour.t1_range.1, t),
                by_field(f, 1.0, 0.92) * lerp(tumour.t2_range.0, tumour.t2_range.1, t),
                tumour.adc,
                tumour.enhancement,
            );
        }
        TissueTable { field, entries }
    }
}

pub fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// The contrast mechanism of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Weighting {
    /// Spin echo / turbo spin echo: S = PD·(1 − e^(−TR/T1))·e^(−TE/T2).
    SpinEcho { tr: f32, te: f32 },
    /// Inversion recovery (STIR): S = PD·|1 − 2e^(−TI/T1) + e^(−TR/T1)|·e^(−TE/T2).
    InversionRecovery { tr: f32, te: f32, ti: f32 },
    /// Spoiled gradient echo (localizers), T2 standing in for T2*.
    GradientEcho { tr: f32, te: f32, flip_deg: f32 },
    /// Diffusion-weighted spin-echo EPI trace image at one b-value (s/mm²).
    Diffusion { tr: f32, te: f32, b: f32 },
}

/// Signal of one spin population (water or fat) under `weighting`.
pub fn spin_signal(weighting: Weighting, pd: f32, t1: f32, t2: f32, adc: f32) -> f32 {
    if pd <= 0.0 {
        return 0.0;
    }
    match weighting {
        Weighting::SpinEcho { tr, te } => pd * (1.0 - (-tr / t1).exp()) * (-te / t2).exp(),
        Weighting::InversionRecovery { tr, te, ti } => {
            pd * (1.0 - 2.0 * (-ti / t1).exp() + (-tr / t1).exp()).abs() * (-te / t2).exp()
        }
        Weighting::GradientEcho { tr, te, flip_deg } => {
            let e1 = (-tr / t1).exp();
            let a = flip_deg.to_radians();
            pd * a.sin() * (1.0 - e1) / (1.0 - a.cos() * e1) * (-te / t2).exp()
        }
        Weighting::Diffusion { tr, te, b } => {
            pd * (1.0 - (-tr / t1).exp()) * (-te / t2).exp() * (-b * adc * 1e-3).exp()
        }
    }
}

/// Per-series signal of every tissue, split into water and fat parts so that a spatially
/// varying fat suppression can scale the fat part per pixel.
#[derive(Clone, Debug)]
pub struct SignalTable {
    pub water: [f32; N_TISSUES],
    pub fat: [f32; N_TISSUES],
}

impl SignalTable {
    /// Signals for `weighting`; `contrast` applies gadolinium T1 shortening (post-contrast T1).
    /// Diffusion series are always fat-suppressed, so their fat part is dropped here.
    pub fn new(table: &TissueTable, weighting: Weighting, contrast: bool) -> Self {
        let (fat_t1, fat_t2) = fat_relaxation(table.field);
        let mut water = [0.0; N_TISSUES];
        let mut fat = [0.0; N_TISSUES];
        for (i, e) in table.entries.iter().enumerate() {
            let t1 = if contrast && e.enhancement > 0.0 {
                1.0 / (1.0 / e.t1 + e.enhancement)
            } else {
                e.t1
            };
            water[i] = spin_signal(weighting, e.pd * (1.0 - e.fat_fraction), t1, e.t2, e.adc);
            fat[i] = match weighting {
                Weighting::Diffusion { .. } => 0.0,
                _ => spin_signal(weighting, e.pd * e.fat_fraction, fat_t1, fat_t2, 0.0),
            };
        }
        SignalTable { water, fat }
    }

    /// Signal of tissue `id` with the fat part scaled by `fat_residual` (1 = no suppression).
    pub fn signal(&self, id: TissueId, fat_residual: f32) -> f32 {
        self.water[id as usize] + fat_residual * self.fat[id as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(field: FieldStrength) -> TissueTable {
        TissueTable::new(
            field,
            0.5,
            &TumourProperties {
                t1_range: (1000.0, 1200.0),
                t2_range: (90.0, 150.0),
                pd: 0.85,
                adc: 1.2,
                enhancement: 0.003,
            },
        )
    }

    #[test]
    fn t1w_and_t2w_contrast_follow_relaxation() {
        for field in [FieldStrength::T1_5, FieldStrength::T3] {
            let t = table(field);
            let t1w = SignalTable::new(
                &t,
                Weighting::SpinEcho {
                    tr: 550.0,
                    te: 12.0,
                },
                false,
            );
            let t2w = SignalTable::new(
                &t,
                Weighting::SpinEcho {
                    tr: 3500.0,
                    te: 100.0,
                },
                false,
            );
            let s = |st: &SignalTable, tis: Tissue| st.signal(tis.id(), 1.0);
            assert!(s(&t1w, Tissue::Csf) < s(&t1w, Tissue::Cord));
            assert!(s(&t2w, Tissue::Csf) > s(&t2w, Tissue::Cord));
            assert!(s(&t1w, Tissue::Fat) > s(&t1w, Tissue::Muscle));
            assert!(s(&t1w, Tissue::MarrowMet) < s(&t1w, Tissue::Marrow));
            assert!(s(&t2w, Tissue::Hemosiderin) < 0.1 * s(&t2w, Tissue::Cord));
            // Subacute blood: bright on T1 where fluid is dark, and like fluid on T2.
            assert!(s(&t1w, Tissue::Methaemoglobin) > 3.0 * s(&t1w, Tissue::CystFluid));
            assert!(s(&t1w, Tissue::Methaemoglobin) > s(&t1w, Tissue::Cord));
            let (blood, fluid) = (s(&t2w, Tissue::Methaemoglobin), s(&t2w, Tissue::CystFluid));
            assert!((blood / fluid - 1.0).abs() < 0.35, "{blood} vs {fluid}");
            assert!(blood > 2.0 * s(&t2w, Tissue::Cord));
        }
    }

    #[test]
    fn stir_nulls_fat_at_its_inversion_time() {
        for (field, ti) in [(FieldStrength::T1_5, 165.0), (FieldStrength::T3, 230.0)] {
            let t = table(field);
            let stir = SignalTable::new(
                &t,
                Weighting::InversionRecovery {
                    tr: 4000.0,
                    te: 50.0,
                    ti,
                },
                false,
            );
            assert!(stir.signal(Tissue::Fat.id(), 1.0) < 0.3 * stir.signal(Tissue::Cord.id(), 1.0));
            assert!(stir.signal(Tissue::Csf.id(), 1.0) > stir.signal(Tissue::Cord.id(), 1.0));
        }
    }

    #[test]
    fn contrast_brightens_enhancing_tissue_only() {
        let t = table(FieldStrength::T1_5);
        let w = Weighting::SpinEcho {
            tr: 550.0,
            te: 12.0,
        };
        let pre = SignalTable::new(&t, w, false);
        let post = SignalTable::new(&t, w, true);
        let tum = tumour_id(3);
        assert!(post.signal(tum, 1.0) > 1.3 * pre.signal(tum, 1.0));
        assert_eq!(
            post.signal(Tissue::Csf.id(), 1.0),
            pre.signal(Tissue::Csf.id(), 1.0)
        );
    }

    #[test]
    fn diffusion_darkens_free_water_more_than_cord() {
        let t = table(FieldStrength::T1_5);
        let b0 = SignalTable::new(
            &t,
            Weighting::Diffusion {
                tr: 4000.0,
                te: 80.0,
                b: 0.0,
            },
            false,
        );
        let b800 = SignalTable::new(
            &t,
            Weighting::Diffusion {
                tr: 4000.0,
                te: 80.0,
                b: 800.0,
            },
            false,
        );
        let ratio = |tis: Tissue| b800.signal(tis.id(), 1.0) / b0.signal(tis.id(), 1.0);
        assert!(ratio(Tissue::Csf) < ratio(Tissue::Cord));
    }
}
