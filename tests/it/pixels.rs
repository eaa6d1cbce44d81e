//! Pixel decoding against files nobody here wrote (Debian's pydicom test files, decoded by
//! pydicom), against dcmtk-compressed copies of simulator files, and against hostile headers.

use crate::common;
use crate::common::{claim_size, python, rewrite, sim, stdout_of, tool};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use ismf::pixels::{decode_file, write_npy, PixelError, DEFAULT_MAX_VOXELS};
use ismf::simulate::{self, TumourClass, Vendor};
use std::path::{Path, PathBuf};
use std::process::Command;

const PYDICOM_FILES: &str = "/usr/lib/python3/dist-packages/pydicom/data/test_files";

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pydicom_test_files_decode_to_pydicom_values() {
    let dir = tempfile::tempdir().expect("dir");
    let names = [
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_padded.dcm",
    ];
    let reference = format!("{PYDICOM_FILES}/MR_small.dcm");
    let mut args = Vec::new();
    for name in names {
        let src = PathBuf::from(PYDICOM_FILES).join(name);
        assert!(
            src.exists(),
            "{} missing: apt-get install python3-pydicom",
            src.display()
        );
        let v = decode_file(&src, DEFAULT_MAX_VOXELS).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v.frames, v.rows, v.columns), (1, 64, 64), "{name}");
        let npy = dir.path().join(format!("{name}.npy"));
        write_npy(&npy, &v).expect("npy");
        args.extend([
            src.display().to_string(),
            npy.display().to_string(),
            reference.clone(),
        ]);
    }
    let lines = stdout_of(
        python()
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/tools/compare_pydicom.py"
            ))
            .args(&args),
    );
    assert_eq!(lines.lines().count(), names.len());
    for line in lines.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols[1], "0.0", "{line}");
    }
    // A file cut short is refused with its name.
    let truncated = PathBuf::from(PYDICOM_FILES).join("MR_truncated.dcm");
    let e = decode_file(&truncated, DEFAULT_MAX_VOXELS).expect_err("truncated");
    assert!(e.to_string().contains("MR_truncated.dcm"), "{e}");
}

fn one_simulated_file(dir: &Path) -> PathBuf {
    let mut o = sim(&dir.join("sim"), 1, 4);
    o.study.classes = vec![TumourClass::Schwannoma];
    o.study.vendor = Some(Vendor::Siemens);
    o.study.distractors = "none".parse().unwrap_or_default();
    simulate::run(&o).expect("simulate");
    // A mid-sagittal T2W image (series 2 without a localizer).
    dir.join("sim").join("S00000_SE0002_IM0007.dcm")
}

#[test]
fn dcmtk_compressed_copies_decode_to_the_original() {
    let dir = tempfile::tempdir().expect("dir");
    let src = one_simulated_file(dir.path());
    let original = decode_file(&src, DEFAULT_MAX_VOXELS).expect("original");
    assert!(original.data.iter().any(|&v| v > 0.0));
    let copies: [(&str, &[&str], &str); 7] = [
        ("dcmcjpls", &[], "1.2.840.10008.1.2.4.80"),
        ("dcmcrle", &[], "1.2.840.10008.1.2.5"),
        ("dcmcjpeg", &["+el"], "1.2.840.10008.1.2.4.57"),
        ("dcmcjpeg", &["+e1"], "1.2.840.10008.1.2.4.70"),
        ("dcmconv", &["+td"], "1.2.840.10008.1.2.1.99"),
        ("dcmconv", &["+tb"], "1.2.840.10008.1.2.2"),
        ("dcmconv", &["+ti"], "1.2.840.10008.1.2"),
    ];
    for (k, (cmd, args, uid)) in copies.iter().enumerate() {
        let out = dir.path().join(format!("copy{k}.dcm"));
        run(tool(cmd).args(*args).arg(&src).arg(&out));
        let meta = dicom_object::open_file(&out).expect("open copy");
        assert_eq!(
            meta.meta().transfer_syntax().trim_end_matches('\0'),
            *uid,
            "{cmd} {args:?}"
        );
        let v =
            decode_file(&out, DEFAULT_MAX_VOXELS).unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
        assert_eq!(
            (v.frames, v.rows, v.columns),
            (original.frames, original.rows, original.columns)
        );
        assert!(
            v.data == original.data,
            "{cmd} {args:?}: pixels differ from the original"
        );
        assert_eq!(v.positions, original.positions);
    }
    // 12-bit lossy JPEG is refused, naming the transfer syntax and the file.
    let lossy = dir.path().join("lossy12.dcm");
    run(tool("dcmcjpeg").args(["+ee"]).arg(&src).arg(&lossy));
    match decode_file(&lossy, DEFAULT_MAX_VOXELS) {
        Err(e @ PixelError::UnsupportedTransferSyntax { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("1.2.840.10008.1.2.4.51") && m.contains("lossy12.dcm"),
                "{m}"
            );
        }
        other => panic!("12-bit lossy JPEG not refused: {other:?}"),
    }
}

#[test]
fn hostile_headers_are_refused_before_allocation_and_monochrome1_is_inverted() {
    let dir = tempfile::tempdir().expect("dir");
    let src = one_simulated_file(dir.path());
    let original = decode_file(&src, DEFAULT_MAX_VOXELS).expect("original");

    let bomb = dir.path().join("bomb.dcm");
    rewrite(&src, &bomb, |o| claim_size(o, 65535, 65535, "100000"));
    match decode_file(&bomb, DEFAULT_MAX_VOXELS) {
        Err(e @ PixelError::TooLarge { .. }) => assert!(e.to_string().contains("bomb.dcm")),
        other => panic!("memory bomb not refused: {other:?}"),
    }
    // A small limit refuses even the real image.
    assert!(matches!(
        decode_file(&src, 1000),
        Err(PixelError::TooLarge { .. })
    ));

    let wrong = dir.path().join("wrong-length.dcm");
    rewrite(&src, &wrong, |o| {
        o.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(400u16),
        ));
    });
    let e = decode_file(&wrong, DEFAULT_MAX_VOXELS).expect_err("pixel data shorter than claimed");
    assert!(e.to_string().contains("wrong-length.dcm"), "{e}");

    let mono1 = dir.path().join("mono1.dcm");
    rewrite(&src, &mono1, |o| {
        o.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from("MONOCHROME1"),
        ));
    });
    let inv = decode_file(&mono1, DEFAULT_MAX_VOXELS).expect("mono1");
    // 12 bits stored, slope 1, intercept 0: v' = 4095 − v.
    assert!(inv
        .data
        .iter()
        .zip(&original.data)
        .all(|(a, b)| (a + b - 4095.0).abs() < 1e-3));
}

#[test]
fn enhanced_multiframe_keeps_per_frame_geometry() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("enhanced.dcm");
    // Built by pydicom (a peer), not by us.
    let script = r#"
import sys
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
ds.StudyInstanceUID = generate_uid(); ds.SeriesInstanceUID = generate_uid(); ds.Modality = "MR"
ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, 3
ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
shared = Dataset()
po = Dataset(); po.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
pm = Dataset(); pm.PixelSpacing = [0.8, 0.9]; pm.SliceThickness = 3
shared.PlaneOrientationSequence = Sequence([po]); shared.PixelMeasuresSequence = Sequence([pm])
ds.SharedFunctionalGroupsSequence = Sequence([shared])
frames = []
for k in range(3):
    f = Dataset(); pp = Dataset(); pp.ImagePositionPatient = [-3.5 * k, -100.0, 120.0]
    f.PlanePositionSequence = Sequence([pp]); frames.append(f)
ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
ds.PixelData = (np.arange(60, dtype=np.uint16) * 7).tobytes()
ds.save_as(sys.argv[1], write_like_original=False)
"#;
    let out = python()
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = decode_file(&path, DEFAULT_MAX_VOXELS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((v.frames, v.rows, v.columns), (3, 4, 5));
    assert_eq!(v.data, (0..60).map(|x| (x * 7) as f32).collect::<Vec<_>>());
    assert_eq!(
        v.positions,
        vec![
            Some([0.0, -100.0, 120.0]),
            Some([-3.5, -100.0, 120.0]),
            Some([-7.0, -100.0, 120.0])
        ]
    );
    assert_eq!(v.orientation, Some([0.0, 1.0, 0.0, 0.0, 0.0, -1.0]));
    assert_eq!(v.pixel_spacing, Some([0.8, 0.9]));
}

#[test]
fn decode_cli_writes_npy_and_names_bad_files() {
    let dir = tempfile::tempdir().expect("dir");
    let src = PathBuf::from(PYDICOM_FILES).join("MR_small_RLE.dcm");
    let npy = dir.path().join("out.npy");
    let out = common::ismf()
        .arg("decode")
        .arg(&src)
        .arg("--npy")
        .arg(&npy)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = python()
        .args([
            "-c",
            "import numpy, sys; a = numpy.load(sys.argv[1]); print(a.dtype, a.shape)",
        ])
        .arg(&npy)
        .output()
        .expect("python");
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "float32 (1, 64, 64)"
    );
    let bad = dir.path().join("bad.dcm");
    std::fs::write(&bad, b"DICM but not really").expect("write");
    let out = common::ismf()
        .arg("decode")
        .arg(&bad)
        .arg("--npy")
        .arg(&npy)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.dcm"));
}

#[test]
fn preamble_less_files_are_read() {
    let dir = tempfile::tempdir().expect("dir");
    let src = PathBuf::from(PYDICOM_FILES).join("MR_small.dcm");
    let bytes = std::fs::read(&src).expect("read");
    let stripped = dir.path().join("no-preamble.dcm");
    std::fs::write(&stripped, &bytes[128..]).expect("write");
    let h = ismf::ingest::catalog::read_header(&stripped).expect("header without preamble");
    assert_eq!(h.rows, 64);
    let a = decode_file(&src, DEFAULT_MAX_VOXELS).expect("original");
    let b = decode_file(&stripped, DEFAULT_MAX_VOXELS).expect("stripped");
    assert_eq!(a.data, b.data);
}
