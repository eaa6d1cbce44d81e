//! The DICOM receiver with real senders — dcmtk's `echoscu`, `storescu` and `dcmsend`, studies
//! plain and recompressed with `dcmcjpls` and `dcmcrle` — and a raw association client (dicom-ul)
//! for what dcmtk will not do: a malformed data set, a transfer aborted mid-instance, more
//! associations at once than allowed. The PACS side (Orthanc) is in `daemon::kill_9…`.

use crate::common::broker::{appliance_config, free_port, of_kind, subscriber, Broker};
use crate::common::{dicom_files, ismf, run_sim, sim, tool};
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociationOptions, Pdu};
use ismf::network::dimse::{self, status, Command};
use ismf::simulate::Layout;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

/// `ismf run` with `config`, its log in `log`.
pub fn daemon_logged(config: &Path, log: &Path) -> Child {
    ismf()
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("ismf run")
}

/// Waits until something listens on the loopback `port`.
pub fn wait_listening(port: u16, log: &Path) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "receiver not listening on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `[dicom]` section listening on loopback `port` for `callers`.
pub fn dicom_section(port: u16, callers: &[&str]) -> String {
    let list: Vec<String> = callers.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "\n[dicom]\nlisten = \"127.0.0.1:{port}\"\nallowed_callers = [{}]\nmax_associations = 8\n",
        list.join(", ")
    )
}

fn append(path: &Path, text: &str) {
    let mut s = std::fs::read_to_string(path).expect("config");
    s.push_str(text);
    std::fs::write(path, s).expect("config");
}

/// An association as the raw client `RAWSCU`, proposing MR Image Storage and Verification.
fn raw(port: u16) -> Result<dicom_ul::ClientAssociation<TcpStream>, dicom_ul::association::Error> {
    ClientAssociationOptions::new()
        .calling_ae_title("RAWSCU")
        .called_ae_title("ISMF")
        .with_presentation_context(dimse::MR_IMAGE_STORAGE, vec![dimse::EXPLICIT_VR_LE])
        .with_abstract_syntax(dimse::VERIFICATION)
        .establish(format!("127.0.0.1:{port}"))
}

fn pdv(pc: u8, value_type: PDataValueType, is_last: bool, data: Vec<u8>) -> Pdu {
    Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type,
            is_last,
            data,
        }],
    }
}

fn response(assoc: &mut dicom_ul::ClientAssociation<TcpStream>) -> Command {
    match assoc.receive().expect("response") {
        Pdu::PData { data } => Command::parse(&data[0].data).expect("command"),
        other => panic!("unexpected {other:?}"),
    }
}

/// C-STORE of `data` (the data set's bytes) under `sop_instance`; returns the status, or
/// `None` when `abort_midway` sends half the data and aborts.
fn raw_store(port: u16, sop_instance: &str, data: &[u8], abort_midway: bool) -> Option<u16> {
    let mut assoc = raw(port).expect("raw association");
    let pc = assoc.presentation_contexts()[0].id;
    let rq = dimse::store_rq(1, dimse::MR_IMAGE_STORAGE, sop_instance).expect("rq");
    assoc
        .send(&pdv(pc, PDataValueType::Command, true, rq))
        .expect("command");
    if abort_midway {
        let half = data[..(data.len() / 2).min(16_000)].to_vec();
        assoc
            .send(&pdv(pc, PDataValueType::Data, false, half))
            .expect("data");
        std::thread::sleep(Duration::from_millis(200));
        assoc.abort().expect("abort");
        return None;
    }
    assoc
        .send(&pdv(pc, PDataValueType::Data, true, data.to_vec()))
        .expect("data");
    let code = response(&mut assoc).status;
    assoc.release().expect("release");
    code
}

fn run_ok(cmd: &mut std::process::Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Recompresses every file of `from` into `to` with a dcmtk codec tool (`dcmcjpls`, `dcmcrle`).
fn recompress(codec: &str, from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for (n, f) in dicom_files(from).iter().enumerate() {
        run_ok(tool(codec).arg(f).arg(to.join(format!("{n:04}.dcm"))));
    }
}

fn study_dirs(root: &Path) -> Vec<PathBuf> {
    let mut d: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("staging")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    d.sort();
    d
}

#[test]
fn dcmtk_sends_plain_jpeg_ls_and_rle_studies_and_the_receiver_refuses_what_it_must() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("broker"));
    let port = free_port();
    let config = appliance_config(dir.path(), &broker.url(), "");
    append(
        &config,
        &dicom_section(port, &["STORESCU@127.0.0.1", "RAWSCU"]),
    );
    let sub = subscriber(&broker, &["--appliance", "test-box"]);
    let staging = dir.path().join("staging");
    let mut opts = sim(&staging, 4, 41);
    opts.layout = Layout::SeriesDirs;
    let truth = run_sim(&opts);
    let studies = study_dirs(&staging);
    assert_eq!(studies.len(), 4);
    let jls = dir.path().join("jpeg-ls");
    recompress("dcmcjpls", &studies[1], &jls);
    let rle = dir.path().join("rle");
    recompress("dcmcrle", &studies[2], &rle);

    // The fourth study was received before a crash (renamed into `received/`) but never
    // catalogued: the daemon catalogues it at start, and predicts it without a sender.
    let received = dir.path().join("state/received");
    std::fs::create_dir_all(&received).expect("received");
    for (n, f) in dicom_files(&studies[3]).iter().enumerate() {
        std::fs::copy(
            f,
            received.join(format!("1.2.826.0.1.3680043.10.9.{n}.dcm")),
        )
        .expect("copy");
    }

    let log = dir.path().join("daemon.log");
    let mut daemon = crate::common::Reaper(daemon_logged(&config, &log));
    wait_listening(port, &log);

    // 12 associations at once with max_associations = 8: the 9th to 12th are refused, the
    // first 8 verify and release.
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..12 {
        match raw(port) {
            Ok(a) => open.push(a),
            Err(e) => {
                assert!(format!("{e:?}").contains("LocalLimitExceeded"), "{e:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (8, 4));
    for mut a in open {
        let pc = a
            .presentation_contexts()
            .iter()
            .find(|p| p.abstract_syntax.trim_end_matches('\0') == dimse::VERIFICATION)
            .expect("verification context")
            .id;
        a.send(&pdv(
            pc,
            PDataValueType::Command,
            true,
            dimse::echo_rq(1).expect("echo"),
        ))
        .expect("echo");
        assert_eq!(response(&mut a).status, Some(status::SUCCESS));
        a.release().expect("release");
    }

    // Verification, and an unknown calling AE title refused.
    let aet = |ae: &str| {
        [
            "-aet".to_string(),
            ae.to_string(),
            "-aec".into(),
            "ISMF".into(),
        ]
    };
    let target = ["127.0.0.1".to_string(), port.to_string()];
    run_ok(tool("echoscu").args(aet("STORESCU")).args(&target));
    let intruder = tool("echoscu")
        .args(aet("INTRUDER"))
        .args(&target)
        .output()
        .expect("echoscu");
    assert!(!intruder.status.success(), "an unknown AE must be refused");

    // Three studies: as simulated (storescu), JPEG-LS (dcmsend), RLE (storescu).
    run_ok(
        tool("storescu")
            .args(aet("STORESCU"))
            .args(["+sd", "+r"])
            .args(&target)
            .arg(&studies[0]),
    );
    run_ok(
        tool("dcmsend")
            .args(aet("STORESCU"))
            .args(["--scan-directories"])
            .args(&target)
            .arg(&jls),
    );
    run_ok(
        tool("storescu")
            .args(aet("STORESCU"))
            .args(["+sd", "-xr"])
            .args(&target)
            .arg(&rle),
    );

    // A malformed data set: failure status, quarantined with a reason.
    let code = raw_store(
        port,
        "1.2.826.0.1.3680043.10.1.1",
        b"\x08\x00\x16\x00garbage that is no data set",
        false,
    );
    assert_eq!(code, Some(status::CANNOT_UNDERSTAND));
    // A transfer aborted mid-instance leaves nothing behind.
    let whole = std::fs::read(&dicom_files(&studies[0])[0]).expect("file");
    let aborted_uid = "1.2.826.0.1.3680043.10.1.2";
    assert_eq!(raw_store(port, aborted_uid, &whole[132..], true), None);

    let uids: Vec<&str> = truth
        .iter()
        .map(|t| t["study_instance_uid"].as_str().expect("uid"))
        .collect();
    let predicted = |m: &[serde_json::Value]| {
        uids.iter().all(|u| {
            of_kind(m, "prediction")
                .iter()
                .any(|p| p["message"]["study_instance_uid"] == *u)
        })
    };
    let done = sub.wait_for(WAIT, |m| {
        predicted(m)
            && of_kind(m, "event")
                .iter()
                .filter(|e| e["message"]["kind"] == "association_rejected")
                .count()
                >= 5
    });
    let messages = sub.messages();
    assert!(
        done,
        "{messages:#?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(crate::common::sigterm(&mut daemon.0), Some(0));

    // Identical to the folder path: `ismf classify` of the original files gives the same ids
    // and probabilities for all four, JPEG-LS and RLE included (both lossless).
    let folder: Vec<serde_json::Value> =
        crate::common::stdout_of(ismf().args(["classify", "--json"]).arg(&staging))
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
    for p in of_kind(&messages, "prediction") {
        let p = &p["message"];
        let f = folder
            .iter()
            .find(|f| f["study_instance_uid"] == p["study_instance_uid"])
            .expect("same study by folder");
        assert_eq!(p["prediction_id"], f["prediction_id"]);
        for (class, v) in p["probabilities"].as_object().expect("probabilities") {
            let w = f["probabilities"][class].as_f64().expect("number");
            assert!(
                (v.as_f64().expect("number") - w).abs() <= 1e-6,
                "{class}: {v} vs {w}"
            );
        }
    }
    let events = of_kind(&messages, "event");
    assert!(
        events.iter().any(|e| e["message"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("'INTRUDER'"))),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["message"]["kind"] == "quarantined_file"),
        "{events:#?}"
    );
    let quarantined: Vec<String> = std::fs::read_dir(dir.path().join("quarantine"))
        .expect("quarantine")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        quarantined
            .iter()
            .any(|n| n == "1.2.826.0.1.3680043.10.1.1.dcm.reason.txt"),
        "{quarantined:?}"
    );
    // Nothing of the aborted instance was kept or catalogued, no temporary file is left, and
    // the processed studies' received instances were deleted.
    let journal = std::fs::read_to_string(dir.path().join("state/catalog.jsonl")).expect("journal");
    assert!(
        !journal.contains(aborted_uid),
        "aborted instance catalogued"
    );
    let left: Vec<PathBuf> = dicom_files(&received);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        std::fs::read_dir(received.join(".tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

#[test]
fn dicom_tls_with_client_certificates_for_dcmtk_and_for_the_appliances_own_sender() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = crate::common::broker::Certs::make(&dir.path().join("certs"));
    let port = free_port();
    // No broker: the receiver does not need one (predictions would wait in the outbox).
    let config = appliance_config(dir.path(), &format!("mqtt://127.0.0.1:{}", free_port()), "");
    append(
        &config,
        &format!(
            "{}tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_ca_file = \"{}\"\n",
            dicom_section(port, &["ECHOSCU", "ISMF"]),
            certs.server_cert.display(),
            certs.server_key.display(),
            certs.ca.display()
        ),
    );
    let log = dir.path().join("daemon.log");
    let mut daemon = crate::common::Reaper(daemon_logged(&config, &log));
    wait_listening(port, &log);
    let echo = |tls: &[&std::ffi::OsStr]| {
        tool("echoscu")
            .args(tls)
            .args([
                "-aet",
                "ECHOSCU",
                "-aec",
                "ISMF",
                "127.0.0.1",
                &port.to_string(),
            ])
            .output()
            .expect("echoscu")
            .status
            .success()
    };
    let (key, cert, ca) = (
        certs.client_key.as_os_str(),
        certs.client_cert.as_os_str(),
        certs.ca.as_os_str(),
    );
    let tls = |k, c| vec!["+tls".as_ref(), k, c, "+cf".as_ref(), ca];
    assert!(
        echo(&tls(key, cert)),
        "dcmtk with a client certificate signed by the CA"
    );
    assert!(
        !echo(&tls(
            certs.rogue_key.as_os_str(),
            certs.rogue_cert.as_os_str()
        )),
        "a certificate of another CA is refused"
    );
    assert!(!echo(&[]), "plain TCP is refused on a TLS listener");
    // The appliance's own sender (the PACS path) over the same TLS.
    let client = ismf::tls::client_config(&certs.ca, Some((&certs.client_cert, &certs.client_key)))
        .expect("client tls");
    let peer = ismf::network::scu::Peer {
        host: "127.0.0.1".into(),
        port,
        called_ae: "ISMF".into(),
        calling_ae: "ISMF".into(),
        timeout: Duration::from_secs(10),
        max_pdu: 65536,
        tls: Some(std::sync::Arc::new(client)),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    assert_eq!(
        rt.block_on(ismf::network::scu::echo(&peer))
            .expect("echo over TLS"),
        status::SUCCESS
    );
    assert_eq!(crate::common::sigterm(&mut daemon.0), Some(0));
}
