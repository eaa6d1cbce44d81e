//! MQTT against a real mosquitto on a free loopback port: delivery and schema validity of every
//! message type, mutual TLS, the last will, broker restarts and `kill -9` mid-stream with a
//! persistent subscriber, and the full-outbox policy.

use crate::common;
use crate::common::broker::{appliance_config, collect_lines, of_kind, subscriber, Broker, Certs};
use crate::common::{assert_valid, ismf, run_sim, schema, sim};
use ismf::config::Config;
use ismf::publish::message::{sample_prediction, Event, EventKind};
use ismf::publish::mqtt::Publisher;
use ismf::publish::outbox::{MessageKind, Outbox, OutboxError};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A configuration in `run` that gives up waiting for acknowledgements after 4 s.
fn short_wait_config(run: &Path, url: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(run).expect("dir");
    let config = appliance_config(run, url, extra);
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("ack_timeout = 20", "ack_timeout = 4");
    std::fs::write(&config, text).expect("config");
    config
}

/// `ismf classify STUDIES --publish --config CONFIG`.
fn classify_publish(studies: &Path, config: &Path) -> std::process::Output {
    ismf()
        .arg("classify")
        .arg(studies)
        .args(["--publish", "--config"])
        .arg(config)
        .output()
        .expect("classify")
}

fn runtime() -> tokio::runtime::Runtime {
    ismf::publish::edge_runtime().expect("runtime")
}

/// Run by the tests below as a child process (`kill -9` needs a process of its own): publishes
/// ISMF_TEST_COUNT stand-in predictions ISMF_TEST_INTERVAL_MS apart through the outbox of the
/// configuration in ISMF_TEST_CONFIG, prints "drained" once the broker has them all, and stays
/// connected until killed.
#[test]
#[ignore = "a child process of the other tests"]
fn child_publisher() {
    let Ok(config) = std::env::var("ISMF_TEST_CONFIG") else {
        return;
    };
    let count: usize = std::env::var("ISMF_TEST_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let interval = Duration::from_millis(
        std::env::var("ISMF_TEST_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
    );
    let config = Config::load(Path::new(&config)).expect("config");
    let rt = runtime();
    let publisher = Publisher::open(config.publisher(None), rt.handle()).expect("start");
    for i in 0..count {
        let p = sample_prediction(i);
        publisher
            .submit_json(MessageKind::Prediction, &p, &p.model.sha256)
            .expect("submit");
        println!("submitted {i}");
        std::thread::sleep(interval);
    }
    rt.block_on(publisher.drain(Duration::from_secs(120)))
        .expect("drained");
    println!("drained");
    std::thread::sleep(Duration::from_secs(3600));
}

/// The child publisher and the lines it printed so far.
struct Child {
    process: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Child {
    fn printed(&self, line: &str) -> bool {
        self.lines.lock().expect("lines").iter().any(|l| l == line)
    }

    fn wait_printed(&self, line: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.printed(line) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `kill -9`.
    fn kill(mut self) {
        self.process.kill().expect("kill -9");
        let _ = self.process.wait();
    }
}

fn spawn_child(config: &Path, count: usize, interval_ms: u64) -> Child {
    let mut process = common::target_command(std::env::current_exe().expect("test binary"))
        .args([
            "mqtt::child_publisher",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("ISMF_TEST_CONFIG", config)
        .env("ISMF_TEST_COUNT", count.to_string())
        .env("ISMF_TEST_INTERVAL_MS", interval_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child publisher");
    let lines = collect_lines(process.stdout.take().expect("stdout"));
    Child { process, lines }
}

fn prediction_ids(messages: &[serde_json::Value]) -> Vec<String> {
    of_kind(messages, "prediction")
        .iter()
        .map(|m| {
            m["message"]["prediction_id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn classify_publishes_valid_predictions_status_and_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("broker"));
    let studies = dir.path().join("studies");
    let truth = run_sim(&sim(&studies, 2, 61));
    let sub = subscriber(&broker, &[]);
    // Subscribe before anything is published (the subscriber's session is not persistent).
    std::thread::sleep(Duration::from_millis(500));
    let config = appliance_config(dir.path(), &broker.url(), "");
    let out = ismf()
        .args([
            "classify",
            studies.to_str().expect("utf-8"),
            "--json",
            "--publish",
        ])
        .arg("--config")
        .arg(&config)
        .output()
        .expect("classify");
    assert!(
        out.status.success(),
        "classify --publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(printed.len(), 2);
    assert!(
        sub.wait_for(WAIT, |m| of_kind(m, "prediction").len() == 2
            && of_kind(m, "status")
                .iter()
                .any(|s| s["message"]["state"] == "offline")),
        "subscriber saw: {:?}",
        sub.messages()
    );
    let messages = sub.messages();
    let predictions = of_kind(&messages, "prediction");
    let validator = schema("prediction.schema.json");
    for p in &predictions {
        assert_valid(&validator, "prediction", &p["message"]);
        assert_eq!(p["message"]["appliance_id"], "test-box");
        assert_eq!(p["topic"], "ismf/test-box/predictions");
        // What was published is exactly what `classify --json` printed.
        assert!(printed.contains(&p["message"]), "{p}");
    }
    let uids: BTreeSet<&str> = truth
        .iter()
        .map(|t| t["study_instance_uid"].as_str().expect("uid"))
        .collect();
    let got: BTreeSet<&str> = predictions
        .iter()
        .map(|p| p["message"]["study_instance_uid"].as_str().expect("uid"))
        .collect();
    assert_eq!(uids, got);
    let status = schema("status.schema.json");
    let statuses = of_kind(&messages, "status");
    for s in &statuses {
        assert_valid(&status, "status", &s["message"]);
    }
    assert_eq!(statuses[0]["message"]["state"], "online");
    let last = statuses.last().expect("status");
    assert_eq!(last["message"]["reason"], "shutdown");
    // Retained: a subscriber arriving later still sees the appliance is offline.
    let late = subscriber(&broker, &[]);
    assert!(late.wait_for(WAIT, |m| of_kind(m, "status")
        .iter()
        .any(|s| s["retained"] == true && s["message"]["state"] == "offline")));

    // Events, published through the library, reach the events topic and match their schema.
    let cfg = Config::load(&config).expect("config");
    let rt = runtime();
    let outbox = Arc::new(Outbox::open(&cfg.outbox_path(), 10).expect("outbox"));
    let publisher = Publisher::start(cfg.publisher(None), outbox, rt.handle()).expect("publisher");
    let mut event = Event::new(EventKind::QuarantinedFile, "test-box", "not a DICOM file");
    event.path = Some("scanner/0001.dcm".into());
    publisher
        .submit_json(MessageKind::Event, &event, "")
        .expect("event");
    rt.block_on(publisher.drain(WAIT)).expect("acknowledged");
    rt.block_on(publisher.shutdown(Duration::from_secs(2)));
    assert!(late.wait_for(WAIT, |m| !of_kind(m, "event").is_empty()));
    let events = late.messages();
    let e = of_kind(&events, "event")[0];
    assert_valid(&schema("event.schema.json"), "event", &e["message"]);
    assert_eq!(e["message"]["kind"], "quarantined_file");
    assert_eq!(e["topic"], "ismf/test-box/events");
}

#[test]
fn publishes_carry_content_type_and_user_properties() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("broker"));
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-V",
            "mqttv5",
            "-p",
            &broker.port.to_string(),
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-t",
            "ismf/+/predictions",
            "-C",
            "1",
            "-W",
            "30",
            "-F",
            "%j",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (apt-get install mosquitto-clients)");
    std::thread::sleep(Duration::from_millis(500));
    let config = appliance_config(dir.path(), &broker.url(), "");
    let child = spawn_child(&config, 1, 10);
    let out = {
        use std::io::Read;
        let mut s = String::new();
        sub.stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut s)
            .expect("read");
        s
    };
    child.kill();
    let _ = sub.wait();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("mosquitto_sub json");
    let props = &v["properties"];
    assert_eq!(props["content-type"], "application/json", "{v}");
    let user = props["user-properties"].to_string();
    assert!(
        user.contains("schema_version") && user.contains(&"ab".repeat(32)),
        "{v}"
    );
    assert!(props["message-expiry-interval"].as_u64().is_some(), "{v}");
}

#[test]
fn mutual_tls_accepts_the_right_client_and_refuses_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::make(&dir.path().join("certs"));
    let broker = Broker::start_tls(&dir.path().join("broker"), &certs);
    let studies = dir.path().join("studies");
    run_sim(&sim(&studies, 1, 62));
    let publish = |name: &str, extra: String| {
        let extra = format!("ca_file = \"{}\"\n{extra}", certs.ca.display());
        classify_publish(
            &studies,
            &short_wait_config(&dir.path().join(name), &broker.url(), &extra),
        )
    };
    let good = publish(
        "good",
        format!(
            "client_cert_file = \"{}\"\nclient_key_file = \"{}\"",
            certs.client_cert.display(),
            certs.client_key.display()
        ),
    );
    assert!(
        good.status.success(),
        "with the right client certificate: {}\nbroker log:\n{}",
        String::from_utf8_lossy(&good.stderr),
        broker.log()
    );
    for (name, reason, extra) in [
        ("none", "requires a client certificate", String::new()),
        (
            "rogue",
            "does not trust this appliance's client certificate",
            format!(
                "client_cert_file = \"{}\"\nclient_key_file = \"{}\"",
                certs.rogue_cert.display(),
                certs.rogue_key.display()
            ),
        ),
    ] {
        let out = publish(name, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("refused ({name}): {}", stderr.trim());
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("did not acknowledge")
                && stderr.contains("last connection error")
                && stderr.contains(reason),
            "{name}: {stderr}"
        );
        // The prediction is not lost: it waits in that run's outbox.
        let outbox =
            Outbox::open(&dir.path().join(name).join("state/outbox.redb"), 10).expect("outbox");
        assert_eq!(outbox.len().expect("len"), 1, "{name}");
    }
    // A CA file that is not a certificate is named in the error.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "junk").expect("write");
    let config = short_wait_config(
        &dir.path().join("junkca"),
        &broker.url(),
        &format!("ca_file = \"{}\"", junk.display()),
    );
    let out = classify_publish(&studies, &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("junk.pem") && stderr.contains("CA file"),
        "{stderr}"
    );
}

#[test]
fn username_and_password_file_are_used_and_a_refusal_is_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with_users(&dir.path().join("broker"), &[("appliance", "s3cret")]);
    let studies = dir.path().join("studies");
    run_sim(&sim(&studies, 1, 63));
    let publish = |name: &str, password: &str| {
        let run = dir.path().join(name);
        std::fs::create_dir_all(&run).expect("dir");
        let file = run.join("password");
        // A trailing newline (as editors write it) is not part of the password.
        std::fs::write(&file, format!("{password}\n")).expect("password");
        let extra = format!(
            "username = \"appliance\"\npassword_file = \"{}\"",
            file.display()
        );
        classify_publish(&studies, &short_wait_config(&run, &broker.url(), &extra))
    };
    let good = publish("good", "s3cret");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = publish("bad", "wrong");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused the username or password"),
        "{stderr}"
    );
}

#[test]
fn last_will_says_offline_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("broker"));
    let sub = subscriber(&broker, &["--appliance", "test-box"]);
    let config = appliance_config(dir.path(), &broker.url(), "");
    let child = spawn_child(&config, 1, 10);
    assert!(
        sub.wait_for(WAIT, |m| of_kind(m, "status")
            .iter()
            .any(|s| s["message"]["state"] == "online")),
        "never online: {:?}",
        sub.messages()
    );
    // Heartbeats arrive on the status topic (heartbeat = 1 s in the test configuration).
    assert!(sub.wait_for(WAIT, |m| of_kind(m, "status")
        .iter()
        .any(
            |s| s["message"]["reason"] == "heartbeat" && s["message"]["queues"]["outbox"].is_u64()
        )));
    child.kill();
    // keep_alive = 5 s: the broker notices within 1.5 × keep-alive and publishes the will.
    assert!(
        sub.wait_for(WAIT, |m| of_kind(m, "status")
            .iter()
            .any(|s| s["message"]["state"] == "offline"
                && s["message"]["reason"] == "connection lost (last will)")),
        "no last will: {:?}",
        sub.messages()
    );
    let status = schema("status.schema.json");
    for s in of_kind(&sub.messages(), "status") {
        assert_valid(&status, "status", &s["message"]);
    }
}

#[test]
fn broker_restart_and_kill_9_lose_no_prediction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start(&dir.path().join("broker"));
    // 60 at 60 ms: 3.6 s of stream, well past the restart and the kill below.
    let count = 60;
    let sub_args = ["--persistent", "--client-id", "reading-room-1"];
    let mut sub = subscriber(&broker, &sub_args);
    assert!(sub.wait_for(WAIT, |_| true));
    std::thread::sleep(Duration::from_millis(500));
    let config = appliance_config(dir.path(), &broker.url(), "");
    let child = spawn_child(&config, count, 60);
    // Mid-stream: the broker restarts (the subscriber reconnects to its persistent session)...
    assert!(sub.wait_for(WAIT, |m| of_kind(m, "prediction").len() >= 8));
    broker.restart();
    // ...and then the appliance dies without warning.
    std::thread::sleep(Duration::from_millis(700));
    let submitted: BTreeSet<String> = (0..count)
        .filter(|i| child.printed(&format!("submitted {i}")))
        .map(|i| sample_prediction(i).prediction_id)
        .collect();
    assert!(
        submitted.len() >= 8 && submitted.len() < count,
        "the kill must come mid-stream ({} submitted)",
        submitted.len()
    );
    child.kill();
    // The subscriber goes away too; the appliance restarts and publishes nothing new: what the
    // reading room still lacks can only come from the outbox.
    let mut ids = prediction_ids(&sub.messages());
    drop(sub);
    let child = spawn_child(&config, 0, 5);
    sub = subscriber(&broker, &sub_args);
    let drained = child.wait_printed("drained", WAIT);
    let ok = sub.wait_for(WAIT, |m| {
        let mut all: BTreeSet<String> = prediction_ids(m).into_iter().collect();
        all.extend(ids.iter().cloned());
        submitted.is_subset(&all)
    });
    child.kill();
    ids.extend(prediction_ids(&sub.messages()));
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let missing = submitted
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .count();
    assert!(
        ok && missing == 0,
        "{missing} of {} submitted prediction ids missing after a broker restart and kill -9; broker log:\n{}",
        submitted.len(),
        broker.log()
    );
    assert!(drained, "the restarted publisher never drained its outbox");
    let outbox_path = Config::load(&config).expect("config").outbox_path();
    assert_eq!(
        Outbox::open(&outbox_path, 10)
            .expect("outbox")
            .len()
            .expect("len"),
        0
    );
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "broker restart + kill -9: {} predictions submitted, {} deliveries, {duplicates} duplicate(s) (deduplicable by prediction_id)",
        submitted.len(),
        ids.len()
    );
}

#[test]
fn a_full_outbox_refuses_predictions_keeps_them_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::broker::free_port();
    let config_path = appliance_config(dir.path(), &format!("mqtt://127.0.0.1:{port}"), "");
    let config = Config::load(&config_path).expect("config");
    let rt = runtime();
    let outbox = Arc::new(Outbox::open(&config.outbox_path(), 3).expect("outbox"));
    let publisher =
        Publisher::start(config.publisher(None), outbox, rt.handle()).expect("publisher");
    // No broker yet: the outbox fills.
    for i in 0..3 {
        let p = sample_prediction(i);
        publisher
            .submit_json(MessageKind::Prediction, &p, &p.model.sha256)
            .expect("fits");
    }
    let p = sample_prediction(3);
    let e = publisher
        .submit_json(MessageKind::Prediction, &p, &p.model.sha256)
        .expect_err("full");
    assert!(matches!(e, OutboxError::Full { .. }), "{e}");
    let event = Event::new(EventKind::OutboxFull, "test-box", e.to_string());
    publisher
        .submit_json(MessageKind::Event, &event, "")
        .expect("the event still fits");
    // The broker comes up on that port: everything waiting is delivered.
    let broker = Broker::start_on_port(&dir.path().join("broker"), port);
    rt.block_on(publisher.drain(WAIT))
        .expect("drained once the broker is up");
    let stats = publisher.stats();
    assert_eq!(stats.acknowledged, 4, "{stats:?}");
    assert!(stats.last_error.is_some(), "the outage was recorded");
    rt.block_on(publisher.shutdown(Duration::from_secs(2)));
    drop(broker);
}
