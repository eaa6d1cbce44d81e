//! What the radiologist sees: explanation maps checked against the simulator's lesion boxes,
//! and the DICOM results (SR, SC, KOS) checked by the real validators and read by peers.

use crate::common::{
    assert_valid, ismf, model_card, run_sim, schema, sim, sop_instance_uid, stdout_of, tool,
};
use ismf::classify::Classifier;
use ismf::explain::pointing::evaluate_dir;
use ismf::explain::Occlusion;
use ismf::ingest::scan;
use ismf::model::{Model, Precision};
use ismf::preprocess::PreprocessParams;
use ismf::results::{write_results, ResultInputs};
use std::path::{Path, PathBuf};
use std::process::Command;

fn model() -> Model {
    Model::load(&model_card(), Precision::F32, &PreprocessParams::default()).expect("model")
}

/// The files of a results folder, by suffix.
fn result_file(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("results dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

/// dciodvfy's `Error` lines (warnings are allowed: dicom3tools does not know Device UID in
/// Contributing Equipment yet).
fn dciodvfy_errors(path: &Path) -> Vec<String> {
    let out = tool("dciodvfy").arg(path).output().expect("dciodvfy");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect()
}

/// PixelMed's template validation: its `Error` lines, after checking it ran to the end.
fn pixelmed_errors(path: &Path, root: &str) -> Vec<String> {
    let out = tool("DicomSRValidator")
        .args(["-checktemplateid", "-checkcontentitemorder"])
        .arg(path)
        // Debian's JDK stops PixelMed's XPath at 10 000 operations without these.
        .env(
            "JAVA_TOOL_OPTIONS",
            "-Djdk.xml.xpathExprOpLimit=0 -Djdk.xml.xpathExprGrpLimit=0 -Djdk.xml.xpathTotalOpLimit=0",
        )
        .output()
        .expect("DicomSRValidator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("Found Root Template {root}"))
            && text.contains("Root Template Validation Complete"),
        "{}: PixelMed did not validate the template: {text}",
        path.display()
    );
    text.lines()
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect()
}

const PEER: &str = r#"
import json, sys
import highdicom as hd, pydicom
from highdicom.sr.utils import find_content_items
from pydicom.sr.coding import Code
sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sys.argv[1]))
groups = sr.content.get_image_measurement_groups()
g = groups[0]
def text(value):
    items = find_content_items(g[0], name=Code(value, "DCM", ""))
    return [i.TextValue for i in items]
sc = pydicom.dcmread(sys.argv[2])
px = sc.pixel_array
print(json.dumps({
    "groups": len(groups),
    "finding": [g.finding_type.value, g.finding_type.scheme_designator, g.finding_type.meaning],
    "probabilities": {m.name.meaning: float(m.value) for m in g.get_measurements()},
    "units": sorted({m.unit.value for m in g.get_measurements()}),
    "algorithm_name": text("111001"),
    "algorithm_version": text("111003"),
    "sources": len(g.source_images),
    "study": sr.StudyInstanceUID,
    "verification": sr.VerificationFlag,
    "sc_shape": list(px.shape),
    "sc_burned_in": sc.BurnedInAnnotation,
    "sc_image_type": list(sc.ImageType),
    "sc_sources": len(sc.SourceImageSequence),
}))
"#;

fn peer_python() -> Command {
    let py = std::env::var("ISMF_PEER_PYTHON")
        .unwrap_or_else(|_| format!("{}/tests/.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    let ok = Command::new(&py)
        .args(["-c", "import highdicom"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py} cannot import highdicom: run the README test command"
    );
    Command::new(py)
}

#[test]
fn classify_writes_dicom_results_that_validators_and_peers_accept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let studies = dir.path().join("study");
    let truth = run_sim(&sim(&studies, 1, 21));
    let results = dir.path().join("results");
    let line = stdout_of(
        ismf()
            .args(["classify", "--json", "--results"])
            .arg(&results)
            .arg(&studies),
    );
    let p: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
    assert_valid(&schema("prediction.schema.json"), "prediction", &p);
    let explanation = &p["explanation"];
    assert_eq!(explanation["method"], "occlusion-sensitivity");
    assert_eq!(explanation["class"], p["top_class"]);
    assert_eq!(explanation["sequences"].as_array().map(Vec::len), Some(4));
    let png = result_file(&results, ".key-images.png");
    let png_bytes = std::fs::read(&png).expect("png");
    assert_eq!(p["key_images"]["bytes"], png_bytes.len());
    assert!(png_bytes.len() <= 300 * 1024, "{} bytes", png_bytes.len());
    // No patient identity in the PNG (it goes over MQTT).
    let patient = truth[0]["patient_id"].as_str().expect("patient id");
    assert!(!png_bytes
        .windows(patient.len())
        .any(|w| w == patient.as_bytes()));

    let (sr, sc, kos) = (
        result_file(&results, ".sr.dcm"),
        result_file(&results, ".key-images.dcm"),
        result_file(&results, ".kos.dcm"),
    );
    for f in [&sr, &sc, &kos] {
        let errors = dciodvfy_errors(f);
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
    for (f, root) in [(&sr, "TID_1500"), (&kos, "TID_2010")] {
        let errors = pixelmed_errors(f, root);
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
    let dump = stdout_of(tool("dsrdump").arg(&sr));
    assert!(dump.contains("Imaging Measurement Report") && dump.contains("UNVERIFIED"));

    let peer: serde_json::Value = serde_json::from_str(&stdout_of(
        peer_python().args(["-c", PEER]).arg(&sr).arg(&sc),
    ))
    .expect("peer json");
    let top = p["top_class"].as_str().expect("top");
    let sct = match top {
        "SCN" => "985004",
        "MNG" => "1373614004",
        "AST" => "1157043006",
        "EPN" => "1186904005",
        _ => "14799000",
    };
    assert_eq!(peer["groups"], 1);
    assert_eq!(peer["finding"][0], sct);
    assert_eq!(peer["finding"][1], "SCT");
    assert_eq!(peer["study"], truth[0]["study_instance_uid"]);
    assert_eq!(peer["verification"], "UNVERIFIED");
    assert_eq!(peer["units"], serde_json::json!(["1"]));
    assert_eq!(peer["algorithm_name"][0], p["model"]["name"]);
    assert_eq!(peer["algorithm_version"][0], p["model"]["version"]);
    assert_eq!(peer["sources"], 4, "one key slice per sequence");
    let names = [
        "schwannoma",
        "meningioma",
        "astrocytoma",
        "ependymoma",
        "metastasis",
    ];
    for (class, name) in ["SCN", "MNG", "AST", "EPN", "MET"].iter().zip(names) {
        let in_sr = peer["probabilities"][format!("Probability of {name}")]
            .as_f64()
            .expect("probability");
        let in_json = p["probabilities"][class]
            .as_f64()
            .expect("json probability");
        assert!(
            (in_sr - in_json).abs() < 1e-4,
            "{class}: {in_sr} vs {in_json}"
        );
    }
    assert_eq!(peer["sc_shape"][2], 3);
    assert_eq!(peer["sc_burned_in"], "YES");
    assert_eq!(
        peer["sc_image_type"],
        serde_json::json!(["DERIVED", "SECONDARY"])
    );
    assert_eq!(peer["sc_sources"], 4);

    // A second run writes the same instances (UIDs from the study and the model).
    let again = dir.path().join("again");
    stdout_of(
        ismf()
            .args(["classify", "--results"])
            .arg(&again)
            .arg(&studies),
    );
    for suffix in [".sr.dcm", ".key-images.dcm", ".kos.dcm"] {
        assert_eq!(
            sop_instance_uid(&result_file(&results, suffix)),
            sop_instance_uid(&result_file(&again, suffix)),
            "{suffix}"
        );
    }
}

#[test]
fn unrenderable_pixels_keep_the_sr_and_an_unwritable_folder_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let studies = dir.path().join("study");
    run_sim(&sim(&studies, 1, 22));
    let mut classifier = Classifier::new(model(), PreprocessParams::default());
    classifier.explain = Some(Occlusion::default());
    let scanned = scan(&studies).expect("scan");
    let entry = scanned.catalog.studies.values().next().expect("study");
    let c = classifier
        .classify_entry_full(entry, 0.0)
        .expect("classified");
    let explanation = c.explanation.as_ref().expect("maps");
    // The T2FS key slice becomes unreadable after classification.
    let t2fs = explanation
        .maps
        .iter()
        .find(|m| m.kind.key() == "sag_t2fs")
        .expect("t2fs map");
    std::fs::write(&t2fs.source_path, b"DICM but not really").expect("corrupt");
    let inputs = ResultInputs::of(&c, classifier.max_voxels);
    let out = dir.path().join("results");
    let written = write_results(&out, &inputs).expect("results");
    assert!(
        written.sr.as_ref().is_some_and(|p| p.exists()),
        "the SR is kept"
    );
    assert!(written.sc.is_none() && written.kos.is_none() && written.png.is_none());
    assert!(
        written.problems.iter().any(|p| p.contains("sag_t2fs")),
        "{:?}",
        written.problems
    );
    // A results folder under a file cannot be made: the error names it.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"x").expect("file");
    let e = write_results(&blocked.join("results"), &inputs).expect_err("unwritable");
    assert!(e.to_string().contains("file"), "{e}");
}

#[test]
fn maps_point_at_the_lesion_and_a_randomised_model_gives_other_maps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let studies = dir.path().join("studies");
    // The cohort's class mix, not the classes whose maps localise best.
    run_sim(&sim(&studies, 6, 31));
    let classifier = Classifier::new(model(), PreprocessParams::default());
    let card = ismf::model::randomise::write_randomised(&model_card(), &dir.path().join("rnd"), 1)
        .expect("randomised card");
    let randomised =
        Model::load(&card, Precision::F32, &PreprocessParams::default()).expect("load");
    let r = evaluate_dir(
        &classifier,
        Occlusion::default(),
        Some(&randomised),
        &studies,
        None,
        false,
    )
    .expect("explained");
    eprintln!("{}", ismf::explain::pointing::render_text(&r));
    assert_eq!(r.studies, 6, "{:?}", r.failed);
    let (hit, random, mismatched) = (
        r.all.hit_rate(),
        r.all.random_rate(),
        r.all.mismatched_rate(),
    );
    assert!(hit > 3.0 * random, "hit {hit:.3} vs random {random:.3}");
    assert!(
        mismatched < hit / 2.0,
        "maps scored against another study's lesion must not do as well: {mismatched:.3} vs {hit:.3}"
    );
    for (sequence, rho) in &r.randomised_spearman {
        assert!(*rho < 0.5, "{sequence}: randomised maps correlate {rho:.3}");
    }
}
