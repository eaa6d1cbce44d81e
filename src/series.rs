//! Sequence identification: which series of a study is the sagittal T1W, sagittal T2W, sagittal
//! T2 fat-suppressed and axial T2W that ISMF-Net reads — with the reasons for every decision.
//!
//! Headers outrank words (DOMAIN.md): the plane comes from ImageOrientationPatient, the weighting
//! from TE/TR/TI and ScanningSequence, fat suppression from ScanOptions tokens, (0018,9025),
//! Dixon ImageType and STIR inversion times. Descriptions and protocol names only break ties
//! where the header is silent or ambiguous. Localizers, post-contrast, diffusion, derived and
//! reformatted series are excluded first. The thresholds and keyword lists are [`Rules`], a
//! serde struct whose defaults are documented here (the appliance runs them as they are; no
//! configuration key overrides them yet).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The four sequences the model reads, plus everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceKind {
    SagT1w,
    SagT2w,
    SagT2fs,
    AxT2w,
    Other,
}

impl SequenceKind {
    /// The required sequences in model-input order.
    pub const REQUIRED: [SequenceKind; 4] = [
        SequenceKind::SagT1w,
        SequenceKind::SagT2w,
        SequenceKind::SagT2fs,
        SequenceKind::AxT2w,
    ];

    pub fn key(self) -> &'static str {
        match self {
            SequenceKind::SagT1w => "sag_t1w",
            SequenceKind::SagT2w => "sag_t2w",
            SequenceKind::SagT2fs => "sag_t2fs",
            SequenceKind::AxT2w => "ax_t2w",
            SequenceKind::Other => "other",
        }
    }
}

impl fmt::Display for SequenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Image plane from the slice normal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plane {
    Sagittal,
    Coronal,
    Axial,
}

/// Identification thresholds and keywords. Defaults follow DOMAIN.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Largest normal component below this marks the series oblique (GDCM's 0.8); it is still
    /// assigned to the nearest plane, with a reason saying so.
    pub oblique_below: f64,
    /// T1-weighted: TE below this (ms) …
    pub t1_max_te: f64,
    /// … and TR below this (ms; up to ~1200 at 3 T).
    pub t1_max_tr: f64,
    /// T2-weighted: TE at least this (ms) …
    pub t2_min_te: f64,
    /// … and TR at least this (ms).
    pub t2_min_tr: f64,
    /// Inversion recovery with TI below this (ms) is STIR-like (fat nulled).
    pub stir_max_ti: f64,
    /// Inversion recovery with TI in this range (ms) is FLAIR (not a required sequence).
    pub flair_ti: (f64, f64),
    /// Description words meaning fat suppression (matched as whole words, case-insensitive).
    pub fat_words: Vec<String>,
    /// Description words meaning a localizer.
    pub localizer_words: Vec<String>,
    /// Description words meaning post-contrast.
    pub contrast_words: Vec<String>,
    /// Description words meaning diffusion.
    pub diffusion_words: Vec<String>,
    /// Description words meaning T1 / T2 weighting, used only when TE/TR are ambiguous.
    pub t1_words: Vec<String>,
    pub t2_words: Vec<String>,
    /// Preference among fat-suppression methods when several T2FS series qualify (first wins).
    pub fat_method_preference: Vec<FatMethod>,
}

impl Default for Rules {
    fn default() -> Self {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
        Rules {
            oblique_below: 0.8,
            t1_max_te: 30.0,
            t1_max_tr: 1200.0,
            t2_min_te: 60.0,
            t2_min_tr: 2000.0,
            stir_max_ti: 300.0,
            flair_ti: (1800.0, 2600.0),
            fat_words: words(&[
                "fs",
                "fatsat",
                "fat sat",
                "chemsat",
                "spair",
                "spir",
                "stir",
                "tirm",
                "fat suppressed",
                "water",
            ]),
            localizer_words: words(&[
                "localizer",
                "localiser",
                "loc",
                "scout",
                "survey",
                "3-plane",
                "3 plane",
                "tri-pilot",
            ]),
            contrast_words: words(&["+c", "post", "gd", "+gd", "gad", "contrast", "c+"]),
            diffusion_words: words(&[
                "dwi",
                "diff",
                "diffusion",
                "adc",
                "trace",
                "tracew",
                "b800",
                "b1000",
            ]),
            t1_words: words(&["t1", "t1w"]),
            t2_words: words(&["t2", "t2w"]),
            fat_method_preference: vec![
                FatMethod::Chemical,
                FatMethod::Dixon,
                FatMethod::Stir,
                FatMethod::Words,
            ],
        }
    }
}

/// How fat suppression was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FatMethod {
    /// ScanOptions `FS` or (0018,9025) FAT / FAT_AND_WATER.
    Chemical,
    /// Dixon water image (ImageType DIXON with W/WATER).
    Dixon,
    /// Inversion recovery with a short TI.
    Stir,
    /// Only the description says so.
    Words,
}

/// The header attributes identification reads, for one series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesHeader {
    pub series_number: Option<i64>,
    pub description: String,
    pub protocol_name: String,
    pub image_type: Vec<String>,
    pub scanning_sequence: Vec<String>,
    pub sequence_variant: Vec<String>,
    pub scan_options: Vec<String>,
    pub echo_time: Option<f64>,
    pub repetition_time: Option<f64>,
    pub inversion_time: Option<f64>,
    /// Every distinct ImageOrientationPatient in the series.
    pub orientations: Vec<[f64; 6]>,
    pub contrast_agent: Option<String>,
    pub diffusion_b_value: Option<f64>,
    /// (0018,9025) SpectrallySelectedSuppression.
    pub spectral_suppression: Option<String>,
    pub instances: usize,
}

/// The outcome for one series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Identification {
    pub kind: SequenceKind,
    pub plane: Option<Plane>,
    pub fat: Option<FatMethod>,
    /// True when a description word decided something the header left open.
    pub used_words: bool,
    pub reasons: Vec<String>,
}

/// Lower-case words of a description: split on anything that is not a letter, digit or '+'.
fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '+'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// True when `phrase` (one or more words) occurs as whole words in `words`.
fn has_phrase(words: &[String], phrase: &str) -> bool {
    let p = tokens(phrase);
    if p.is_empty() {
        return false;
    }
    // "+c" is its own token; "3-plane" splits into two.
    words.windows(p.len()).any(|w| w == p.as_slice())
}

fn any_phrase<'a>(words: &[String], phrases: &'a [String]) -> Option<&'a str> {
    phrases
        .iter()
        .find(|p| has_phrase(words, p))
        .map(String::as_str)
}

fn upper(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.trim().to_uppercase()).collect()
}

/// Plane of an orientation and the strength of its dominant normal component (1 = orthogonal).
pub fn plane_of(iop: &[f64; 6]) -> (Plane, f64) {
    let r = [iop[0], iop[1], iop[2]];
    let c = [iop[3], iop[4], iop[5]];
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-9);
    let a = n.map(|x| x.abs() / len);
    if a[0] >= a[1] && a[0] >= a[2] {
        (Plane::Sagittal, a[0])
    } else if a[1] >= a[2] {
        (Plane::Coronal, a[1])
    } else {
        (Plane::Axial, a[2])
    }
}

/// Identifies one series.
pub fn identify(h: &SeriesHeader, rules: &Rules) -> Identification {
    let mut reasons = Vec::new();
    let words: Vec<String> = tokens(&format!("{} {}", h.description, h.protocol_name));
    let image_type = upper(&h.image_type);
    let scanning = upper(&h.scanning_sequence);
    let options = upper(&h.scan_options);
    let other = |reasons: Vec<String>, plane| Identification {
        kind: SequenceKind::Other,
        plane,
        fat: None,
        used_words: false,
        reasons,
    };

    // Plane first (it is reported even for excluded series).
    let plane = match h.orientations.as_slice() {
        [] => None,
        [one] => {
            let (p, strength) = plane_of(one);
            if strength < rules.oblique_below {
                reasons.push(format!(
                    "plane {p:?} (oblique: largest normal component {strength:.2} < {})",
                    rules.oblique_below
                ));
            } else {
                reasons.push(format!(
                    "plane {p:?} from ImageOrientationPatient (normal component {strength:.2})"
                ));
            }
            Some(p)
        }
        many => {
            reasons.push(format!(
                "localizer: {} different orientations in one series",
                many.len()
            ));
            return other(reasons, None);
        }
    };

    // Exclusions.
    if image_type.iter().any(|t| t == "LOCALIZER") {
        reasons.push("localizer: ImageType contains LOCALIZER".into());
        return other(reasons, plane);
    }
    if let Some(w) = any_phrase(&words, &rules.localizer_words) {
        reasons.push(format!("localizer: description word '{w}'"));
        return other(reasons, plane);
    }
    if h.contrast_agent
        .as_deref()
        .is_some_and(|a| !a.trim().is_empty())
    {
        reasons.push(format!(
            "post-contrast: ContrastBolusAgent '{}'",
            h.contrast_agent.as_deref().unwrap_or_default().trim()
        ));
        return other(reasons, plane);
    }
    if let Some(w) = any_phrase(&words, &rules.contrast_words) {
        reasons.push(format!("post-contrast: description word '{w}'"));
        return other(reasons, plane);
    }
    if scanning.iter().any(|s| s == "EP") {
        reasons.push("diffusion/EPI: ScanningSequence contains EP".into());
        return other(reasons, plane);
    }
    if image_type
        .iter()
        .any(|t| t == "DIFFUSION" || t == "ADC" || t == "TRACEW")
    {
        reasons.push("diffusion: ImageType".into());
        return other(reasons, plane);
    }
    if h.diffusion_b_value.is_some_and(|b| b > 0.0) {
        reasons.push(format!(
            "diffusion: DiffusionBValue {}",
            h.diffusion_b_value.unwrap_or_default()
        ));
        return other(reasons, plane);
    }
    if let Some(w) = any_phrase(&words, &rules.diffusion_words) {
        reasons.push(format!("diffusion: description word '{w}'"));
        return other(reasons, plane);
    }
    let dixon = image_type.iter().any(|t| t == "DIXON");
    let dixon_water = dixon && image_type.iter().any(|t| t == "W" || t == "WATER");
    if dixon && !dixon_water {
        reasons.push("Dixon image that is not the water image".into());
        return other(reasons, plane);
    }
    let derived = image_type.first().is_some_and(|t| t == "DERIVED")
        || image_type.get(1).is_some_and(|t| t == "SECONDARY");
    if derived && !dixon_water {
        reasons.push(format!(
            "derived or reformatted: ImageType {}",
            h.image_type.join("\\")
        ));
        return other(reasons, plane);
    }
    if dixon_water && derived {
        reasons.push("Dixon water image (derived, accepted)".into());
    }
    if !scanning.is_empty() && !scanning.iter().any(|s| s == "SE" || s == "IR") {
        reasons.push(format!(
            "not spin echo or inversion recovery: ScanningSequence {}",
            scanning.join("\\")
        ));
        return other(reasons, plane);
    }

    // Weighting.
    let ir = scanning.iter().any(|s| s == "IR") || options.iter().any(|o| o == "IR");
    let mut used_words = false;
    let mut fat = None;
    enum W {
        T1,
        T2,
    }
    let weighting = match (h.echo_time, h.repetition_time, h.inversion_time) {
        (_, _, Some(ti)) if ir && ti < rules.stir_max_ti => {
            reasons.push(format!(
                "STIR: inversion recovery with TI {ti} ms < {}",
                rules.stir_max_ti
            ));
            fat = Some(FatMethod::Stir);
            Some(W::T2)
        }
        (_, _, Some(ti)) if ir && ti >= rules.flair_ti.0 && ti <= rules.flair_ti.1 => {
            reasons.push(format!("FLAIR: inversion recovery with TI {ti} ms"));
            return other(reasons, plane);
        }
        (Some(te), Some(tr), _) if te < rules.t1_max_te && tr < rules.t1_max_tr => {
            reasons.push(format!(
                "T1-weighted: TE {te} < {} and TR {tr} < {} ms",
                rules.t1_max_te, rules.t1_max_tr
            ));
            Some(W::T1)
        }
        (Some(te), Some(tr), _) if te >= rules.t2_min_te && tr >= rules.t2_min_tr => {
            reasons.push(format!(
                "T2-weighted: TE {te} ≥ {} and TR {tr} ≥ {} ms",
                rules.t2_min_te, rules.t2_min_tr
            ));
            Some(W::T2)
        }
        (Some(te), Some(tr), _) if te < rules.t1_max_te && tr >= rules.t2_min_tr => {
            reasons.push(format!(
                "proton density: short TE {te} with long TR {tr} ms"
            ));
            return other(reasons, plane);
        }
        (te, tr, _) => {
            let t1 = any_phrase(&words, &rules.t1_words);
            let t2 = any_phrase(&words, &rules.t2_words);
            let timing = format!("TE {te:?} / TR {tr:?}");
            match (t1, t2) {
                (Some(w), None) => {
                    used_words = true;
                    reasons.push(format!(
                        "T1-weighted from description word '{w}' ({timing} ambiguous)"
                    ));
                    Some(W::T1)
                }
                (None, Some(w)) => {
                    used_words = true;
                    reasons.push(format!(
                        "T2-weighted from description word '{w}' ({timing} ambiguous)"
                    ));
                    Some(W::T2)
                }
                _ => {
                    reasons.push(format!(
                        "weighting undetermined: {timing}, no decisive description word"
                    ));
                    None
                }
            }
        }
    };

    // Fat suppression from the header, then words.
    if fat.is_none() {
        if options.iter().any(|o| o == "FS") {
            reasons.push("fat-suppressed: ScanOptions token FS".into());
            fat = Some(FatMethod::Chemical);
        } else if h.spectral_suppression.as_deref().is_some_and(|s| {
            let s = s.trim().to_uppercase();
            s == "FAT" || s == "FAT_AND_WATER"
        }) {
            reasons.push("fat-suppressed: SpectrallySelectedSuppression".into());
            fat = Some(FatMethod::Chemical);
        } else if dixon_water {
            reasons.push("fat-suppressed: Dixon water image".into());
            fat = Some(FatMethod::Dixon);
        } else if let Some(w) = any_phrase(&words, &rules.fat_words) {
            used_words = true;
            reasons.push(format!(
                "fat-suppressed from description word '{w}' (header silent)"
            ));
            fat = Some(FatMethod::Words);
        }
    }

    let kind = match (plane, weighting, fat.is_some()) {
        (Some(Plane::Sagittal), Some(W::T1), false) => SequenceKind::SagT1w,
        (Some(Plane::Sagittal), Some(W::T2), false) => SequenceKind::SagT2w,
        (Some(Plane::Sagittal), Some(W::T2), true) => SequenceKind::SagT2fs,
        (Some(Plane::Axial), Some(W::T2), false) => SequenceKind::AxT2w,
        (Some(Plane::Axial), Some(W::T2), true) => {
            reasons.push("axial T2 with fat suppression is not a required sequence".into());
            SequenceKind::Other
        }
        (Some(Plane::Sagittal), Some(W::T1), true) => {
            reasons.push("fat-suppressed T1 is not a required sequence".into());
            SequenceKind::Other
        }
        (Some(p), Some(W::T1), _) if p != Plane::Sagittal => {
            reasons.push(format!("{p:?} T1 is not a required sequence"));
            SequenceKind::Other
        }
        (Some(Plane::Coronal), _, _) => {
            reasons.push("coronal series are not read by the model".into());
            SequenceKind::Other
        }
        (None, _, _) => {
            reasons.push("no ImageOrientationPatient".into());
            SequenceKind::Other
        }
        _ => SequenceKind::Other,
    };
    Identification {
        kind,
        plane,
        fat,
        used_words,
        reasons,
    }
}

/// A series under consideration, with its index in the caller's list.
struct Candidate<'a> {
    index: usize,
    header: &'a SeriesHeader,
    identification: &'a Identification,
}

/// Picks one series per required kind. Tie-break (documented order): decided by headers before
/// words; for T2FS the preferred fat method; original before derived; more instances; later
/// series number. `headers` and `identifications` run in parallel; returns, per kind, the index
/// of the chosen series and a reason naming the runners-up.
pub fn select(
    headers: &[SeriesHeader],
    identifications: &[Identification],
    rules: &Rules,
) -> Vec<(SequenceKind, Option<(usize, String)>)> {
    let candidates: Vec<Candidate<'_>> = headers
        .iter()
        .zip(identifications)
        .enumerate()
        .map(|(index, (header, identification))| Candidate {
            index,
            header,
            identification,
        })
        .collect();
    SequenceKind::REQUIRED
        .iter()
        .map(|&kind| {
            let mut c: Vec<&Candidate<'_>> = candidates.iter().filter(|c| c.identification.kind == kind).collect();
            let fat_rank = |c: &Candidate<'_>| {
                c.identification
                    .fat
                    .and_then(|m| rules.fat_method_preference.iter().position(|p| *p == m))
                    .unwrap_or(usize::MAX)
            };
            let derived = |c: &Candidate<'_>| c.header.image_type.first().is_some_and(|t| t.eq_ignore_ascii_case("DERIVED"));
            c.sort_by(|a, b| {
                a.identification
                    .used_words
                    .cmp(&b.identification.used_words)
                    .then_with(|| if kind == SequenceKind::SagT2fs { fat_rank(a).cmp(&fat_rank(b)) } else { std::cmp::Ordering::Equal })
                    .then_with(|| derived(a).cmp(&derived(b)))
                    .then_with(|| b.header.instances.cmp(&a.header.instances))
                    .then_with(|| b.header.series_number.cmp(&a.header.series_number))
            });
            let chosen = c.first().map(|best| {
                let reason = if c.len() == 1 {
                    "only candidate".to_string()
                } else {
                    let others: Vec<String> =
                        c[1..].iter().map(|o| format!("series {}", o.header.series_number.unwrap_or(-1))).collect();
                    format!(
                        "chosen over {} by tie-break (headers before words, fat method preference, original before derived, more instances, later series number)",
                        others.join(", ")
                    )
                };
                (best.index, reason)
            });
            (kind, chosen)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAG: [f64; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    const AX: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    fn header(desc: &str, te: f64, tr: f64, iop: [f64; 6]) -> SeriesHeader {
        SeriesHeader {
            series_number: Some(3),
            description: desc.into(),
            image_type: vec!["ORIGINAL".into(), "PRIMARY".into(), "M".into()],
            scanning_sequence: vec!["SE".into()],
            echo_time: Some(te),
            repetition_time: Some(tr),
            orientations: vec![iop],
            instances: 15,
            ..Default::default()
        }
    }

    #[test]
    fn basic_kinds_from_headers() {
        let r = Rules::default();
        assert_eq!(
            identify(&header("t1_tse_sag", 12.0, 550.0, SAG), &r).kind,
            SequenceKind::SagT1w
        );
        assert_eq!(
            identify(&header("x", 100.0, 3500.0, SAG), &r).kind,
            SequenceKind::SagT2w
        );
        assert_eq!(
            identify(&header("x", 100.0, 3500.0, AX), &r).kind,
            SequenceKind::AxT2w
        );
        let mut fs = header("t2 sag", 80.0, 3500.0, SAG);
        fs.scan_options = vec!["PFP".into(), "FS".into()];
        let id = identify(&fs, &r);
        assert_eq!(id.kind, SequenceKind::SagT2fs);
        assert!(
            id.reasons
                .iter()
                .any(|x| x.contains("ScanOptions token FS")),
            "{:?}",
            id.reasons
        );
    }

    #[test]
    fn fse_and_sat_tokens_are_not_fat_saturation() {
        let r = Rules::default();
        let mut h = header("Sag T2 FSE", 100.0, 3500.0, SAG);
        h.scan_options = vec!["FAST_GEMS".into(), "SAT_GEMS".into(), "FSE".into()];
        let id = identify(&h, &r);
        assert_eq!(id.kind, SequenceKind::SagT2w, "{:?}", id.reasons);
    }

    #[test]
    fn spiral_is_not_spir() {
        let r = Rules::default();
        let id = identify(&header("T2 spiral sag", 100.0, 3500.0, SAG), &r);
        assert_eq!(id.kind, SequenceKind::SagT2w);
        let id = identify(&header("T2W_TSE SPIR SAG", 100.0, 3500.0, SAG), &r);
        assert_eq!(id.kind, SequenceKind::SagT2fs);
        assert!(id.used_words);
    }

    #[test]
    fn stir_flair_pd_and_exclusions() {
        let r = Rules::default();
        let mut stir = header("SAG STIR", 50.0, 4000.0, SAG);
        stir.scanning_sequence = vec!["SE".into(), "IR".into()];
        stir.inversion_time = Some(160.0);
        assert_eq!(identify(&stir, &r).fat, Some(FatMethod::Stir));
        let mut flair = stir.clone();
        flair.inversion_time = Some(2200.0);
        assert_eq!(identify(&flair, &r).kind, SequenceKind::Other);
        assert_eq!(
            identify(&header("pd", 20.0, 3000.0, SAG), &r).kind,
            SequenceKind::Other
        );
        let mut post = header("t1_tse_sag", 12.0, 550.0, SAG);
        post.contrast_agent = Some("Gadobutrol".into());
        assert!(identify(&post, &r)
            .reasons
            .iter()
            .any(|x| x.contains("post-contrast")));
        assert_eq!(
            identify(&header("Sag T1 FSE +C", 12.0, 550.0, SAG), &r).kind,
            SequenceKind::Other
        );
        let mut loc = header("anything", 4.0, 8.0, SAG);
        loc.orientations.push(AX);
        assert_eq!(identify(&loc, &r).kind, SequenceKind::Other);
        let mut dwi = header("DWI SAG b800", 80.0, 4000.0, SAG);
        dwi.scan_options = vec!["FS".into()];
        assert_eq!(identify(&dwi, &r).kind, SequenceKind::Other);
        let mut reformat = header("t2 sag", 100.0, 3500.0, SAG);
        reformat.image_type = vec!["DERIVED".into(), "SECONDARY".into(), "MPR".into()];
        assert_eq!(identify(&reformat, &r).kind, SequenceKind::Other);
        let mut dixon_w = header("t2_tse_dixon_sag_W", 90.0, 3500.0, SAG);
        dixon_w.image_type = vec![
            "DERIVED".into(),
            "PRIMARY".into(),
            "DIXON".into(),
            "WATER".into(),
        ];
        assert_eq!(identify(&dixon_w, &r).kind, SequenceKind::SagT2fs);
        let mut dixon_f = dixon_w.clone();
        dixon_f.image_type = vec![
            "DERIVED".into(),
            "PRIMARY".into(),
            "DIXON".into(),
            "FAT".into(),
        ];
        assert_eq!(identify(&dixon_f, &r).kind, SequenceKind::Other);
    }

    #[test]
    fn oblique_series_get_the_nearest_plane_with_a_reason() {
        let r = Rules::default();
        let a = 40f64.to_radians();
        let iop = [a.sin(), a.cos(), 0.0, 0.0, 0.0, -1.0];
        let id = identify(&header("x", 100.0, 3500.0, iop), &r);
        assert_eq!(id.kind, SequenceKind::SagT2w);
        assert!(id.reasons[0].contains("oblique"), "{:?}", id.reasons);
    }

    #[test]
    fn selection_prefers_headers_then_fat_method_then_size() {
        let r = Rules::default();
        let mut chem = header("t2 sag", 80.0, 3500.0, SAG);
        chem.scan_options = vec!["FS".into()];
        chem.series_number = Some(4);
        let mut stir = header("t2_tirm_sag", 50.0, 4000.0, SAG);
        stir.scanning_sequence = vec!["IR".into()];
        stir.inversion_time = Some(160.0);
        stir.series_number = Some(5);
        let words = header("T2 SPIR sag", 80.0, 3500.0, SAG);
        let hs = [chem, stir, words];
        let ids: Vec<Identification> = hs.iter().map(|h| identify(h, &r)).collect();
        let picked = select(&hs, &ids, &r);
        let fs = picked
            .iter()
            .find(|(k, _)| *k == SequenceKind::SagT2fs)
            .and_then(|(_, c)| c.clone());
        assert_eq!(fs.map(|c| c.0), Some(0));
    }
}
