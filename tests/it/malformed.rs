//! A malformed corpus made in the test — truncations at many offsets, random bytes, wrong element
//! lengths, absurd dimensions, missing required attributes — mixed into an export folder with a
//! good study. Nothing panics; every bad file is quarantined with a reason (at ingest, or at
//! decode for damage below the header); the good study completes and preprocesses.

use crate::common::{claim_size, rewrite, sim};
use dicom_dictionary_std::tags;
use ismf::ingest::complete::Timing;
use ismf::ingest::quarantine::QuarantineMode;
use ismf::ingest::{Ingest, IngestConfig, IngestEvent};
use ismf::pixels::{decode_file, DEFAULT_MAX_VOXELS};
use ismf::preprocess::{study_inputs, PreprocessParams};
use ismf::series::Rules;
use ismf::simulate::{self, TumourClass};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

fn simulate_into(dir: &Path, seed: u64) {
    let mut o = sim(dir, 1, seed);
    o.study.classes = vec![TumourClass::Meningioma];
    o.study.distractors = "none".parse().unwrap_or_default();
    simulate::run(&o).expect("simulate");
    std::fs::remove_file(dir.join("truth.jsonl")).expect("remove truth");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Offset of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn corpus(src: &Path, out: &Path) -> Vec<PathBuf> {
    let bytes = std::fs::read(src).expect("read");
    let mut made = Vec::new();
    let mut put = |name: String, data: Vec<u8>| {
        let p = out.join(name);
        std::fs::write(&p, data).expect("write");
        made.push(p);
    };
    // Truncations: inside the preamble, the magic, the meta group, the data set, the pixels.
    let mut cuts: Vec<usize> = vec![
        1, 64, 128, 130, 132, 140, 200, 300, 400, 600, 800, 1000, 1200, 1500,
    ];
    cuts.extend((1..12).map(|k| bytes.len() * k / 12));
    cuts.push(bytes.len() - 1);
    for c in cuts {
        put(format!("trunc_{c:07}.dcm"), bytes[..c].to_vec());
    }
    // Random bytes, with and without a DICM magic at 128.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    for k in 0..6 {
        let n = rng.random_range(10..20_000);
        let mut data: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        if k % 2 == 0 && data.len() > 132 {
            data[128..132].copy_from_slice(b"DICM");
        }
        put(format!("random_{k}.dcm"), data);
    }
    // Wrong lengths: SeriesDescription (0008,103E) LO claiming 0xFFFF bytes; PixelData claiming
    // far more than the file holds.
    if let Some(i) = find(&bytes, &[0x08, 0x00, 0x3E, 0x10, b'L', b'O']) {
        let mut d = bytes.clone();
        d[i + 6] = 0xFF;
        d[i + 7] = 0xFF;
        put("wrong_length_description.dcm".into(), d);
    }
    if let Some(i) = find(&bytes, &[0xE0, 0x7F, 0x10, 0x00, b'O', b'W']) {
        let mut d = bytes.clone();
        d[i + 8..i + 12].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
        put("wrong_length_pixels.dcm".into(), d);
    }
    made
}

#[test]
fn malformed_files_are_quarantined_and_good_studies_go_through() {
    let root = tempfile::tempdir().expect("dir");
    let export = root.path().join("export");
    let other = root.path().join("other");
    simulate_into(&export, 1);
    simulate_into(&other, 2);
    let good: Vec<PathBuf> = files(&export);
    let src = files(&other)[5].clone();
    let mut bad = corpus(&src, &export);
    bad.push(rewrite(&src, &export.join("absurd_dimensions.dcm"), |o| {
        claim_size(o, 65535, 65535, "1000000")
    }));
    for (tag, name) in [
        (tags::SOP_INSTANCE_UID, "no_sop_uid.dcm"),
        (tags::STUDY_INSTANCE_UID, "no_study_uid.dcm"),
        (tags::SERIES_INSTANCE_UID, "no_series_uid.dcm"),
        (tags::ROWS, "no_rows.dcm"),
    ] {
        bad.push(rewrite(&src, &export.join(name), |o| {
            o.remove_element(tag);
        }));
    }

    let cfg = IngestConfig {
        watch_dir: export.clone(),
        state_dir: root.path().join("state"),
        quarantine_dir: root.path().join("quarantine"),
        quarantine_mode: QuarantineMode::Copy,
        quarantine_grace_seconds: 5.0,
        timing: Timing {
            stable_seconds: 1.0,
            force_after_seconds: 10.0,
        },
        rules: Rules::default(),
    };
    let (mut ingest, _) = Ingest::open(cfg.clone()).expect("open");
    let mut events = Vec::new();
    for f in files(&export) {
        events.extend(
            ingest
                .offer(&f, 10.0)
                .expect("offer never fails on bad input"),
        );
    }
    events.extend(ingest.tick(16.0).expect("tick after the grace period"));
    let mut quarantined: Vec<PathBuf> = events
        .iter()
        .filter_map(|e| {
            if let IngestEvent::Quarantined { path, .. } = e {
                Some(path.clone())
            } else {
                None
            }
        })
        .collect();
    // Damage below the header is found when the pixels are decoded; the pipeline quarantines it.
    for f in &bad {
        if quarantined.contains(f) {
            continue;
        }
        let err =
            decode_file(f, DEFAULT_MAX_VOXELS).expect_err(&format!("{} decoded", f.display()));
        assert!(
            err.to_string()
                .contains(&*f.file_name().unwrap_or_default().to_string_lossy()),
            "{err}"
        );
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        ingest
            .quarantine_file(f, size, err.to_string(), 11.0)
            .expect("quarantine");
        quarantined.push(f.clone());
    }
    for f in &bad {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let reason = std::fs::read_to_string(cfg.quarantine_dir.join(format!("{name}.reason.txt")))
            .unwrap_or_else(|_| panic!("{name} has no reason file"));
        assert!(
            reason
                .lines()
                .any(|l| l.starts_with("reason: ") && l.len() > 10),
            "{name}: {reason}"
        );
    }
    // Copy mode keeps the originals.
    assert!(bad.iter().all(|f| f.exists()));
    // The good study: every file catalogued, complete, and preprocessed.
    for g in &good {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, IngestEvent::Added { path, .. } if path == g)),
            "{} not catalogued",
            g.display()
        );
    }
    // The damaged study (header intact, pixels not) waits, incomplete; the good one completes.
    let mut done = ingest.tick(20.0).expect("tick");
    done.extend(events.iter().cloned());
    let complete: Vec<_> = done
        .iter()
        .filter(|e| matches!(e, IngestEvent::Complete { .. }))
        .collect();
    assert_eq!(complete.len(), 1, "{done:?}");
    let IngestEvent::Complete {
        sequences,
        clinical,
        ..
    } = complete[0]
    else {
        unreachable!()
    };
    let inputs = study_inputs(
        sequences,
        clinical,
        &PreprocessParams::default(),
        DEFAULT_MAX_VOXELS,
    )
    .expect("inputs");
    assert!(inputs.warnings.is_empty(), "{:?}", inputs.warnings);
}
