//! Ingest on simulator output: every vendor, site and class with every distractor kind must be
//! identified exactly as the simulator's ground truth says, with reasons; `ismf inspect --json`
//! keeps its contract; bad and foreign files are reported, never fatal.

use crate::common;
use crate::common::{sim, truth};
use ismf::inspect::{self, Report};
use ismf::series::{Rules, SequenceKind};
use ismf::simulate::{self, Site, Vendor};
use std::collections::HashMap;
use std::path::Path;

/// Checks a report against the truth: each required role is selected; every other series is
/// `other`, except an extra STIR, which qualifies as T2FS but must lose the tie-break.
fn check(report: &Report, truth: &[serde_json::Value]) -> usize {
    let mut checked = 0;
    assert_eq!(report.studies.len(), truth.len());
    for t in truth {
        let uid = t["study_instance_uid"].as_str().unwrap_or_default();
        let study = report
            .studies
            .iter()
            .find(|s| s.study_instance_uid == uid)
            .expect("study reported");
        assert!(study.complete, "{uid}: {:?}", study.problems);
        let roles: HashMap<&str, &str> = t["series"]
            .as_array()
            .expect("series")
            .iter()
            .map(|s| {
                (
                    s["series_instance_uid"].as_str().unwrap_or_default(),
                    s["role"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        for kind in SequenceKind::REQUIRED {
            let sel = study
                .sequences
                .get(kind)
                .unwrap_or_else(|| panic!("{uid}: {kind} missing"));
            assert_eq!(
                roles[sel.series_instance_uid.as_str()],
                kind.key(),
                "{uid}: {kind} picked {}",
                sel.series_description
            );
            assert!(!sel.reasons.is_empty());
            assert!(!sel.files.is_empty());
            checked += 1;
        }
        for s in &study.series {
            let role = roles[s.series_instance_uid.as_str()];
            let expected = match role {
                "sag_t1w" => SequenceKind::SagT1w,
                "sag_t2w" => SequenceKind::SagT2w,
                "sag_t2fs" | "sag_stir" => SequenceKind::SagT2fs,
                "ax_t2w" => SequenceKind::AxT2w,
                _ => SequenceKind::Other,
            };
            assert_eq!(
                s.kind, expected,
                "{uid}: series '{}' ({role}): {:?}",
                s.series_description, s.reasons
            );
            assert!(!s.reasons.is_empty());
        }
    }
    checked
}

fn simulate_into(
    dir: &Path,
    studies: usize,
    seed: u64,
    site: Site,
    vendor: Option<Vendor>,
    distractors: &str,
) {
    let mut o = sim(dir, studies, seed);
    // Classes cycle from a seed-dependent start, so one study per folder still meets them all.
    o.study.classes.rotate_left(seed as usize % 5);
    o.study.site = site;
    o.study.vendor = vendor;
    o.study.distractors = distractors.parse().unwrap_or_default();
    simulate::run(&o).expect("simulate");
}

#[test]
fn identification_matches_truth_for_every_vendor_site_and_class() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut checked = 0;
    let mut n = 0;
    // Every vendor, site and distractor mix; studies (cycling the classes) per combination.
    let studies = common::scaled(5, 1);
    for site in [Site::Internal, Site::External] {
        for vendor in Vendor::ALL {
            for distractors in ["all", ""] {
                let dir = root
                    .path()
                    .join(format!("{site:?}-{vendor:?}-{}", distractors.len()));
                n += 1;
                simulate_into(&dir, studies, 300 + n, site, Some(vendor), distractors);
                let report = inspect::inspect(&dir, &Rules::default()).expect("inspect");
                // truth.jsonl is in the folder: reported as a problem, not fatal.
                assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
                assert!(report.problems[0].path.ends_with("truth.jsonl"));
                checked += check(&report, &truth(&dir));
            }
        }
    }
    assert_eq!(checked, 12 * studies * 4);
}

#[test]
fn reasons_name_the_deciding_attributes() {
    let root = tempfile::tempdir().expect("temp dir");
    // GE at the internal site, all distractors: FSE tokens, GE STIR naming, +C post-contrast.
    simulate_into(root.path(), 5, 77, Site::Internal, Some(Vendor::Ge), "all");
    let report = inspect::inspect(root.path(), &Rules::default()).expect("inspect");
    let all: Vec<(&str, String)> = report
        .studies
        .iter()
        .flat_map(|s| {
            s.series
                .iter()
                .map(|x| (x.series_description.as_str(), x.reasons.join("; ")))
        })
        .collect();
    let find = |desc: &str| {
        all.iter()
            .filter(|(d, _)| *d == desc)
            .map(|(_, r)| r.clone())
            .collect::<Vec<_>>()
    };
    for r in find("Sag T1 FSE") {
        assert!(
            r.contains("T1-weighted: TE") && r.contains("plane Sagittal"),
            "{r}"
        );
    }
    for r in find("Sag T2 FSE FS") {
        assert!(r.contains("ScanOptions token FS"), "{r}");
    }
    for r in find("Sag T2 FSE") {
        assert!(
            !r.contains("fat-suppressed"),
            "FAST_GEMS/SAT_GEMS are not fat-sat: {r}"
        );
    }
    for r in find("Sag T1 FSE +C") {
        assert!(r.contains("post-contrast: ContrastBolusAgent"), "{r}");
    }
    for r in find("3-Plane Loc") {
        assert!(r.contains("localizer"), "{r}");
    }
    for r in find("Sag DWI b800") {
        assert!(r.contains("EP"), "{r}");
    }
    assert!(!find("Sag T1 FSE").is_empty() && !find("3-Plane Loc").is_empty());
}

#[test]
fn inspect_cli_json_contract_and_bad_files() {
    let root = tempfile::tempdir().expect("temp dir");
    simulate_into(root.path(), 2, 5, Site::External, Some(Vendor::Philips), "");
    // A truncated copy of a real file, random bytes, an empty file and a DICOMDIR-named file.
    let first = std::fs::read_dir(root.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "dcm"))
        .expect("a dcm");
    let bytes = std::fs::read(&first).expect("read");
    std::fs::write(root.path().join("truncated.dcm"), &bytes[..200]).expect("write");
    std::fs::write(
        root.path().join("noise.dcm"),
        (0..5000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .expect("write");
    std::fs::write(root.path().join("empty.dcm"), b"").expect("write");
    std::fs::write(root.path().join("DICOMDIR"), b"x").expect("write");
    std::fs::copy(&first, root.path().join("copy-of-first.dcm")).expect("copy");

    let out = common::ismf()
        .args(["inspect", "--json"])
        .arg(root.path())
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let studies = v["studies"].as_array().expect("studies");
    assert_eq!(studies.len(), 2);
    for s in studies {
        assert_eq!(s["complete"], serde_json::Value::Bool(true));
        for key in ["sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w"] {
            let seq = &s["sequences"][key];
            for field in [
                "series_instance_uid",
                "series_description",
                "files",
                "reasons",
            ] {
                assert!(!seq[field].is_null(), "{key}.{field}");
            }
        }
        assert!(s["series"].as_array().is_some_and(|a| !a.is_empty()));
        assert!(s["problems"].as_array().is_some_and(|a| a.is_empty()));
    }
    let problems: Vec<String> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["path"].as_str().unwrap_or_default(),
                p["problem"].as_str().unwrap_or_default()
            )
        })
        .collect();
    for name in ["truncated.dcm", "noise.dcm", "empty.dcm", "truth.jsonl"] {
        assert!(
            problems.iter().any(|p| p.contains(name)),
            "{name} not reported: {problems:?}"
        );
    }
    let skipped = v["skipped"].to_string();
    assert!(
        skipped.contains("DICOMDIR") && skipped.contains("copy-of-first.dcm"),
        "{skipped}"
    );

    // A study missing a sequence is incomplete, with the reason.
    let t2fs = &studies[0]["sequences"]["sag_t2fs"]["files"];
    for f in t2fs.as_array().expect("files") {
        std::fs::remove_file(f.as_str().unwrap_or_default()).expect("remove");
    }
    let out = common::ismf()
        .args(["inspect"])
        .arg(root.path())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("INCOMPLETE")
            && text.contains("sag_t2fs  MISSING")
            && text.contains("missing sag_t2fs"),
        "{text}"
    );

    let out = common::ismf()
        .args(["inspect", "/nonexistent/folder"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/folder"));
}
