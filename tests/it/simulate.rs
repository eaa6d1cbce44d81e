//! Whole-flow tests of `ismf simulate`: files written for every class, both sites and all
//! vendors are checked by real DICOM tools (dcmdump, dciodvfy), read by a peer (pydicom), and
//! measured for geometry and MR physics against the simulator's own 3-D model.
//!
//! The validators are installed by the README test command (`.ci/run`); a missing tool fails
//! the test rather than skipping it.

use crate::common;
use crate::common::{dicom_files, python, sim, tool, truth};
use dicom_dictionary_std::tags;
use dicom_object::open_file;
use ismf::simulate::render::pure_tissue;
use ismf::simulate::tissue::{Tissue, TissueId};
use ismf::simulate::{
    self, export, DistractorRates, ExportMode, Layout, SeriesRole, SimulateOptions, Site, Study,
    StudyOptions, TumourClass, Vendor,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// One DICOM file as the tests see it.
#[derive(Debug)]
struct Image {
    path: PathBuf,
    study_uid: String,
    series_uid: String,
    sop_uid: String,
    instance: usize,
    ipp: [f64; 3],
    iop: [f64; 6],
    spacing: Option<f64>,
    rows: usize,
    cols: usize,
    slope: f64,
    intercept: f64,
    pixels: Vec<u16>,
}

fn text(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn floats(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_multi_float64().ok())
        .unwrap_or_default()
}

fn read_image(path: &Path) -> Image {
    let obj = open_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ipp = floats(&obj, tags::IMAGE_POSITION_PATIENT);
    let iop = floats(&obj, tags::IMAGE_ORIENTATION_PATIENT);
    let uint = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
            .unwrap_or(0) as usize
    };
    Image {
        path: path.to_path_buf(),
        study_uid: text(&obj, tags::STUDY_INSTANCE_UID),
        series_uid: text(&obj, tags::SERIES_INSTANCE_UID),
        sop_uid: text(&obj, tags::SOP_INSTANCE_UID),
        instance: text(&obj, tags::INSTANCE_NUMBER).parse().unwrap_or(0),
        ipp: [ipp[0], ipp[1], ipp[2]],
        iop: [iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]],
        spacing: floats(&obj, tags::SPACING_BETWEEN_SLICES).first().copied(),
        rows: uint(tags::ROWS),
        cols: uint(tags::COLUMNS),
        slope: floats(&obj, tags::RESCALE_SLOPE)
            .first()
            .copied()
            .unwrap_or(1.0),
        intercept: floats(&obj, tags::RESCALE_INTERCEPT)
            .first()
            .copied()
            .unwrap_or(0.0),
        pixels: obj
            .element(tags::PIXEL_DATA)
            .ok()
            .and_then(|e| e.to_multi_int::<u16>().ok())
            .unwrap_or_default(),
    }
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn normal(iop: &[f64; 6]) -> [f64; 3] {
    let (r, c) = ([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
    [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ]
}

fn opts(
    out: &Path,
    studies: usize,
    seed: u64,
    site: Site,
    vendor: Option<Vendor>,
    distractors: &str,
) -> SimulateOptions {
    let mut o = sim(out, studies, seed);
    o.study.site = site;
    o.study.vendor = vendor;
    o.study.distractors = distractors.parse().unwrap_or_default();
    o.speed = 1.0;
    o
}

/// Every class × both sites × all vendors, checked by the DICOM validators, pydicom, and for
/// geometry.
#[test]
fn every_class_site_and_vendor_validates() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut dirs = Vec::new();
    // Studies per site and vendor (the classes cycle); one under QEMU, where every study costs
    // ~30x more, keeps every site × vendor × series kind validated.
    let per = common::scaled(5, 1);
    for (s, site) in [Site::Internal, Site::External].into_iter().enumerate() {
        for (v, vendor) in Vendor::ALL.into_iter().enumerate() {
            let dir = root.path().join(format!("{}_{vendor:?}", site.name()));
            // External runs ask for every distractor so every series kind is validated.
            let distractors = if site == Site::External { "all" } else { "" };
            let summary = simulate::run(&opts(
                &dir,
                per,
                100 + (s * 3 + v) as u64,
                site,
                Some(vendor),
                distractors,
            ))
            .expect("simulate");
            assert_eq!(summary.studies, per);
            dirs.push((dir, site, vendor));
        }
    }
    let files: Vec<PathBuf> = dirs.iter().flat_map(|(d, _, _)| dicom_files(d)).collect();
    assert!(files.len() > 6 * per * 50, "only {} files", files.len());

    // dcmdump parses every file without error.
    for chunk in files.chunks(200) {
        let out = tool("dcmdump")
            .arg("-q")
            .args(chunk)
            .output()
            .expect("dcmdump runs");
        assert!(
            out.status.success(),
            "dcmdump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "dcmdump complained: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // dciodvfy: no errors for the MR Image IOD on any file (warnings are vendor conventions).
    let errors: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(files.len().div_ceil(2))
            .map(|chunk| {
                scope.spawn(move || {
                    let mut errs = Vec::new();
                    for f in chunk {
                        let out = tool("dciodvfy").arg(f).output().expect("dciodvfy runs");
                        let text = String::from_utf8_lossy(&out.stderr).to_string()
                            + &String::from_utf8_lossy(&out.stdout);
                        assert!(
                            text.contains("MRImage"),
                            "{}: dciodvfy did not recognise MR Image: {text}",
                            f.display()
                        );
                        errs.extend(
                            text.lines()
                                .filter(|l| l.starts_with("Error"))
                                .map(|l| format!("{}: {l}", f.display())),
                        );
                    }
                    errs
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    assert!(errors.is_empty(), "dciodvfy errors:\n{}", errors.join("\n"));

    // pydicom reads every file and its pixels, and sees the pixels we wrote.
    let images: Vec<Image> = files.iter().map(|f| read_image(f)).collect();
    let list_path = root.path().join("files.txt");
    let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    std::fs::write(&list_path, list).expect("write file list");
    let out = python()
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/tools/pydicom_read.py"
        ))
        .arg(&list_path)
        .stderr(Stdio::inherit())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "pydicom failed");
    let seen: HashMap<String, Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let cols: Vec<String> = l.split('\t').map(str::to_string).collect();
            (cols[0].clone(), cols)
        })
        .collect();
    assert_eq!(seen.len(), files.len(), "pydicom read every file");
    for img in &images {
        let row = &seen[&img.path.display().to_string()];
        let sum: u64 = img.pixels.iter().map(|&p| p as u64).sum();
        assert_eq!(row[1], img.sop_uid);
        assert_eq!(
            (row[2].parse::<usize>().ok(), row[3].parse::<usize>().ok()),
            (Some(img.rows), Some(img.cols))
        );
        assert_eq!(
            row[4].parse::<u64>().ok(),
            Some(sum),
            "{}: pixel sum differs",
            img.path.display()
        );
        assert!(
            row[5].parse::<u16>().is_ok_and(|m| m <= 4095),
            "12-bit values"
        );
    }

    // Geometry of the required series, and their identity against the ground truth.
    let by_series: BTreeMap<&str, Vec<&Image>> = images.iter().fold(BTreeMap::new(), |mut m, i| {
        m.entry(i.series_uid.as_str())
            .or_insert_with(Vec::new)
            .push(i);
        m
    });
    let mut checked = HashMap::new();
    for (dir, _, _) in &dirs {
        for t in truth(dir) {
            let centre = t["lesion_center_mm"]
                .as_array()
                .expect("centre")
                .iter()
                .filter_map(|x| x.as_f64())
                .collect::<Vec<_>>();
            let extent: Vec<f64> = t["lesion_extent_mm"]
                .as_array()
                .expect("extent")
                .iter()
                .filter_map(|x| x.as_f64())
                .collect();
            for s in t["series"].as_array().expect("series") {
                let role = s["role"].as_str().unwrap_or_default().to_string();
                let uid = s["series_instance_uid"].as_str().unwrap_or_default();
                let mut imgs = by_series
                    .get(uid)
                    .cloned()
                    .unwrap_or_else(|| panic!("series {uid} has no files"));
                assert_eq!(
                    imgs.len() as u64,
                    s["images"].as_u64().unwrap_or(0),
                    "{role}: image count"
                );
                assert!(imgs
                    .iter()
                    .all(|i| Some(i.study_uid.as_str()) == t["study_instance_uid"].as_str()));
                if !["sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w"].contains(&role.as_str()) {
                    continue;
                }
                *checked.entry(role.clone()).or_insert(0) += 1;
                let n = normal(&imgs[0].iop);
                let dominant = (0..3)
                    .max_by(|&a, &b| n[a].abs().total_cmp(&n[b].abs()))
                    .unwrap_or(0);
                assert_eq!(
                    dominant,
                    if role == "ax_t2w" { 2 } else { 0 },
                    "{role} normal {n:?}"
                );
                assert!(
                    imgs.iter().all(|i| i.iop == imgs[0].iop),
                    "{role}: one orientation"
                );
                imgs.sort_by(|a, b| dot(a.ipp, n).total_cmp(&dot(b.ipp, n)));
                let spacing = imgs[0].spacing.expect("SpacingBetweenSlices");
                for w in imgs.windows(2) {
                    let step = sub(w[1].ipp, w[0].ipp);
                    assert!(
                        (dot(step, n) - spacing).abs() < 1e-3,
                        "{role}: step {} vs {spacing}",
                        dot(step, n)
                    );
                    let along = dot(step, n);
                    let off: f64 = (0..3)
                        .map(|k| (step[k] - along * n[k]).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    assert!(off < 1e-3, "{role}: IPP steps leave the normal by {off}");
                }
                // Instance numbers follow the slice order.
                assert!(
                    imgs.windows(2).all(|w| w[0].instance + 1 == w[1].instance)
                        || imgs.windows(2).all(|w| w[0].instance == w[1].instance + 1)
                );
                if role == "ax_t2w" {
                    let lo = dot(imgs[0].ipp, n);
                    let hi = dot(imgs[imgs.len() - 1].ipp, n);
                    let c = dot([centre[0], centre[1], centre[2]], n);
                    assert!(
                        lo <= c && c <= hi,
                        "axial stack {lo}..{hi} misses the lesion centre {c}"
                    );
                    let covered = hi - lo;
                    let wanted = (extent[0] - extent[1]).min(38.0 * spacing);
                    assert!(
                        covered + 1e-6 >= wanted,
                        "axial stack covers {covered} of {wanted} mm"
                    );
                }
            }
        }
    }
    assert_eq!(
        checked.values().sum::<i32>(),
        6 * per as i32 * 4,
        "{checked:?}"
    );
}

/// Mean real-world value of each pure tissue over the given slices of a rendered series file set.
fn tissue_means(
    study: &Study,
    series: usize,
    images: &[Image],
    slices: &[usize],
    step: usize,
) -> HashMap<TissueId, f64> {
    let plan = &study.series[series];
    let stack = &plan.stacks[0];
    let mut acc: HashMap<TissueId, (f64, usize)> = HashMap::new();
    for &k in slices {
        let img = images
            .iter()
            .find(|i| i.instance == k + 1)
            .expect("slice file");
        for row in (0..stack.rows).step_by(step) {
            for col in (0..stack.cols).step_by(step) {
                if let Some(t) = pure_tissue(&study.anatomy, stack, k, row, col) {
                    let v = img.pixels[row * stack.cols + col] as f64 * img.slope + img.intercept;
                    let e = acc.entry(t).or_insert((0.0, 0));
                    e.0 += v;
                    e.1 += 1;
                }
            }
        }
    }
    acc.into_iter()
        .filter(|(_, (_, n))| *n >= 8)
        .map(|(t, (s, n))| (t, s / n as f64))
        .collect()
}

/// Writes one study and returns its images per series index.
fn write_and_read(study: &Study, dir: &Path) -> Vec<Vec<Image>> {
    export::write_study(study, dir, Layout::SeriesDirs, None, false).expect("write study");
    study
        .series
        .iter()
        .map(|plan| {
            let sdir = dir
                .join(format!("S{:05}", study.index))
                .join(format!("SE{:04}", plan.number));
            dicom_files(&sdir).iter().map(|p| read_image(p)).collect()
        })
        .collect()
}

fn role_index(study: &Study, role: SeriesRole) -> usize {
    study
        .series
        .iter()
        .position(|s| s.protocol.role == role)
        .expect("series present")
}

/// The MR physics DOMAIN.md asks for, measured in the written files of many studies.
#[test]
fn written_images_show_the_physics() {
    let root = tempfile::tempdir().expect("temp dir");
    let id = |t: Tissue| t.id();
    let mut compared = 0;
    for (site, vendor) in [
        (Site::Internal, Vendor::Siemens),
        (Site::External, Vendor::Ge),
        (Site::External, Vendor::Philips),
        (Site::Internal, Vendor::Philips),
    ] {
        let opts = StudyOptions {
            seed: 7,
            site,
            classes: vec![TumourClass::Astrocytoma],
            vendor: Some(vendor),
            distractors: "none".parse::<DistractorRates>().unwrap_or_default(),
        };
        // Two studies per site and vendor whose mid-sagittal slices show every tissue compared
        // (an expanded cord can fill the canal and leave no pure CSF voxel there).
        let mut here = 0;
        for i in 0..6 {
            if here == 2 {
                break;
            }
            let study = Study::sample(&opts, i);
            let images = write_and_read(&study, root.path());
            let mid = |r: SeriesRole| {
                let n = study.series[role_index(&study, r)].stacks[0].slices;
                vec![n / 2 - 1, n / 2, n / 2 + 1]
            };
            let m = |r: SeriesRole| {
                tissue_means(
                    &study,
                    role_index(&study, r),
                    &images[role_index(&study, r)],
                    &mid(r),
                    2,
                )
            };
            let (t1, t2, fs) = (
                m(SeriesRole::SagT1w),
                m(SeriesRole::SagT2w),
                m(SeriesRole::SagT2fs),
            );
            let ctx = format!("{site:?} {vendor:?} study {i}");
            let tissues = [Tissue::Csf, Tissue::Cord, Tissue::Fat, Tissue::Muscle];
            if [&t1, &t2, &fs]
                .iter()
                .any(|m| tissues.iter().any(|t| !m.contains_key(&id(*t))))
            {
                continue;
            }
            assert!(
                t1[&id(Tissue::Csf)] < t1[&id(Tissue::Cord)],
                "{ctx}: CSF darker than cord on T1W: {t1:?}"
            );
            assert!(
                t2[&id(Tissue::Csf)] > t2[&id(Tissue::Cord)],
                "{ctx}: CSF brighter than cord on T2W"
            );
            assert!(
                t2[&id(Tissue::Fat)] > t2[&id(Tissue::Muscle)],
                "{ctx}: fat bright on T2W"
            );
            assert!(
                t2[&id(Tissue::Fat)] > t2[&id(Tissue::Cord)],
                "{ctx}: fat brighter than cord on T2W"
            );
            // Relative to the cord, fat loses at least half its signal with suppression.
            let ratio_t2 = t2[&id(Tissue::Fat)] / t2[&id(Tissue::Cord)];
            let ratio_fs = fs[&id(Tissue::Fat)] / fs[&id(Tissue::Cord)];
            assert!(
                ratio_fs < 0.5 * ratio_t2,
                "{ctx}: fat dark on T2FS ({ratio_fs:.2} vs {ratio_t2:.2})"
            );
            compared += 1;
            here += 1;
        }
    }
    assert_eq!(compared, 8);

    // Metastatic marrow darker than normal marrow on T1W.
    let met = StudyOptions {
        seed: 11,
        site: Site::Internal,
        classes: vec![TumourClass::Metastasis],
        vendor: None,
        distractors: "none".parse().unwrap_or_default(),
    };
    let mut met_checked = 0;
    for i in 0..40 {
        let study = Study::sample(&met, i);
        let whole_body = study
            .anatomy
            .spine
            .vertebrae
            .iter()
            .any(|v| v.state.marrow == id(Tissue::MarrowMet));
        if !whole_body {
            continue;
        }
        let images = write_and_read(&study, root.path());
        let k = role_index(&study, SeriesRole::SagT1w);
        let n = study.series[k].stacks[0].slices;
        let t1 = tissue_means(&study, k, &images[k], &[n / 2 - 1, n / 2, n / 2 + 1], 2);
        let (Some(met_v), Some(normal_v)) =
            (t1.get(&id(Tissue::MarrowMet)), t1.get(&id(Tissue::Marrow)))
        else {
            continue;
        };
        assert!(
            met_v < &(0.85 * normal_v),
            "study {i}: metastatic marrow {met_v} vs normal {normal_v}"
        );
        met_checked += 1;
        if met_checked == 3 {
            break;
        }
    }
    assert_eq!(
        met_checked, 3,
        "three metastasis studies with replaced marrow measured"
    );

    // Hemosiderin cap dark on T2W (ependymoma).
    let epn = StudyOptions {
        seed: 5,
        site: Site::Internal,
        classes: vec![TumourClass::Ependymoma],
        vendor: None,
        distractors: "none".parse().unwrap_or_default(),
    };
    let mut cap_checked = 0;
    for i in 0..60 {
        let study = Study::sample(&epn, i);
        if !study.anatomy.lesion.features.contains(&"hemosiderin_cap")
            || study.anatomy.lesion.features.contains(&"myxopapillary")
        {
            continue;
        }
        let images = write_and_read(&study, root.path());
        let k = role_index(&study, SeriesRole::SagT2w);
        let all: Vec<usize> = (0..study.series[k].stacks[0].slices).collect();
        let t2 = tissue_means(&study, k, &images[k], &all, 1);
        let Some(cap) = t2.get(&id(Tissue::Hemosiderin)) else {
            continue;
        };
        assert!(
            *cap < 0.3 * t2[&id(Tissue::Cord)],
            "study {i}: hemosiderin {cap} vs cord {}",
            t2[&id(Tissue::Cord)]
        );
        cap_checked += 1;
        if cap_checked == 2 {
            break;
        }
    }
    assert_eq!(
        cap_checked, 2,
        "two ependymomas with a hemosiderin cap measured"
    );
}

/// Same arguments and seed → identical files; another seed → different studies.
#[test]
fn output_is_deterministic() {
    let root = tempfile::tempdir().expect("temp dir");
    let run = |name: &str, seed: u64| {
        let dir = root.path().join(name);
        simulate::run(&opts(&dir, 3, seed, Site::External, None, "")).expect("simulate");
        dicom_files(&dir)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(&dir)
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                    std::fs::read(&p).unwrap_or_default(),
                )
            })
            .chain([(
                PathBuf::from("truth.jsonl"),
                std::fs::read(dir.join("truth.jsonl")).unwrap_or_default(),
            )])
            .collect::<Vec<_>>()
    };
    let a = run("a", 42);
    let b = run("b", 42);
    assert!(a.len() > 50);
    assert_eq!(a.len(), b.len());
    for ((pa, da), (pb, db)) in a.iter().zip(&b) {
        assert_eq!(pa, pb);
        assert!(da == db, "{} differs between identical runs", pa.display());
    }
    let c = run("c", 43);
    assert_ne!(
        a.last().map(|x| &x.1),
        c.last().map(|x| &x.1),
        "another seed gives other studies"
    );
}

/// Realtime export: the same files as instant (plus re-sends identical to their originals),
/// nothing left under a temporary name.
#[test]
fn realtime_export_matches_instant() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut opts = opts(&root.path().join("instant"), 2, 9, Site::Internal, None, "");
    simulate::run(&opts).expect("instant");
    opts.out = root.path().join("realtime");
    opts.mode = ExportMode::Realtime;
    opts.speed = 200.0;
    simulate::run(&opts).expect("realtime");
    let leftovers: Vec<_> = std::fs::read_dir(&opts.out)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let instant = dicom_files(&root.path().join("instant"));
    for f in &instant {
        let name = f.file_name().unwrap_or_default();
        let rt = opts.out.join(name);
        assert_eq!(
            std::fs::read(f).ok(),
            std::fs::read(&rt).ok(),
            "{} differs in realtime mode",
            name.to_string_lossy()
        );
    }
    for f in dicom_files(&opts.out) {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if let Some(orig) = name.strip_suffix("_resend.dcm") {
            assert_eq!(
                std::fs::read(&f).ok(),
                std::fs::read(opts.out.join(format!("{orig}.dcm"))).ok(),
                "re-send {name} identical"
            );
        } else {
            assert!(
                instant.iter().any(|i| i.file_name() == f.file_name()),
                "unexpected file {name}"
            );
        }
    }
}

fn ismf(args: &[&str]) -> std::process::Output {
    common::ismf().args(args).output().expect("ismf runs")
}

#[test]
fn cli_reports_bad_arguments_and_unwritable_output_with_exit_2() {
    let root = tempfile::tempdir().expect("temp dir");
    let out_dir = root.path().join("x");
    let out = out_dir.to_string_lossy().to_string();
    let bad = ismf(&["simulate", "--out", &out, "--class", "GLIOMA"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown tumour class 'GLIOMA'"));
    let bad = ismf(&["simulate", "--out", &out, "--studies", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = ismf(&["simulate", "--out", &out, "--distractors", "dwi=3"]);
    assert_eq!(bad.status.code(), Some(2));
    // A folder under a regular file cannot be created, even by root.
    let file = root.path().join("plain-file");
    std::fs::write(&file, b"not a folder").expect("write");
    let target = file.join("out");
    let bad = ismf(&[
        "simulate",
        "--out",
        &target.to_string_lossy(),
        "--studies",
        "1",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(&*target.to_string_lossy()) && err.contains("cannot be written"),
        "{err}"
    );
    // And a good run works, with a preview and the series-dirs layout.
    let png = root.path().join("p.png");
    let ok = ismf(&[
        "simulate",
        "--out",
        &out,
        "--studies",
        "2",
        "--seed",
        "3",
        "--vendor",
        "siemens",
        "--layout",
        "series-dirs",
        "--preview",
        &png.to_string_lossy(),
        "--log-format",
        "json",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stderr)
        .lines()
        .any(|l| l.starts_with('{') && l.contains("simulation finished")));
    let img = image::open(&png).expect("preview is a PNG");
    assert_eq!((img.width(), img.height()), (4 * 256, 2 * 256));
    assert!(out_dir
        .join("S00000")
        .join("SE0002")
        .join("IM0001.dcm")
        .exists());
    assert_eq!(truth(&out_dir).len(), 2);
}
