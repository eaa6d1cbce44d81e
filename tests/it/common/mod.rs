//! Helpers shared by the whole-flow tests: simulator runs, file listings, ground truth and the
//! external tools the tests check against.

pub mod broker;
pub mod http;
pub mod pacs;

use ismf::simulate::{self, ExportMode, Layout, SimulateOptions, Site, StudyOptions, TumourClass};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Simulator options for `studies` studies into `out`: internal site, classes cycling through all
/// five, any vendor, default distractors, instant flat export. Tests change what they need.
pub fn sim(out: &Path, studies: usize, seed: u64) -> SimulateOptions {
    SimulateOptions {
        out: out.to_path_buf(),
        studies,
        study: StudyOptions {
            seed,
            site: Site::Internal,
            classes: TumourClass::ALL.to_vec(),
            vendor: None,
            distractors: Default::default(),
        },
        mode: ExportMode::Instant,
        layout: Layout::Flat,
        preview: None,
        speed: 25.0,
        progress: false,
        truth: None,
    }
}

/// Runs the simulator and returns its ground truth.
pub fn run_sim(opts: &SimulateOptions) -> Vec<serde_json::Value> {
    simulate::run(opts).expect("simulate");
    truth(&opts.out)
}

/// The lines of `dir/truth.jsonl`.
pub fn truth(dir: &Path) -> Vec<serde_json::Value> {
    truth_file(&dir.join("truth.jsonl"))
}

/// The lines of a truth file.
pub fn truth_file(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("truth line {l}: {e}")))
        .collect()
}

/// Every `.dcm` file under `dir`, sorted.
pub fn dicom_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "dcm") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A command-line tool the README test command installs; missing means failing, not skipping.
pub fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "{name} is not installed: run the README test command (it installs dcmtk, dicom3tools, python3-pydicom)"
    );
    Command::new(name)
}

/// The Python with Debian's pydicom and numpy (`ISMF_PYTHON` overrides).
pub fn python() -> Command {
    let py = std::env::var("ISMF_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    python_with(py, "pydicom, numpy", "apt-get install python3-pydicom")
}

/// The Python with onnxruntime and numpy that `.ci/install-deps test` puts in `tests/.venv`
/// (`ISMF_PEER_PYTHON` overrides): the reference runtime the exported graphs are checked with.
pub fn onnxruntime_python() -> Command {
    let py = std::env::var("ISMF_PEER_PYTHON")
        .unwrap_or_else(|_| format!("{}/tests/.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    python_with(py, "onnxruntime, numpy", "it makes tests/.venv")
}

/// `py`, after checking that it imports `modules`; missing means failing, not skipping.
fn python_with(py: String, modules: &str, hint: &str) -> Command {
    let ok = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py} cannot import {modules}: run the README test command ({hint})"
    );
    Command::new(py)
}

/// Writes a copy of `src` to `dst` after `edit` changed its data set; returns `dst`.
pub fn rewrite(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut dicom_object::DefaultDicomObject),
) -> PathBuf {
    let mut obj = dicom_object::open_file(src).expect("open");
    edit(&mut obj);
    obj.write_to_file(dst).expect("write");
    dst.to_path_buf()
}

/// Makes a header claim `rows × columns × frames` pixels (a memory bomb when large).
pub fn claim_size(
    obj: &mut dicom_object::DefaultDicomObject,
    rows: u16,
    columns: u16,
    frames: &str,
) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(rows),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(columns),
    ));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from(frames),
    ));
}

/// A program built for the target under test: run directly, or through the emulator in
/// `ISMF_TARGET_RUNNER` when the tests were cross-compiled (`cross/test.sh` sets it to qemu).
/// Cargo's runner starts the test binaries only, not the programs they spawn.
pub fn target_command(program: impl AsRef<OsStr>) -> Command {
    let runner = std::env::var("ISMF_TARGET_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut command = Command::new(emulator);
            command.args(words).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Whether the tests run under an emulator (`cross/test.sh`: aarch64 under QEMU).
pub fn emulated() -> bool {
    std::env::var("ISMF_TARGET_RUNNER").is_ok_and(|r| !r.trim().is_empty())
}

/// A workload size: `native`, or `emulated` under QEMU (30–100× slower), where a test keeps
/// its coverage (every vendor, every class, …) with fewer repetitions of it.
pub fn scaled(native: usize, emulated: usize) -> usize {
    if self::emulated() {
        emulated
    } else {
        native
    }
}

/// The `ismf` binary under test.
pub fn ismf() -> Command {
    target_command(env!("CARGO_BIN_EXE_ismf"))
}

/// Copies the DICOM files of a simulated folder into the export folder, as a scanner would
/// send them (the simulator's truth.jsonl stays behind).
pub fn export(from: &Path, to: &Path, skip: impl Fn(&Path) -> bool) {
    for f in dicom_files(from) {
        if skip(&f) {
            continue;
        }
        let dest = to.join(f.strip_prefix(from).expect("under"));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("dir");
        std::fs::copy(&f, &dest).expect("copy");
    }
}

/// `ismf run --config CONFIG` as a child process, output discarded.
pub fn daemon(config: &Path) -> std::process::Child {
    ismf()
        .args(["run", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ismf run")
}

/// The SOP Instance UID of a DICOM file.
pub fn sop_instance_uid(path: &Path) -> String {
    let obj = dicom_object::open_file(path).expect("dicom");
    obj.element_by_name("SOPInstanceUID")
        .expect("uid")
        .to_str()
        .expect("str")
        .trim_end_matches('\0')
        .to_string()
}

/// The committed model card.
pub fn model_card() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/model-card.json")
}

/// A copy of the committed model card and its files in `dir`, after `edit(dir, card)` changed
/// the card or the copied files; returns the new card's path.
pub fn card_copy(dir: &Path, edit: impl FnOnce(&Path, &mut serde_json::Value)) -> PathBuf {
    let card = model_card();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card).expect("card")).expect("json");
    for f in json["files"].as_array().expect("files") {
        let name = f["path"].as_str().expect("path");
        let copy = dir.join(name);
        if !copy.exists() {
            std::fs::copy(card.parent().expect("dir").join(name), copy).expect("copy");
        }
    }
    edit(dir, &mut json);
    let path = dir.join("model-card.json");
    std::fs::write(&path, serde_json::to_string(&json).expect("json")).expect("write");
    path
}

/// The series of a simulated study's truth object with this role (`ax_t2w`, `sag_stir`, …).
pub fn series_with_role<'a>(
    study: &'a serde_json::Value,
    role: &str,
) -> Option<&'a serde_json::Value> {
    study["series"]
        .as_array()?
        .iter()
        .find(|s| s["role"] == role)
}

/// Runs `cmd`, fails the test with its stderr unless it succeeds, and returns its stdout.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON Schema `schemas/NAME`, formats checked.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema")).expect("json");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&value)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Fails with every schema error of `message`.
pub fn assert_valid(validator: &jsonschema::Validator, what: &str, message: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(message)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} invalid: {errors:?}\n{message}");
}

/// SIGTERM, then the exit code within 10 s (killed and `None` otherwise).
pub fn sigterm(child: &mut std::process::Child) -> Option<i32> {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// A child process killed when the test ends, also when it fails (a failed assertion must not
/// leave a daemon running).
pub struct Reaper(pub std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
