//! `ismf reading-room` as a reading room runs it: real appliance daemons and mosquitto (alone,
//! and bridged site → central over TLS with the committed bridge configuration), the page in
//! headless Chromium driven through ChromeDriver, restarts of the reading room and brokers.

use crate::common::broker::{appliance_config, free_port, subscriber, Broker, Certs};
use crate::common::http::{self, Response};
use crate::common::{daemon, export, ismf, run_sim, sigterm, sim};
use ismf::publish::message::sample_prediction;
use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

/// An `ismf reading-room` process on a free loopback port.
struct ReadingRoom {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

impl ReadingRoom {
    fn start(dir: &Path, broker_url: &str, extra: &[&str]) -> ReadingRoom {
        let port = free_port();
        let mut args: Vec<String> = [
            "reading-room",
            "--broker",
            broker_url,
            "--client-id",
            "rr-test",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--store",
            &dir.join("reading-room.redb").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut rr = ReadingRoom {
            child: None,
            port,
            args,
        };
        rr.run();
        rr
    }

    fn run(&mut self) {
        // The benchmark measures the release binary (ISMF_RR_BINARY); the tests this build's.
        let mut cmd = match std::env::var_os("ISMF_RR_BINARY") {
            Some(binary) => Command::new(binary),
            None => ismf(),
        };
        let child = cmd
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ismf reading-room");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the reading room did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn get(&self, path: &str) -> Response {
        http_get(self.port, path, &[])
    }

    fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body_text());
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Every worklist row, newest first.
    fn rows(&self) -> Vec<Value> {
        self.json("/api/predictions?limit=1000")["predictions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn appliance(&self, id: &str) -> Option<Value> {
        self.json("/api/appliances")["appliances"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["appliance_id"] == id).cloned())
    }

    /// Waits until `done` holds, failing with `what` (and the worklist) otherwise.
    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&ReadingRoom) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; rows {:?}; appliances {}",
                self.rows()
                    .iter()
                    .map(|r| r["prediction"]["study_instance_uid"].clone())
                    .collect::<Vec<_>>(),
                self.json("/api/appliances")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ReadingRoom {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    http_get_host(port, path, &format!("127.0.0.1:{port}"), headers)
}

fn http_get_host(port: u16, path: &str, host: &str, headers: &[(&str, &str)]) -> Response {
    http::request(port, "GET", path, host, headers, b"").expect("GET")
}

/// The live stream as a page sees it: each event's name, data and arrival time.
struct Stream {
    events: Arc<Mutex<Vec<(Instant, String, Value)>>>,
}

impl Stream {
    fn open(port: u16) -> Stream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let req = format!("GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        s.write_all(req.as_bytes()).expect("request");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(s);
            let _ = http::read_head(&mut reader);
            let _ = ready_tx.send(());
            let mut pending = String::new();
            http::read_chunks(&mut reader, |chunk| {
                pending += &String::from_utf8_lossy(chunk);
                while let Some(end) = pending.find("\n\n") {
                    let block: String = pending.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(|v| v.trim().to_string())
                    };
                    if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                        let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                        sink.lock()
                            .expect("events")
                            .push((Instant::now(), event, data));
                    }
                }
                true
            });
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("stream opened");
        Stream { events }
    }

    /// When the prediction of `study` first arrived on the stream.
    fn prediction_arrival(&self, study: &str, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .events
                .lock()
                .expect("events")
                .iter()
                .find_map(|(t, e, d)| {
                    (e == "prediction" && d["prediction"]["study_instance_uid"] == study)
                        .then_some(*t)
                });
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `mosquitto_pub` at QoS 1: it returns once the broker has acknowledged (PUBACK).
fn publish(port: u16, topic: &str, payload: &[u8], retain: bool) -> Instant {
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), payload).expect("payload");
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-q", "1", "-t", topic, "-f"])
        .arg(file.path());
    if retain {
        cmd.arg("-r");
    }
    let out = cmd
        .output()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Instant::now()
}

/// A stand-in prediction of study `2.25.<i>` from `appliance`, top class cycling through the
/// five (never a model output: the page's tests need varied rows, not a model).
fn stand_in(i: usize, appliance: &str) -> Value {
    let mut p = serde_json::to_value(sample_prediction(i)).expect("json");
    let mut probs = [0.04, 0.06, 0.1, 0.12, 0.08];
    probs[i % 5] = 0.6;
    for (c, v) in ismf::model::CLASSES.iter().zip(probs) {
        p["probabilities"][*c] = json!(v);
    }
    p["top_class"] = ismf::model::CLASSES[i % 5].into();
    p["margin"] = json!(0.48);
    p["appliance_id"] = appliance.into();
    p["created_at"] = ismf::publish::message::utc_now().into();
    p
}

/// An appliance's status message (as the publisher makes it; `offline` as its last will).
fn status(id: &str, state: &str) -> Value {
    let mut status = json!({
        "schema_version": 2, "appliance_id": id, "state": state,
        "reason": if state == "online" { "heartbeat" } else { "connection lost (last will)" },
        "software_version": env!("CARGO_PKG_VERSION"),
        "created_at": ismf::publish::message::utc_now(),
    });
    if state == "online" {
        status["queues"] = json!({"outbox": 0, "studies_waiting": 0});
        status["uptime_s"] = json!(3600);
        status["recent_studies"] = json!({"studies": 12,
            "last_file_to_puback_ms": {"p50": 3400.0, "p95": 4100.0},
            "inference_ms": {"p50": 90.0, "p95": 120.0}});
    }
    status
}

/// An appliance daemon of the fleet: its own id, folders and configuration.
struct Appliance {
    id: String,
    dir: PathBuf,
    child: Child,
}

impl Appliance {
    fn start(root: &Path, id: &str, broker: &str) -> Appliance {
        let dir = root.join(id);
        std::fs::create_dir_all(dir.join("incoming")).expect("dir");
        let config = appliance_config(&dir, broker, "");
        let text = std::fs::read_to_string(&config).expect("config");
        std::fs::write(
            &config,
            text.replace("id = \"test-box\"", &format!("id = \"{id}\"")),
        )
        .expect("config");
        Appliance {
            id: id.to_string(),
            child: daemon(&config),
            dir,
        }
    }

    /// The scanner sends a study: copied into a temporary folder, then moved into place.
    fn export(&self, study_dir: &Path) {
        let name = study_dir.file_name().expect("name");
        let staging = self.dir.join("staging").join(name);
        std::fs::create_dir_all(&staging).expect("staging");
        export(study_dir, &staging, |_| false);
        std::fs::rename(&staging, self.dir.join("incoming").join(name)).expect("move");
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = sigterm(&mut self.child);
        }
    }
}

/// The simulated studies of `dir` (series-dirs layout), by folder, with their truth.
fn studies(dir: &Path, n: usize, seed: u64) -> Vec<(PathBuf, String)> {
    let mut opts = sim(dir, n, seed);
    opts.layout = ismf::simulate::Layout::SeriesDirs;
    let truth = run_sim(&opts);
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    assert_eq!(folders.len(), n, "one folder per study");
    folders
        .into_iter()
        .zip(truth)
        .map(|(f, t)| {
            (
                f,
                t["study_instance_uid"].as_str().expect("uid").to_string(),
            )
        })
        .collect()
}

fn study_uids(rows: &[Value]) -> Vec<String> {
    let mut uids: Vec<String> = rows
        .iter()
        .map(|r| {
            r["prediction"]["study_instance_uid"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    uids.sort();
    uids
}

#[test]
fn a_fleet_of_appliances_live_offline_by_last_will_and_a_reading_room_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(&tmp.path().join("broker"));
    let all = studies(&tmp.path().join("sim"), 4, 31);
    let mut rr = ReadingRoom::start(tmp.path(), &broker.url(), &[]);
    let stream = Stream::open(rr.port);
    // An MQTT subscriber beside the page: when it gets a prediction, the broker has
    // acknowledged it to the appliance.
    let watcher = subscriber(&broker, &[]);
    let fleet: Vec<Appliance> = ["scanner-a", "scanner-b", "scanner-c"]
        .iter()
        .map(|id| Appliance::start(tmp.path(), id, &broker.url()))
        .collect();
    rr.wait_for("three appliances online", WAIT, |rr| {
        fleet
            .iter()
            .all(|a| rr.appliance(&a.id).is_some_and(|x| x["online"] == true))
    });
    for (a, (folder, _)) in fleet.iter().zip(&all) {
        a.export(folder);
    }
    rr.wait_for("one row per study", WAIT, |rr| rr.rows().len() == 3);
    let rows = rr.rows();
    let mut expected: Vec<String> = all[..3].iter().map(|(_, u)| u.clone()).collect();
    expected.sort();
    assert_eq!(study_uids(&rows), expected);
    for (a, (_, uid)) in fleet.iter().zip(&all) {
        let row = rows
            .iter()
            .find(|r| r["prediction"]["study_instance_uid"] == uid.as_str())
            .expect("row");
        assert_eq!(row["prediction"]["appliance_id"], a.id.as_str());
    }
    // Each prediction reached the open page live (the stream), not only the store.
    for (_, uid) in &all[..3] {
        assert!(
            stream.prediction_arrival(uid, WAIT).is_some(),
            "{uid} on the stream"
        );
    }
    let appliances = rr.json("/api/appliances");
    for a in &fleet {
        let view = rr.appliance(&a.id).expect("listed");
        assert!(view["outbox"].is_u64(), "outbox depth shown: {view}");
        assert_eq!(view["stale"], false);
    }
    assert_eq!(appliances["broker"]["connected"], true);

    // kill -9 of one appliance: the broker publishes its last will.
    let mut fleet = fleet;
    let mut killed = fleet.remove(0);
    killed.child.kill().expect("kill -9");
    let _ = killed.child.wait();
    rr.wait_for("the killed appliance offline", WAIT, |rr| {
        rr.appliance("scanner-a")
            .is_some_and(|x| x["online"] == false)
    });
    let reason = rr.appliance("scanner-a").expect("listed")["reason"].clone();
    assert!(
        reason.as_str().is_some_and(|r| r.contains("last will")),
        "{reason}"
    );
    assert!(fleet
        .iter()
        .all(|a| rr.appliance(&a.id).expect("listed")["online"] == true));

    // The reading room goes down; a study is predicted meanwhile; it comes back.
    rr.kill();
    let (folder, late_uid) = &all[3];
    fleet[0].export(folder);
    assert!(
        watcher.wait_for(WAIT, |m| m.iter().any(|x| x["kind"] == "prediction"
            && x["message"]["study_instance_uid"] == late_uid.as_str())),
        "the late study was published"
    );
    rr.run();
    rr.wait_for("history kept and the late study caught up", WAIT, |rr| {
        rr.rows().len() == 4
    });
    let mut expected: Vec<String> = all.iter().map(|(_, u)| u.clone()).collect();
    expected.sort();
    assert_eq!(study_uids(&rr.rows()), expected);
    assert_eq!(rr.appliance("scanner-a").expect("kept")["online"], false);
    drop(killed);
}

/// A new prediction on the page within 1 s of the broker's PUBACK, on the live stream.
#[test]
fn a_prediction_reaches_the_open_page_within_a_second_of_its_puback() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(&tmp.path().join("broker"));
    let rr = ReadingRoom::start(tmp.path(), &broker.url(), &[]);
    let stream = Stream::open(rr.port);
    // Subscribed once the retained status of the appliance is shown.
    publish(
        broker.port,
        "ismf/scanner-a/status",
        status("scanner-a", "online").to_string().as_bytes(),
        true,
    );
    rr.wait_for("subscribed", WAIT, |rr| rr.appliance("scanner-a").is_some());
    publish(broker.port, "ismf/probe/events", b"{}", false);
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let p = stand_in(100 + i, "scanner-a");
        let puback = publish(
            broker.port,
            "ismf/scanner-a/predictions",
            &serde_json::to_vec(&p).expect("json"),
            false,
        );
        let uid = p["study_instance_uid"].as_str().expect("uid");
        let seen = stream
            .prediction_arrival(uid, Duration::from_secs(5))
            .expect("on the stream");
        worst = worst.max(seen.saturating_duration_since(puback));
    }
    eprintln!("PUBACK → live stream, slowest of 5: {worst:?}");
    assert!(worst <= Duration::from_secs(1), "slowest: {worst:?}");
    // The probe (not an event) was refused as invalid and counted, not shown.
    let events = rr.json("/api/events");
    assert!(
        events["invalid"]["total"].as_u64().unwrap_or(0) >= 1,
        "{events}"
    );
    assert_eq!(rr.rows().len(), 5);
}

#[test]
fn bridged_site_and_central_brokers_lose_nothing_while_the_central_one_is_down() {
    use ismf::config::Config;
    use ismf::publish::mqtt::Publisher;
    use ismf::publish::outbox::MessageKind;
    let tmp = tempfile::tempdir().expect("tmp");
    let certs = Certs::make(&tmp.path().join("certs"));
    let mut central = Broker::start_tls(&tmp.path().join("central"), &certs);
    // The site broker: a plain listener for its appliances plus the committed bridge file,
    // pointed at the test's central broker and certificates.
    let bridge = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/mosquitto/bridge.conf"),
    )
    .expect("bridge.conf")
    .replace(
        "central.example.org:8883",
        &format!("localhost:{}", central.port),
    )
    .replace(
        "/etc/mosquitto/ca_certificates/central-ca.pem",
        &certs.ca.display().to_string(),
    )
    .replace(
        "/etc/mosquitto/certs/bridge-site-a.pem",
        &certs.client_cert.display().to_string(),
    )
    .replace(
        "/etc/mosquitto/certs/bridge-site-a.key",
        &certs.client_key.display().to_string(),
    );
    let site = Broker::start_with_extra(&tmp.path().join("site"), &bridge);
    let rr = ReadingRoom::start(
        tmp.path(),
        &central.url(),
        &[
            "--ca-file",
            &certs.ca.display().to_string(),
            "--cert-file",
            &certs.client_cert.display().to_string(),
            "--key-file",
            &certs.client_key.display().to_string(),
        ],
    );
    // The appliance's own publisher (outbox, MQTT 5, status and last will) on the site broker.
    let dir = tmp.path().join("appliance");
    std::fs::create_dir_all(&dir).expect("dir");
    let config = appliance_config(&dir, &site.url(), "");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("id = \"test-box\"", "id = \"sample-box\""),
    )
    .expect("cfg");
    let config = Config::load(&config).expect("config");
    let edge = ismf::publish::edge_runtime().expect("runtime");
    let publisher = Publisher::open(config.publisher(None), edge.handle()).expect("publisher");
    rr.wait_for("the appliance online through the bridge", WAIT, |rr| {
        rr.appliance("sample-box")
            .is_some_and(|x| x["online"] == true)
    });
    let n = 30;
    for i in 0..n {
        if i == 10 {
            rr.wait_for("the first ten through", WAIT, |rr| rr.rows().len() == 10);
            central.stop();
        }
        if i == 20 {
            // The central broker was down for 5 s while the appliance went on publishing.
            std::thread::sleep(Duration::from_secs(5));
            central.start_again();
        }
        let p = sample_prediction(i);
        publisher
            .submit_json(MessageKind::Prediction, &p, &p.model.sha256)
            .expect("submit");
        std::thread::sleep(Duration::from_millis(50));
    }
    edge.block_on(publisher.drain(WAIT))
        .expect("the site broker has them all");
    rr.wait_for("every prediction on the page", WAIT, |rr| {
        rr.rows().len() == n
    });
    let mut want: Vec<String> = (0..n).map(|i| format!("2.25.{i}")).collect();
    want.sort();
    assert_eq!(study_uids(&rr.rows()), want);
    assert!(site.log().contains("site-a-to-central"), "the bridge ran");
    edge.block_on(publisher.shutdown(Duration::from_secs(2)));
}

#[test]
fn listening_beyond_loopback_needs_a_token_and_every_response_has_the_csp() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Refused without a token (a usage error, exit 2), before anything listens.
    let out = ismf()
        .args([
            "reading-room",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--client-id",
            "x",
        ])
        .args(["--listen", "0.0.0.0:0", "--store"])
        .arg(tmp.path().join("a.redb"))
        .output()
        .expect("ismf");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "short\n").expect("token");
    let out = ismf()
        .args([
            "reading-room",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--client-id",
            "x",
        ])
        .args(["--listen", "0.0.0.0:0", "--token-file"])
        .arg(&token_file)
        .output()
        .expect("ismf");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));

    // Without a token, loopback only: a request for another host name is refused.
    let rr = ReadingRoom::start(tmp.path(), "mqtt://127.0.0.1:1", &[]);
    let page = rr.get("/");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("CSP");
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));
    assert!(page.body_text().contains("NOT FOR DIAGNOSTIC USE"));
    let rebound = http_get_host(rr.port, "/api/predictions", "evil.example", &[]);
    assert_eq!(rebound.status, 403);
    // Another site's page asking for the API (the browser marks it) is not answered either.
    let embedded = http_get(
        rr.port,
        "/api/predictions",
        &[("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(embedded.status, 403);
    assert_eq!(
        page.header("cross-origin-resource-policy").as_deref(),
        Some("same-origin")
    );
    drop(rr);

    // With a token: nothing without it, the cookie /?token= sets, or the bearer header.
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(&token_file, format!("{token}\n")).expect("token");
    let rr = ReadingRoom::start(
        &tmp.path().join("b"),
        "mqtt://127.0.0.1:1",
        &["--token-file", &token_file.display().to_string()],
    );
    let denied = rr.get("/api/predictions");
    assert_eq!(denied.status, 401);
    assert!(denied.header("content-security-policy").is_some());
    assert_eq!(
        http_get(rr.port, "/?token=wrong-token-0000000000", &[]).status,
        401
    );
    let login = http_get(rr.port, &format!("/?token={token}"), &[]);
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").expect("cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let pair = cookie.split(';').next().expect("pair").to_string();
    assert_eq!(
        http_get(rr.port, "/api/appliances", &[("Cookie", &pair)]).status,
        200
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        http_get(rr.port, "/api/events", &[("Authorization", &bearer)]).status,
        200
    );
}

/// ChromeDriver on a free port, and a WebDriver session of headless Chromium.
struct Browser {
    driver: Child,
    client: fantoccini::Client,
}

impl Browser {
    async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = driver.kill();
                panic!("chromedriver did not listen");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            }),
        );
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session of chromium");
        Browser { driver, client }
    }

    /// A browser showing the reading room's page on `port`.
    async fn open(port: u16) -> Browser {
        let browser = Browser::start(1400, 900).await;
        browser
            .client
            .goto(&format!("http://127.0.0.1:{port}/"))
            .await
            .expect("page");
        browser
    }

    async fn count(&self, css: &str) -> usize {
        use fantoccini::Locator;
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// Waits until `css` matches `n` elements; the time it took.
    async fn wait_count(&self, css: &str, n: usize, timeout: Duration) -> Duration {
        let t = Instant::now();
        loop {
            let got = self.count(css).await;
            if got == n {
                return t.elapsed();
            }
            assert!(t.elapsed() < timeout, "{css}: {got} elements, not {n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Chooses `value` in the `<select>` with id `select`, as a user clicks its option.
    async fn choose(&self, select: &str, value: &str) {
        use fantoccini::Locator;
        let css = format!("#{select} option[value='{value}']");
        let option = self.client.find(Locator::Css(&css)).await.expect("option");
        option.click().await.expect("choose");
    }

    async fn close(self) {
        let _ = self.client.close().await;
        let mut driver = self.driver;
        let _ = driver.kill();
        let _ = driver.wait();
    }
}

/// One key pressed and released, sent to whatever has the focus.
async fn press(c: &fantoccini::Client, key: char) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let actions = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    c.perform_actions(actions).await.expect("key press");
}

/// Publishes a small key-image montage and the prediction that refers to it.
fn publish_with_key_image(port: u16, p: &mut Value) {
    let png = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/key-images.png"))
        .expect("docs/key-images.png");
    let appliance = p["appliance_id"].as_str().expect("id").to_string();
    let topic = format!("ismf/{appliance}/key-images");
    let reference = ismf::publish::message::KeyImagesRef::of(&png, &topic);
    p["key_images"] = serde_json::to_value(reference).expect("json");
    publish(
        port,
        &format!("ismf/{appliance}/predictions"),
        p.to_string().as_bytes(),
        false,
    );
    publish(port, &topic, &png, false);
}

#[test]
fn headless_chromium_shows_the_worklist_live_and_untrusted_text_as_text() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(&tmp.path().join("broker"));
    let rr = ReadingRoom::start(tmp.path(), &broker.url(), &[]);
    // Three appliances' retained statuses: two online, one gone (its last will).
    for (id, state) in [
        ("scanner-a", "online"),
        ("scanner-b", "online"),
        ("scanner-c", "offline"),
    ] {
        publish(
            broker.port,
            &format!("ismf/{id}/status"),
            status(id, state).to_string().as_bytes(),
            true,
        );
    }
    rr.wait_for("subscribed", WAIT, |rr| rr.appliance("scanner-c").is_some());
    for i in 0..4 {
        let mut p = stand_in(i, ["scanner-a", "scanner-b"][i % 2]);
        if i % 2 == 0 {
            publish_with_key_image(broker.port, &mut p);
        } else {
            publish(
                broker.port,
                "ismf/scanner-b/predictions",
                p.to_string().as_bytes(),
                false,
            );
        }
    }
    // Hostile text from the network: an appliance id with an onerror attribute, a series
    // description with a script, and a message that fails its schema.
    let hostile_id = "<img src=x onerror=document.title='pwned'>";
    let mut p = stand_in(7, hostile_id);
    p["series"][0]["series_description"] = "<script>document.title='pwned'</script>".into();
    publish(
        broker.port,
        &format!("ismf/{hostile_id}/predictions"),
        p.to_string().as_bytes(),
        false,
    );
    publish(
        broker.port,
        "ismf/scanner-b/predictions",
        b"<b>not json</b>",
        false,
    );
    rr.wait_for("five rows stored", WAIT, |rr| rr.rows().len() == 5);

    let rt = current_thread();
    rt.block_on(async {
        use fantoccini::Locator;
        let browser = Browser::open(rr.port).await;
        let c = &browser.client;
        browser
            .wait_count("#rows tr", 5, Duration::from_secs(20))
            .await;
        browser
            .wait_count("#appliances li", 3, Duration::from_secs(20))
            .await;
        // Untrusted text is text: no element was made of it and no script ran.
        assert_eq!(browser.count("#rows img[src='x']").await, 0);
        assert_eq!(browser.count("#rows script").await, 0);
        let body = c
            .find(Locator::Css("#rows"))
            .await
            .expect("rows")
            .text()
            .await
            .expect("text");
        assert!(body.contains(hostile_id), "the appliance id shown as text");
        assert!(body.contains("<script>document.title='pwned'</script>"));
        assert!(!c.title().await.expect("title").contains("pwned"));
        let refused = c
            .find(Locator::Id("invalid"))
            .await
            .expect("invalid")
            .text()
            .await
            .expect("t");
        assert!(refused.contains("1 message refused"), "{refused}");
        let offline = c
            .find(Locator::Css("#appliances li[data-state='offline']"))
            .await
            .expect("offline card")
            .text()
            .await
            .expect("text");
        assert!(
            offline.contains("offline") && offline.contains("scanner-c"),
            "{offline}"
        );
        assert!(c
            .source()
            .await
            .expect("source")
            .contains("NOT FOR DIAGNOSTIC USE"));
        assert_eq!(
            browser.count("#rows .thumb img").await,
            2,
            "two key-image thumbnails"
        );

        // A prediction published now appears without reload, within 1 s of its PUBACK.
        let p = stand_in(9, "scanner-a");
        let puback = publish(
            broker.port,
            "ismf/scanner-a/predictions",
            p.to_string().as_bytes(),
            false,
        );
        browser
            .wait_count("#rows tr", 6, Duration::from_secs(5))
            .await;
        let latency = puback.elapsed();
        assert!(
            latency <= Duration::from_secs(1),
            "on the page {latency:?} after PUBACK"
        );
        let first = c
            .find(Locator::Css("#rows tr"))
            .await
            .expect("row")
            .text()
            .await
            .expect("t");
        assert!(first.contains("2.25.9"), "newest first: {first}");

        // Keyboard: j moves down the rows (9, 7, 3, 2 …), Enter on a row with key images
        // opens the montage, Esc closes it.
        let focused = || async {
            c.active_element()
                .await
                .expect("active")
                .text()
                .await
                .unwrap_or_default()
        };
        press(c, 'j').await;
        assert!(
            focused().await.contains("2.25.9"),
            "j focuses the newest row"
        );
        for _ in 0..3 {
            press(c, 'j').await;
        }
        assert!(
            focused().await.contains("2.25.2"),
            "three rows further down"
        );
        press(c, '\u{E007}').await;
        let open = || async {
            c.execute("return document.getElementById('montage').open", vec![])
                .await
                .expect("js")
        };
        assert_eq!(open().await, json!(true), "Enter opened the key images");
        let montage = c
            .find(Locator::Id("montage-title"))
            .await
            .expect("title")
            .text()
            .await;
        assert!(montage.expect("text").contains("2.25.2"));
        press(c, '\u{E00C}').await;
        assert_eq!(open().await, json!(false), "Esc closed them");

        // Filters: by class.
        browser.choose("f-class", "MNG").await;
        browser
            .wait_count("#rows tr", 1, Duration::from_secs(5))
            .await;
        browser.choose("f-class", "").await;
        browser
            .wait_count("#rows tr", 6, Duration::from_secs(5))
            .await;

        let png = c.screenshot().await.expect("screenshot");
        let out = std::env::var_os("ISMF_SCREENSHOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| tmp.path().join("reading-room.png"));
        std::fs::write(&out, &png).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"));
        browser.close().await;
    });
}

/// `bash benches/reading_room.sh`: a burst of 1000 predictions into a reading room whose page
/// is open in headless Chromium. Prints the figures as JSON.
#[test]
#[ignore = "a benchmark (benches/reading_room.sh)"]
fn burst_benchmark() {
    let n: usize = std::env::var("ISMF_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(&tmp.path().join("broker"));
    let rr = ReadingRoom::start(tmp.path(), &broker.url(), &[]);
    let idle_rss = rss_kib(rr.pid()).0;
    let rt = current_thread();
    rt.block_on(async {
        let browser = Browser::open(rr.port).await;
        let c = &browser.client;
        browser
            .wait_count("#rows tr", 0, Duration::from_secs(20))
            .await;
        // All n at QoS 1 from one mosquitto_pub, one message per line.
        let lines: String = (0..n)
            .map(|i| {
                stand_in(1000 + i, ["scanner-a", "scanner-b", "scanner-c"][i % 3]).to_string()
                    + "\n"
            })
            .collect();
        // Three appliances' worth, each under its own topic, all at once.
        let t = Instant::now();
        let mut children = Vec::new();
        for (k, id) in ["scanner-a", "scanner-b", "scanner-c"].iter().enumerate() {
            let mut child = Command::new("mosquitto_pub")
                .args([
                    "-V",
                    "mqttv5",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &broker.port.to_string(),
                ])
                .args(["-q", "1", "-t", &format!("ismf/{id}/predictions"), "-l"])
                .stdin(Stdio::piped())
                .spawn()
                .expect("mosquitto_pub");
            let mine: String = lines
                .lines()
                .skip(k)
                .step_by(3)
                .map(|l| l.to_string() + "\n")
                .collect();
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(mine.as_bytes())
                .expect("write");
            children.push(child);
        }
        for mut c in children {
            assert!(c.wait().expect("wait").success());
        }
        let published = t.elapsed();
        browser
            .wait_count("#rows tr", n, Duration::from_secs(600))
            .await;
        let all_live = t.elapsed();
        // A fresh load of the worklist (its first page of 200 rows).
        let t = Instant::now();
        c.refresh().await.expect("reload");
        browser
            .wait_count("#rows tr", 200.min(n), Duration::from_secs(60))
            .await;
        let render = t.elapsed();
        // Responsive with the rows there: a filter (by class: a fifth of the rows, first page).
        let t = Instant::now();
        browser.choose("f-class", "MNG").await;
        browser
            .wait_count("#rows tr", 200.min(n / 5), Duration::from_secs(60))
            .await;
        let filter = t.elapsed();
        let (rss, peak) = rss_kib(rr.pid());
        println!(
            "{}",
            json!({
                "predictions": n,
                "published_s": published.as_secs_f64(),
                "all_on_open_page_s": all_live.as_secs_f64(),
                "fresh_render_200_rows_ms": render.as_secs_f64() * 1e3,
                "filter_by_class_ms": filter.as_secs_f64() * 1e3,
                "rss_idle_mib": idle_rss as f64 / 1024.0,
                "rss_after_mib": rss as f64 / 1024.0,
                "rss_peak_mib": peak as f64 / 1024.0,
            })
        );
        assert_eq!(rr.rows().len(), n);
        browser.close().await;
    });
}

/// A runtime for the async clients of a test (WebDriver, TLS).
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// (VmRSS, VmHWM) of a process, KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A GET over TLS, trusting `ca`; the status line and headers.
fn https_head(port: u16, ca: &Path, path: &str, headers: &[(&str, &str)]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ismf::tls::client_config(ca, None).expect("client config");
    let rt = current_thread();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name =
            tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req += &format!("{k}: {v}\r\n");
        }
        tls.write_all((req + "\r\n").as_bytes())
            .await
            .expect("request");
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        text.split("\r\n\r\n").next().unwrap_or("").to_string()
    })
}

#[test]
fn the_page_is_served_over_https_with_the_token() {
    let tmp = tempfile::tempdir().expect("tmp");
    let certs = Certs::make(&tmp.path().join("certs"));
    let token = "fedcba9876543210fedcba9876543210";
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, token).expect("token");
    let rr = ReadingRoom::start(
        tmp.path(),
        "mqtt://127.0.0.1:1",
        &[
            "--token-file",
            &token_file.display().to_string(),
            "--tls-cert",
            &certs.server_cert.display().to_string(),
            "--tls-key",
            &certs.server_key.display().to_string(),
        ],
    );
    let bearer = format!("Bearer {token}");
    let ok = https_head(
        rr.port,
        &certs.ca,
        "/api/appliances",
        &[("Authorization", &bearer)],
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        ok.to_lowercase().contains("content-security-policy"),
        "{ok}"
    );
    let denied = https_head(rr.port, &certs.ca, "/api/appliances", &[]);
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let login = https_head(rr.port, &certs.ca, &format!("/?token={token}"), &[]);
    assert!(
        login.starts_with("HTTP/1.1 303") && login.contains("; Secure"),
        "{login}"
    );
    // Plain HTTP on the HTTPS port gets no page.
    let plain = std::panic::catch_unwind(|| http_get(rr.port, "/", &[]).status);
    assert!(!matches!(plain, Ok(200)), "plain HTTP answered");
}
