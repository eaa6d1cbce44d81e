//! The ingest engine and watcher on simulator exports: completeness with a fake clock, bad
//! files quarantined while good studies go through, restarts that lose nothing and announce
//! nothing twice, and the real watcher under a realtime scanner export (slow writes, renames,
//! re-sends), nested folders, symbolic links and poll-only mode.

use crate::common;
use crate::common::{dicom_files, run_sim, sim};
use ismf::ingest::complete::{StudyState, Timing};
use ismf::ingest::quarantine::QuarantineMode;
use ismf::ingest::watch::{self, WatchConfig};
use ismf::ingest::{Ingest, IngestConfig, IngestEvent};
use ismf::series::{Rules, SequenceKind};
use ismf::simulate::{ExportMode, Layout};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn simulate_into(
    dir: &Path,
    studies: usize,
    seed: u64,
    mode: ExportMode,
    layout: Layout,
) -> Vec<serde_json::Value> {
    let mut o = sim(dir, studies, seed);
    o.mode = mode;
    o.layout = layout;
    run_sim(&o)
}

fn config(root: &Path, stable: f64, force: f64) -> IngestConfig {
    IngestConfig {
        watch_dir: root.join("export"),
        state_dir: root.join("state"),
        quarantine_dir: root.join("quarantine"),
        quarantine_mode: QuarantineMode::Move,
        quarantine_grace_seconds: 5.0,
        timing: Timing {
            stable_seconds: stable,
            force_after_seconds: force,
        },
        rules: Rules::default(),
    }
}

/// Truth: study UID → (series UID → role).
fn roles(truth: &[serde_json::Value]) -> HashMap<String, HashMap<String, String>> {
    truth
        .iter()
        .map(|t| {
            let m = t["series"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    (
                        s["series_instance_uid"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        s["role"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            (
                t["study_instance_uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m,
            )
        })
        .collect()
}

#[test]
fn engine_completes_quarantines_and_survives_restarts() {
    let root = tempfile::tempdir().expect("dir");
    let cfg = config(root.path(), 10.0, 60.0);
    let truth = simulate_into(&cfg.watch_dir, 2, 1, ExportMode::Instant, Layout::Flat);
    std::fs::remove_file(cfg.watch_dir.join("truth.jsonl")).expect("truth out of the export");
    let files = dicom_files(&cfg.watch_dir);
    // Bad files among the good ones.
    let bytes = std::fs::read(&files[3]).expect("read");
    std::fs::write(cfg.watch_dir.join("truncated.dcm"), &bytes[..300]).expect("write");
    std::fs::write(cfg.watch_dir.join("notes.txt"), b"not DICOM at all").expect("write");
    std::fs::write(cfg.watch_dir.join("empty.dcm"), b"").expect("write");
    std::fs::write(cfg.watch_dir.join("DICOMDIR"), b"dir").expect("write");
    std::fs::copy(&files[5], cfg.watch_dir.join("resent.dcm")).expect("copy");

    let (mut ingest, owed) = Ingest::open(cfg.clone()).expect("open");
    assert!(owed.is_empty());
    let mut t = 1000.0;
    let mut events = Vec::new();
    for f in dicom_files(&cfg.watch_dir).into_iter().chain([
        cfg.watch_dir.join("notes.txt"),
        cfg.watch_dir.join("DICOMDIR"),
    ]) {
        events.extend(ingest.offer(&f, t).expect("offer"));
        t += 0.01;
    }
    // Unreadable files wait out the grace period, then go to quarantine.
    assert!(events
        .iter()
        .any(|e| matches!(e, IngestEvent::Deferred { .. })));
    events.extend(ingest.tick(t + 6.0).expect("tick"));
    let quarantined: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let IngestEvent::Quarantined { path, .. } = e {
                Some(path.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(quarantined.len(), 3, "{quarantined:?}");
    for name in ["truncated.dcm", "notes.txt", "empty.dcm"] {
        assert!(!cfg.watch_dir.join(name).exists(), "{name} moved out");
        let reason = std::fs::read_to_string(cfg.quarantine_dir.join(format!("{name}.reason.txt")))
            .expect("reason file");
        assert!(reason.contains(name), "{reason}");
    }
    assert!(events
        .iter()
        .any(|e| matches!(e, IngestEvent::Skipped { path, .. } if path.ends_with("DICOMDIR"))));
    assert!(events
        .iter()
        .any(|e| matches!(e, IngestEvent::Duplicate { path, .. } if path.ends_with("resent.dcm"))));

    // Not yet quiet for stable_seconds: nothing; then both complete, with the true series.
    assert!(ingest.tick(t + 5.0).expect("tick").is_empty());
    let done = ingest.tick(t + 11.0).expect("tick");
    let truth_roles = roles(&truth);
    assert_eq!(done.len(), 2, "{done:?}");
    for e in &done {
        let IngestEvent::Complete {
            study,
            sequences,
            clinical,
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!(sequences.len(), 4);
        assert!(clinical.patient_sex.is_some());
        for (kind, paths) in sequences {
            let h = ismf::ingest::catalog::read_header(&paths[0]).expect("header");
            assert_eq!(truth_roles[study][&h.series_instance_uid], kind.key());
        }
        assert_eq!(ingest.state(study), Some(StudyState::Complete));
    }
    // Restart: complete-but-unprocessed studies are owed again; processed ones are not.
    drop(ingest);
    let (mut ingest, owed) = Ingest::open(cfg.clone()).expect("reopen");
    assert_eq!(owed.len(), 2);
    let first = truth[0]["study_instance_uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ingest
        .set_state(&first, StudyState::Processed, t + 20.0)
        .expect("mark");
    drop(ingest);
    let (mut ingest, owed) = Ingest::open(cfg.clone()).expect("reopen");
    assert_eq!(owed.len(), 1);
    // Re-offering everything after a restart adds nothing.
    for f in dicom_files(&cfg.watch_dir) {
        assert!(
            ingest.offer(&f, t + 30.0).expect("offer").is_empty(),
            "{} offered twice",
            f.display()
        );
    }
    // A late instance for a processed study is catalogued, not reprocessed.
    let late = cfg.watch_dir.join("late.dcm");
    let mut obj = dicom_object::open_file(&files[0]).expect("open");
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::SOP_INSTANCE_UID,
        dicom_core::VR::UI,
        dicom_core::PrimitiveValue::from("2.25.1234567890"),
    ));
    obj.write_to_file(&late).expect("write");
    let h = ismf::ingest::catalog::read_header(&late).expect("header");
    let ev = ingest.offer(&late, t + 31.0).expect("offer");
    if h.study_instance_uid == first {
        assert!(matches!(ev[0], IngestEvent::Late { .. }), "{ev:?}");
    } else {
        assert!(matches!(ev[0], IngestEvent::Added { .. }), "{ev:?}");
    }
}

#[test]
fn missing_sequence_is_reported_incomplete_after_force_time() {
    let root = tempfile::tempdir().expect("dir");
    let cfg = config(root.path(), 5.0, 30.0);
    let truth = simulate_into(
        &cfg.watch_dir,
        1,
        2,
        ExportMode::Instant,
        Layout::SeriesDirs,
    );
    let t2fs = common::series_with_role(&truth[0], "sag_t2fs").expect("t2fs")["series_number"]
        .as_u64()
        .unwrap_or(0);
    std::fs::remove_dir_all(cfg.watch_dir.join("S00000").join(format!("SE{t2fs:04}")))
        .expect("remove T2FS");
    let extra_stir = common::series_with_role(&truth[0], "sag_stir").is_some();
    let (mut ingest, _) = Ingest::open(cfg.clone()).expect("open");
    for f in dicom_files(&cfg.watch_dir) {
        ingest.offer(&f, 100.0).expect("offer");
    }
    if extra_stir {
        // The extra STIR stands in for the removed T2FS: the study is complete.
        assert_eq!(ingest.tick(106.0).expect("tick").len(), 1);
        return;
    }
    assert!(
        ingest.tick(106.0).expect("tick").is_empty(),
        "not complete without T2FS"
    );
    let ev = ingest.tick(131.0).expect("tick");
    match ev.as_slice() {
        [IngestEvent::Incomplete { problems, .. }] => {
            assert!(
                problems.iter().any(|p| p.starts_with("missing sag_t2fs")),
                "{problems:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// Runs the watcher and the engine with real time until `studies` complete or `limit` passes.
fn watch_until(
    cfg: &IngestConfig,
    wcfg: WatchConfig,
    studies: usize,
    limit: Duration,
    during: impl FnOnce() + Send,
) -> Vec<IngestEvent> {
    let (tx, rx) = mpsc::sync_channel::<PathBuf>(16);
    let watcher = watch::spawn(wcfg, tx).expect("watch");
    let (mut ingest, _) = Ingest::open(cfg.clone()).expect("open");
    let start = Instant::now();
    let mut events = Vec::new();
    let mut last_path = Instant::now();
    std::thread::scope(|s| {
        let writer = s.spawn(during);
        loop {
            let now = || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0)
            };
            if let Ok(path) = rx.recv_timeout(Duration::from_millis(100)) {
                last_path = Instant::now();
                events.extend(ingest.offer(&path, now()).expect("offer"));
            }
            events.extend(ingest.tick(now()).expect("tick"));
            let complete = events
                .iter()
                .filter(|e| matches!(e, IngestEvent::Complete { .. }))
                .count();
            // A slow last file may land after its study completed: stop only once the watcher
            // has been quiet for longer than its settle time plus a rescan.
            let quiet = last_path.elapsed() > Duration::from_millis(2500);
            if (complete >= studies && writer.is_finished() && quiet) || start.elapsed() > limit {
                break;
            }
        }
        let _ = writer.join();
    });
    watcher.stop();
    events
}

#[test]
fn watcher_follows_a_realtime_scanner_export() {
    let root = tempfile::tempdir().expect("dir");
    let cfg = config(root.path(), 1.5, 30.0);
    std::fs::create_dir_all(&cfg.watch_dir).expect("mkdir");
    let mut w = WatchConfig::new(cfg.watch_dir.clone());
    w.settle = Duration::from_millis(400);
    w.rescan = Duration::from_secs(2);
    let export = cfg.watch_dir.clone();
    let events = watch_until(&cfg, w, 2, Duration::from_secs(90), move || {
        simulate_into(&export, 2, 3, ExportMode::Realtime, Layout::SeriesDirs);
    });
    // Each study completes; it completes again only if a late file re-opened it (a loaded
    // machine can render the next series slower than `stable_seconds`), and its last
    // completion carries every sequence.
    let mut completions: std::collections::BTreeMap<&String, usize> = Default::default();
    let mut reopened: std::collections::BTreeSet<&String> = Default::default();
    for e in &events {
        match e {
            IngestEvent::Added { study, .. } if completions.contains_key(study) => {
                reopened.insert(study);
            }
            IngestEvent::Complete {
                study, sequences, ..
            } => {
                let n = completions.entry(study).or_default();
                assert!(
                    *n == 0 || reopened.remove(study),
                    "{study} completed again without a new file"
                );
                *n += 1;
                assert_eq!(sequences.len(), 4, "{study}: four sequences");
            }
            _ => {}
        }
    }
    assert_eq!(
        completions.len(),
        2,
        "both studies complete: {completions:?}"
    );
    assert!(
        reopened.is_empty(),
        "a re-opened study never completed: {reopened:?}"
    );
    let quarantined: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, IngestEvent::Quarantined { .. }))
        .collect();
    // truth.jsonl lands in the export folder too: the only file quarantined.
    assert!(
        quarantined.iter().all(
            |e| matches!(e, IngestEvent::Quarantined { path, .. } if path.ends_with("truth.jsonl"))
        ),
        "{quarantined:?}"
    );
    let added = events
        .iter()
        .filter(|e| matches!(e, IngestEvent::Added { .. }))
        .count();
    let expected = dicom_files(&cfg.watch_dir)
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with("_resend.dcm"))
        .count();
    assert_eq!(added, expected, "every instance catalogued once");
    assert!(!events.iter().any(
        |e| matches!(e, IngestEvent::Added { path, .. } if path.to_string_lossy().contains(".part"))
    ));
}

#[test]
fn restart_mid_study_loses_nothing_and_polls_without_inotify() {
    let root = tempfile::tempdir().expect("dir");
    let cfg = config(root.path(), 1.0, 30.0);
    let source = root.path().join("source");
    simulate_into(&source, 1, 4, ExportMode::Instant, Layout::SeriesDirs);
    let files = dicom_files(&source);
    let (first_half, second_half) = files.split_at(files.len() / 2);
    std::fs::create_dir_all(&cfg.watch_dir).expect("mkdir");
    // A symbolic link out of the tree is never followed.
    std::os::unix::fs::symlink(
        source.join("truth.jsonl"),
        cfg.watch_dir.join("outside.dcm"),
    )
    .expect("symlink");
    let mut w = WatchConfig::new(cfg.watch_dir.clone());
    w.settle = Duration::from_millis(300);
    w.rescan = Duration::from_millis(500);
    w.poll_only = true;
    let (src, export) = (source.clone(), cfg.watch_dir.clone());
    let part1 = first_half.to_vec();
    let ev1 = watch_until(&cfg, w.clone(), 1, Duration::from_secs(4), move || {
        copy_files(&src, &export, &part1)
    });
    assert!(
        !ev1.iter()
            .any(|e| matches!(e, IngestEvent::Complete { .. })),
        "half a study is not complete"
    );
    assert!(!ev1.iter().any(
        |e| matches!(e, IngestEvent::Quarantined { path, .. } if path.ends_with("outside.dcm"))
    ));
    let n1 = ev1
        .iter()
        .filter(|e| matches!(e, IngestEvent::Added { .. }))
        .count();
    assert_eq!(n1, first_half.len());
    copy_files(&source, &cfg.watch_dir, second_half);
    let ev2 = watch_until(&cfg, w, 1, Duration::from_secs(30), || {});
    let n2 = ev2
        .iter()
        .filter(|e| matches!(e, IngestEvent::Added { .. }))
        .count();
    assert_eq!(
        n2,
        second_half.len(),
        "after the restart only the new files are added"
    );
    assert_eq!(
        ev2.iter()
            .filter(|e| matches!(e, IngestEvent::Complete { .. }))
            .count(),
        1
    );
    let seqs = ev2.iter().find_map(|e| {
        if let IngestEvent::Complete { sequences, .. } = e {
            Some(sequences.clone())
        } else {
            None
        }
    });
    assert_eq!(
        seqs.map(|s| s.iter().map(|(k, _)| *k).collect::<Vec<_>>()),
        Some(SequenceKind::REQUIRED.to_vec())
    );
}

/// Copies `files` from under `source` to the same relative paths under `export`.
fn copy_files(source: &Path, export: &Path, files: &[PathBuf]) {
    for f in files {
        let rel = f.strip_prefix(source).expect("under source");
        let to = export.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(f, to).expect("copy");
    }
}

#[test]
fn files_deleted_before_reading_and_links_inside_the_tree() {
    let root = tempfile::tempdir().expect("dir");
    let cfg = config(root.path(), 1.0, 30.0);
    simulate_into(&cfg.watch_dir, 1, 5, ExportMode::Instant, Layout::Flat);
    std::fs::remove_file(cfg.watch_dir.join("truth.jsonl")).expect("remove truth");
    let (mut ingest, _) = Ingest::open(cfg.clone()).expect("open");
    // Deleted between the watcher's report and the read.
    let gone = cfg.watch_dir.join("gone.dcm");
    std::fs::write(&gone, b"x").expect("write");
    std::fs::remove_file(&gone).expect("remove");
    assert!(matches!(
        ingest.offer(&gone, 1.0).expect("offer").as_slice(),
        [IngestEvent::Vanished { .. }]
    ));
    // Unreadable now, deleted before its grace ran out: nothing is quarantined.
    let flaky = cfg.watch_dir.join("flaky.dcm");
    std::fs::write(&flaky, b"half a file").expect("write");
    assert!(matches!(
        ingest.offer(&flaky, 2.0).expect("offer").as_slice(),
        [IngestEvent::Deferred { .. }]
    ));
    std::fs::remove_file(&flaky).expect("remove");
    let later = ingest.tick(10.0).expect("tick");
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, IngestEvent::Quarantined { .. })),
        "{later:?}"
    );
    // A link inside the tree is followed by the watcher.
    let sub = cfg.watch_dir.join("linked");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let target = dicom_files(&cfg.watch_dir)[0].clone();
    std::os::unix::fs::symlink(&target, sub.join("link.dcm")).expect("symlink");
    let (tx, rx) = mpsc::sync_channel(256);
    let mut w = WatchConfig::new(cfg.watch_dir.clone());
    w.settle = Duration::from_millis(100);
    let watcher = watch::spawn(w, tx).expect("watch");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline && !seen.iter().any(|p: &PathBuf| p.ends_with("link.dcm")) {
        if let Ok(p) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(p);
        }
    }
    watcher.stop();
    assert!(
        seen.iter().any(|p| p.ends_with("link.dcm")),
        "link inside the tree delivered"
    );
}
