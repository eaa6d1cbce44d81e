//! `ismf run` as a hospital runs it: a real mosquitto, the export folder filling up, bad files,
//! a study missing a sequence, SIGTERM.

use crate::common;
use crate::common::broker::{appliance_config, appliance_config_with, of_kind, subscriber, Broker};
use crate::common::pacs::Orthanc;
use crate::common::sigterm;
use crate::common::{
    assert_valid, daemon, dicom_files, export, ismf, model_card, run_sim, schema, series_with_role,
    sim,
};
use ismf::simulate::{self, ExportMode};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn run_predicts_each_study_reports_bad_files_and_incomplete_studies_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("broker"));
    let config = appliance_config(dir.path(), &broker.url(), "");
    let sub = subscriber(&broker, &["--appliance", "test-box"]);
    let mut appliance = daemon(&config);
    assert!(
        sub.wait_for(WAIT, |m| of_kind(m, "status")
            .iter()
            .any(|s| s["message"]["state"] == "online")),
        "the appliance never came online"
    );

    // ...then a study missing its axial T2W arrives, and a file that is not DICOM.
    // The scanner exports three studies in real time straight into the watched folder (its
    // truth goes elsewhere)...
    let staging = dir.path().join("staging");
    let incoming = dir.path().join("incoming");
    let mut realtime = sim(&incoming.join("scanner"), 3, 71);
    realtime.mode = ExportMode::Realtime;
    realtime.truth = Some(staging.join("truth.jsonl"));
    simulate::run(&realtime).expect("realtime export");
    let truth = common::truth_file(&staging.join("truth.jsonl"));
    let partial = run_sim(&sim(&staging.join("partial"), 1, 72));
    let axial: Vec<String> = series_with_role(&partial[0], "ax_t2w")
        .map(|s| s["series_instance_uid"].as_str().unwrap_or("").to_string())
        .into_iter()
        .collect();
    export(&staging.join("partial"), &incoming.join("partial"), |f| {
        let Ok(obj) = dicom_object::open_file(f) else {
            return false;
        };
        obj.element_by_name("SeriesInstanceUID")
            .ok()
            .and_then(|e| e.to_str().ok())
            .is_some_and(|uid| axial.iter().any(|a| a == uid.trim_end_matches('\0')))
    });
    std::fs::write(incoming.join("not-dicom.dcm"), b"this is not a DICOM file").expect("write");

    let done = sub.wait_for(WAIT, |m| {
        of_kind(m, "prediction").len() >= 3
            && of_kind(m, "event")
                .iter()
                .any(|e| e["message"]["kind"] == "incomplete_study")
            && of_kind(m, "event")
                .iter()
                .any(|e| e["message"]["kind"] == "quarantined_file")
    });
    let messages = sub.messages();
    assert!(done, "subscriber saw: {messages:#?}");
    let predictions = of_kind(&messages, "prediction");
    let mut correct = 0;
    for t in &truth {
        let uid = t["study_instance_uid"].as_str().expect("uid");
        let p = predictions
            .iter()
            .find(|p| p["message"]["study_instance_uid"] == uid)
            .unwrap_or_else(|| panic!("no prediction for {uid}"));
        correct += usize::from(p["message"]["top_class"] == t["class"]);
    }
    eprintln!(
        "daemon: {correct} of {} studies predicted correctly (simulated)",
        truth.len()
    );
    let incomplete = of_kind(&messages, "event")
        .into_iter()
        .find(|e| e["message"]["kind"] == "incomplete_study")
        .expect("incomplete");
    assert_eq!(
        incomplete["message"]["study_instance_uid"],
        partial[0]["study_instance_uid"]
    );
    assert!(
        incomplete["message"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("ax_t2w"),
        "{incomplete}"
    );
    let quarantined = of_kind(&messages, "event")
        .into_iter()
        .find(|e| e["message"]["kind"] == "quarantined_file")
        .expect("quarantined");
    assert_eq!(quarantined["message"]["path"], "not-dicom.dcm");
    assert!(
        dir.path()
            .join("quarantine")
            .read_dir()
            .expect("quarantine")
            .count()
            > 0
    );

    // The heartbeat (every second here) reports how fast the three studies were answered.
    assert!(
        sub.wait_for(WAIT, |m| of_kind(m, "status")
            .iter()
            .any(|s| s["message"]["recent_studies"]["studies"] == 3)),
        "no heartbeat with the three studies' latencies"
    );
    let status_schema = schema("status.schema.json");
    let heartbeat = of_kind(&sub.messages(), "status")
        .into_iter()
        .find(|s| s["message"]["recent_studies"]["studies"] == 3)
        .map(|s| s["message"].clone())
        .expect("heartbeat");
    assert_valid(&status_schema, "heartbeat", &heartbeat);
    let recent = &heartbeat["recent_studies"];
    let ms = |k: &str, q: &str| recent[k][q].as_f64().expect("number");
    // A study is complete only once no file arrived for stable_seconds (2 s): its answer
    // cannot come sooner than that after its last file.
    assert!(ms("last_file_to_puback_ms", "p50") >= 2000.0, "{recent}");
    assert!(
        ms("last_file_to_puback_ms", "p50") <= ms("last_file_to_puback_ms", "p95"),
        "{recent}"
    );
    assert!(
        ms("inference_ms", "p50") > 0.0 && ms("inference_ms", "p95") < 60_000.0,
        "{recent}"
    );

    assert_eq!(
        sigterm(&mut appliance),
        Some(0),
        "SIGTERM → exit 0 within 10 s"
    );
    assert!(sub.wait_for(WAIT, |m| of_kind(m, "status")
        .iter()
        .any(
            |s| s["message"]["state"] == "offline" && s["message"]["reason"] == "shutdown"
        )));
}

#[test]
fn kill_9_a_broker_restart_and_a_pacs_outage_lose_no_study_and_no_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start(&dir.path().join("broker"));
    // Orthanc is the PACS (the results go there by C-STORE) and a sender: it pushes the first
    // study to the appliance's receiver.
    let scp_port = crate::common::broker::free_port();
    let mut pacs = Orthanc::start(&dir.path().join("pacs"), &[("ismf", "ISMF", scp_port)]);
    // With results: SR, SC, KOS and PNG per study, the PNG published on …/key-images.
    let results = dir.path().join("results");
    let config = appliance_config_with(
        dir.path(),
        &broker.url(),
        "",
        &format!(
            "explain = true\ndir = \"{}\"\n{}\n[pacs]\nhost = \"127.0.0.1\"\nport = {}\ncalled_ae = \"{}\"\nmax_backoff_seconds = 2\n",
            results.display(),
            crate::dicom::dicom_section(scp_port, &["ORTHANC@127.0.0.1"]),
            pacs.dicom_port,
            crate::common::pacs::AE
        ),
    );
    let sub = subscriber(
        &broker,
        &[
            "--appliance",
            "test-box",
            "--persistent",
            "--client-id",
            "reading-room-daemon",
        ],
    );
    let staging = dir.path().join("staging");
    let truth = run_sim(&sim(&staging, 4, 73));
    let uids: Vec<String> = truth
        .iter()
        .map(|t| t["study_instance_uid"].as_str().expect("uid").to_string())
        .collect();
    // Each study's files, by study, so they can be exported one after the other.
    let study_of = |f: &Path| -> Option<usize> {
        let obj = dicom_object::open_file(f).ok()?;
        let uid = obj
            .element_by_name("StudyInstanceUID")
            .ok()?
            .to_str()
            .ok()?;
        uids.iter().position(|u| u == uid.trim_end_matches('\0'))
    };
    let incoming = dir.path().join("incoming");
    let export_study = |k: usize| export(&staging, &incoming, |f| study_of(f) != Some(k));
    let predicted = |m: &[serde_json::Value]| -> usize {
        uids.iter()
            .filter(|u| {
                of_kind(m, "prediction")
                    .iter()
                    .any(|p| p["message"]["study_instance_uid"] == u.as_str())
            })
            .count()
    };

    let mut first = crate::common::Reaper(daemon(&config));
    // Study 0 by DICOM: stored in Orthanc, then pushed by Orthanc to the appliance.
    for f in dicom_files(&staging)
        .iter()
        .filter(|f| study_of(f) == Some(0))
    {
        pacs.post("/instances", &std::fs::read(f).expect("file"));
    }
    let study0 = pacs.post("/tools/lookup", uids[0].as_bytes())[0]["ID"]
        .as_str()
        .expect("study in Orthanc")
        .to_string();
    crate::dicom::wait_listening(scp_port, Path::new("/dev/null"));
    let pushed = pacs.post(
        "/modalities/ismf/store",
        format!(r#"{{"Resources":["{study0}"],"Synchronous":true}}"#).as_bytes(),
    );
    assert_eq!(pushed["FailedInstancesCount"], 0, "{pushed}");
    export_study(1);
    assert!(
        sub.wait_for(WAIT, |m| predicted(m) >= 1),
        "no first prediction"
    );
    // The PACS files the results into the original study: beside its MR series, SR, SC, KOS.
    let results_in = |pacs: &Orthanc, uid: &str| {
        let m = pacs.series_modalities(uid);
        ["SR", "OT", "KO"].iter().all(|k| m.iter().any(|x| x == k))
    };
    let deadline = Instant::now() + WAIT;
    while !results_in(&pacs, &uids[0]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let modalities = pacs.series_modalities(&uids[0]);
    let count = |k: &str| modalities.iter().filter(|m| *m == k).count();
    assert!(
        count("MR") >= 4 && count("SR") == 1 && count("OT") == 1 && count("KO") == 1,
        "{modalities:?}\n{}",
        pacs.log()
    );
    broker.restart();
    // PACS down while studies 2 and 3 arrive; the appliance is killed before it comes back.
    pacs.stop();
    export_study(2);
    export_study(3);
    // Studies 2 and 3 are catalogued but not yet complete (stable_seconds = 2 s): kill -9 now.
    std::thread::sleep(Duration::from_millis(1000));
    first.0.kill().expect("kill -9");
    let _ = first.0.wait();
    let before = predicted(&sub.messages());
    assert!(before < uids.len(), "the kill must come mid-stream");
    let mut second = crate::common::Reaper(daemon(&config));
    let all = sub.wait_for(WAIT, |m| predicted(m) == uids.len());
    pacs.restart();
    // Every result reaches the PACS once it is back (duplicates allowed, losses not).
    let deadline = Instant::now() + WAIT;
    while !uids.iter().all(|u| results_in(&pacs, u)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    for uid in &uids {
        assert!(
            results_in(&pacs, uid),
            "results of {uid} missing in PACS: {:?}",
            pacs.series_modalities(uid)
        );
    }
    let messages = sub.messages();
    let deliveries = of_kind(&messages, "prediction").len();
    eprintln!(
        "daemon kill -9 + broker restart: {before} of {} predicted before the restart, all {} after: {all}; {deliveries} deliveries ({} duplicate(s), deduplicable by prediction_id)",
        uids.len(),
        uids.len(),
        deliveries.saturating_sub(uids.len())
    );
    assert!(all, "missing predictions; subscriber saw: {messages:#?}");
    assert_eq!(sigterm(&mut second.0), Some(0));

    // Every study's results were written, once each (the file names are the study's), and a
    // fresh `ismf classify` of the same study derives the same instance UIDs: a re-run after
    // the kill re-writes identical objects rather than new ones.
    let again = dir.path().join("again");
    crate::common::stdout_of(
        crate::common::ismf()
            .args(["classify", "--results"])
            .arg(&again)
            .arg(&staging),
    );
    for uid in &uids {
        for suffix in ["sr.dcm", "key-images.dcm", "kos.dcm", "key-images.png"] {
            let name = format!("{uid}.{suffix}");
            assert!(results.join(&name).exists(), "{name} missing");
            if suffix.ends_with(".dcm") {
                assert_eq!(
                    crate::common::sop_instance_uid(&results.join(&name)),
                    crate::common::sop_instance_uid(&again.join(&name)),
                    "{name}"
                );
            }
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&results)
        .expect("results")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // Each prediction references its key image, published with its prediction_id.
    let images = of_kind(&messages, "key_images");
    for p in of_kind(&messages, "prediction") {
        let id = p["message"]["prediction_id"].as_str().expect("id");
        let bytes = &p["message"]["key_images"]["bytes"];
        assert!(
            images
                .iter()
                .any(|m| m["message"]["prediction_id"] == id && &m["message"]["bytes"] == bytes),
            "no key image for prediction {id}"
        );
    }
}

#[test]
#[cfg(feature = "demo")]
fn demo_by_dicom_runs_with_nothing_set_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = dir.path().join("demo");
    let out = ismf()
        .args([
            "demo",
            "--studies",
            "2",
            "--speed",
            "20",
            "--via",
            "dicom",
            "--keep",
        ])
        .arg(&keep)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("ismf demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 of 2 studies predicted"), "{stdout}");
    assert!(stdout.contains("NOT FOR DIAGNOSTIC USE"), "{stdout}");
    assert_eq!(stdout.matches("truth ").count(), 2, "{stdout}");
    // By DICOM: the simulated scanner wrote its own folder and sent each file by C-STORE; the
    // watched export folder stayed empty and the received instances were deleted once
    // processed. The kept folders hold the journal, outbox and truth.
    assert!(stdout.contains("C-STORE as SIMSCANNER"), "{stdout}");
    assert!(keep.join("truth.jsonl").is_file());
    assert!(keep.join("state/outbox.redb").is_file());
    assert!(!dicom_files(&keep.join("scanner")).is_empty());
    assert!(dicom_files(&keep.join("scanner-export")).is_empty());
    assert!(dicom_files(&keep.join("state/received")).is_empty());
}

#[test]
fn config_print_default_and_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = ismf()
        .args(["config", "print-default"])
        .output()
        .expect("print-default");
    assert!(out.status.success());
    let default = String::from_utf8_lossy(&out.stdout).into_owned();
    // `ismf config check` on `text` written to dir/NAME, from `cwd` (relative paths resolve there).
    let check = |name: &str, text: &str, cwd: &Path| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        ismf()
            .args(["config", "check"])
            .arg(&file)
            .current_dir(cwd)
            .output()
            .expect("check")
    };
    let ok = check("default.toml", &default, repo);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = default.replace("keep_alive = 30", "keep_alive = 1");
    let refused = check(
        "bad.toml",
        &bad.replace("[model]", "[model]\nbakend = \"cpu\""),
        repo,
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("did you mean model.backend?"),
        "{stderr}"
    );
    let refused = check("bad.toml", &bad, dir.path());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    // Every problem at once: the keep-alive and the model card missing from this folder.
    assert!(
        stderr.contains("keep_alive") && stderr.contains("model.card"),
        "{stderr}"
    );
}

/// A configuration file with only what an installer must say (appliance id, the three folders,
/// the broker, the model card) runs the daemon and `classify --publish`; every other key takes
/// the embedded default.
#[test]
fn a_minimal_config_file_runs_the_daemon_and_classify_publish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("broker"));
    let config = dir.path().join("minimal.toml");
    std::fs::write(
        &config,
        format!(
            "[appliance]\nid = \"minimal-box\"\n\n[ingest]\nwatch_dir = \"{d}/incoming\"\nstate_dir = \"{d}/state\"\nquarantine_dir = \"{d}/quarantine\"\n\n[mqtt]\nurl = \"{url}\"\n\n[model]\ncard = \"{card}\"\n",
            d = dir.path().display(),
            url = broker.url(),
            card = model_card().display()
        ),
    )
    .expect("config");
    let check = ismf()
        .args(["config", "check"])
        .arg(&config)
        .output()
        .expect("config check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let sub = subscriber(&broker, &["--appliance", "minimal-box"]);
    let studies = dir.path().join("studies");
    let truth = run_sim(&sim(&studies, 1, 73));
    let uid = truth[0]["study_instance_uid"].as_str().expect("uid");

    let published = ismf()
        .arg("classify")
        .arg(&studies)
        .args(["--publish", "--config"])
        .arg(&config)
        .output()
        .expect("classify --publish");
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    assert!(
        sub.wait_for(WAIT, |m| of_kind(m, "prediction").len() == 1),
        "classify --publish: no prediction on ismf/minimal-box/predictions"
    );

    // The daemon on the same file; only the completeness wait is shortened, through the
    // environment (the default, 30 s, would only slow the test).
    let mut appliance = ismf()
        .args(["run", "--config"])
        .arg(&config)
        .env("ISMF_INGEST_STABLE_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ismf run");
    export(&studies, &dir.path().join("incoming"), |_| false);
    assert!(
        sub.wait_for(WAIT, |m| of_kind(m, "prediction").len() >= 2),
        "ismf run: no prediction; subscriber saw {:#?}",
        sub.messages()
    );
    // The second came from the daemon: its journal in the configured state folder says so (the
    // journal is written just after the outbox commit, so it may trail the delivery a little).
    let processed = || {
        std::fs::read_to_string(dir.path().join("state/catalog.jsonl"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"processed\"") && l.contains(uid))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        processed(),
        "the daemon's journal has no processed record for {uid}"
    );
    let messages = sub.messages();
    let predictions = of_kind(&messages, "prediction");
    for p in &predictions {
        assert_eq!(p["message"]["study_instance_uid"], uid);
        assert_eq!(p["message"]["appliance_id"], "minimal-box");
    }
    // The same study under the same model: the same idempotent id from both paths.
    assert_eq!(
        predictions[0]["message"]["prediction_id"],
        predictions[1]["message"]["prediction_id"]
    );
    assert_eq!(sigterm(&mut appliance), Some(0), "SIGTERM → exit 0");
}
