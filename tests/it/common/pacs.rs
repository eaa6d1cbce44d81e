//! A real PACS for the tests: Debian's Orthanc on loopback ports, with a generated configuration
//! and storage in the test's folder, driven through its REST API.

use super::broker::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Orthanc {
    pub dicom_port: u16,
    pub http_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// Orthanc's AE title in the tests.
pub const AE: &str = "ORTHANC";

impl Orthanc {
    /// Starts Orthanc knowing the DICOM nodes `modalities` (name, AE title, port on loopback).
    pub fn start(dir: &Path, modalities: &[(&str, &str, u16)]) -> Orthanc {
        std::fs::create_dir_all(dir.join("db")).expect("orthanc dir");
        let (dicom_port, http_port) = (free_port(), free_port());
        let nodes: Vec<String> = modalities
            .iter()
            .map(|(name, ae, port)| format!("\"{name}\": [\"{ae}\", \"127.0.0.1\", {port}]"))
            .collect();
        let conf = format!(
            r#"{{ "Name": "test-pacs", "StorageDirectory": "{db}", "IndexDirectory": "{db}",
  "DicomAet": "{AE}", "DicomPort": {dicom_port}, "HttpPort": {http_port},
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "DicomCheckCalledAet": true,
  "Plugins": [], "StableAge": 1, "DicomModalities": {{ {} }} }}"#,
            nodes.join(", "),
            db = dir.join("db").display(),
        );
        std::fs::write(dir.join("orthanc.json"), conf).expect("orthanc config");
        let mut o = Orthanc {
            dicom_port,
            http_port,
            dir: dir.to_path_buf(),
            child: None,
        };
        o.run();
        o
    }

    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.join("orthanc.log")).expect("log");
        let child = Command::new(orthanc_binary())
            .arg(self.dir.join("orthanc.json"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("Orthanc runs (apt-get install orthanc)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.try_get("/system").is_none() {
            assert!(
                Instant::now() < deadline,
                "Orthanc did not answer on {}: {}",
                self.http_port,
                std::fs::read_to_string(self.dir.join("orthanc.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<serde_json::Value> {
        let r = super::http::request(self.http_port, method, path, "127.0.0.1", &[], body).ok()?;
        if !(200..300).contains(&r.status) {
            return None;
        }
        serde_json::from_slice(&r.body).ok()
    }

    pub fn try_get(&self, path: &str) -> Option<serde_json::Value> {
        self.request("GET", path, b"")
    }

    pub fn post(&self, path: &str, body: &[u8]) -> serde_json::Value {
        self.request("POST", path, body)
            .unwrap_or_else(|| panic!("POST {path} failed"))
    }

    /// Modalities of the series Orthanc holds for the study with this Study Instance UID.
    pub fn series_modalities(&self, study_uid: &str) -> Vec<String> {
        let Some(found) = self.request(
            "POST",
            "/tools/find",
            format!(r#"{{"Level":"Study","Query":{{"StudyInstanceUID":"{study_uid}"}}}}"#)
                .as_bytes(),
        ) else {
            return Vec::new();
        };
        let Some(id) = found
            .as_array()
            .and_then(|a| a.first())
            .and_then(|v| v.as_str())
        else {
            return Vec::new();
        };
        let mut m: Vec<String> = self
            .try_get(&format!("/studies/{id}/series"))
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s["MainDicomTags"]["Modality"].as_str().map(String::from))
            .collect();
        m.sort();
        m
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("orthanc.log")).unwrap_or_default()
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn orthanc_binary() -> &'static str {
    if Path::new("/usr/sbin/Orthanc").exists() {
        "/usr/sbin/Orthanc"
    } else {
        "Orthanc"
    }
}
