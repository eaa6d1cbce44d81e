//! A real mosquitto broker on a free loopback port (plain or mutual TLS, with on-disk
//! persistence so that a restart keeps persistent sessions), TLS certificates made with the
//! openssl tool, and an `ismf subscribe --json` child that collects what it receives.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn mosquitto_binary() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("mosquitto")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Certificates for a mutual-TLS broker: a CA, the broker's certificate for localhost, a client
/// certificate from the same CA, and one from a rogue CA the broker does not trust.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    pub fn make(dir: &Path) -> Certs {
        std::fs::create_dir_all(dir).expect("cert dir");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, cn) in [("ca", "ISMF Test CA"), ("rogue-ca", "Rogue CA")] {
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            let (key, pem, subj) = (
                format!("{name}.key"),
                format!("{name}.pem"),
                format!("/CN={cn}"),
            );
            args.extend([
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
            openssl(dir, &args);
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
        for (name, ca, ext, cn) in [
            ("server", "ca", "server.ext", "localhost"),
            ("client", "ca", "client.ext", "ismf-appliance"),
            ("rogue", "rogue-ca", "client.ext", "ismf-appliance"),
        ] {
            let (key, csr, pem, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("/CN={cn}"),
            );
            let mut args = vec!["req"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(dir, &args);
            let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_pem,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-extfile",
                    ext,
                ],
            );
        }
        Certs {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            rogue_cert: dir.join("rogue.pem"),
            rogue_key: dir.join("rogue.key"),
        }
    }
}

/// A mosquitto process; killed when dropped.
pub struct Broker {
    pub port: u16,
    pub tls: bool,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        Broker::start_with(dir, None)
    }

    pub fn start_tls(dir: &Path, certs: &Certs) -> Broker {
        Broker::start_with(dir, Some(certs))
    }

    /// A plain broker on a port chosen earlier (a client may already be trying it).
    pub fn start_on_port(dir: &Path, port: u16) -> Broker {
        Broker::start_with_port(dir, None, port, "allow_anonymous true\n")
    }

    /// A plain broker that admits only these users (mosquitto_passwd file).
    pub fn start_with_users(dir: &Path, users: &[(&str, &str)]) -> Broker {
        std::fs::create_dir_all(dir).expect("broker dir");
        let file = dir.join("passwords");
        std::fs::write(&file, "").expect("password file");
        for (user, password) in users {
            let out = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(&file)
                .args([user, password])
                .output()
                .expect("mosquitto_passwd (apt-get install mosquitto)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let auth = format!("allow_anonymous false\npassword_file {}\n", file.display());
        Broker::start_with_port(dir, None, free_port(), &auth)
    }

    /// A plain broker with more configuration lines (e.g. a bridge).
    #[cfg_attr(
        not(all(feature = "reading-room", target_arch = "x86_64")),
        allow(dead_code)
    )]
    pub fn start_with_extra(dir: &Path, extra: &str) -> Broker {
        Broker::start_with_port_and(dir, None, free_port(), "allow_anonymous true\n", extra)
    }

    fn start_with(dir: &Path, certs: Option<&Certs>) -> Broker {
        Broker::start_with_port(dir, certs, free_port(), "allow_anonymous true\n")
    }

    fn start_with_port(dir: &Path, certs: Option<&Certs>, port: u16, auth: &str) -> Broker {
        Broker::start_with_port_and(dir, certs, port, auth, "")
    }

    /// `tail` goes last (a bridge's `connection` section takes the options after it).
    fn start_with_port_and(
        dir: &Path,
        certs: Option<&Certs>,
        port: u16,
        auth: &str,
        tail: &str,
    ) -> Broker {
        std::fs::create_dir_all(dir).expect("broker dir");
        let mut conf = format!(
            "listener {port} 127.0.0.1\n{auth}persistence true\n\
             persistence_location {}/\nautosave_interval 1\nuser root\n\
             log_dest file {}/mosquitto.log\nlog_type all\nmax_queued_messages 10000\n",
            dir.display(),
            dir.display()
        );
        if let Some(c) = certs {
            conf += &format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                c.ca.display(),
                c.server_cert.display(),
                c.server_key.display()
            );
        }
        conf += tail;
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("conf");
        let mut b = Broker {
            port,
            tls: certs.is_some(),
            dir: dir.to_path_buf(),
            child: None,
        };
        b.run();
        b
    }

    fn run(&mut self) {
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (apt-get install mosquitto)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        let host = if self.tls { "localhost" } else { "127.0.0.1" };
        format!("{scheme}://{host}:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// SIGTERM (mosquitto saves its persistence file) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Start again after [`Broker::stop`], on the same port with the same persistence.
    #[cfg_attr(
        not(all(feature = "reading-room", target_arch = "x86_64")),
        allow(dead_code)
    )]
    pub fn start_again(&mut self) {
        self.run();
    }

    /// Stop, then start again on the same port with the same persistence.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ismf subscribe --json` as a child; every line it prints is kept.
pub struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

/// Keeps every line a child prints on `stdout`, read on a thread of its own.
pub fn collect_lines(stdout: std::process::ChildStdout) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

impl Subscriber {
    pub fn start(mut cmd: Command) -> Subscriber {
        let mut child = cmd
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ismf subscribe");
        let lines = collect_lines(child.stdout.take().expect("stdout"));
        Subscriber { child, lines }
    }

    /// The JSON lines received so far.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `done` holds for the messages so far; false on timeout.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[serde_json::Value]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.messages()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ismf subscribe --json` on `broker` for the test appliance, plus `extra` arguments.
pub fn subscriber(broker: &Broker, extra: &[&str]) -> Subscriber {
    let mut cmd = super::ismf();
    cmd.args(["subscribe", "--broker", &broker.url()])
        .args(extra);
    Subscriber::start(cmd)
}

/// Messages of one kind (`status`, `prediction`, `event`).
pub fn of_kind<'a>(messages: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    messages.iter().filter(|m| m["kind"] == kind).collect()
}

/// A configuration file for an appliance publishing to `url`.
pub fn appliance_config(dir: &Path, url: &str, extra_mqtt: &str) -> PathBuf {
    appliance_config_with(dir, url, extra_mqtt, "explain = false")
}

/// [`appliance_config`] with the given `[results]` keys (explanations cost ~350 model runs a
/// study: on for the tests about results, off elsewhere — under QEMU they would take minutes).
pub fn appliance_config_with(dir: &Path, url: &str, extra_mqtt: &str, results: &str) -> PathBuf {
    let path = dir.join("appliance.toml");
    let card = super::model_card();
    std::fs::write(
        &path,
        format!(
            r#"[appliance]
id = "test-box"

[ingest]
watch_dir = "{d}/incoming"
state_dir = "{d}/state"
quarantine_dir = "{d}/quarantine"
stable_seconds = 2.0
force_after_seconds = 10.0
poll_only = false
rescan_seconds = 5.0

[mqtt]
url = "{url}"
topic_prefix = "ismf"
keep_alive = 5
message_expiry = 3600
session_expiry = 3600
heartbeat = 1
phi = "uids"
outbox_capacity = 1000
ack_timeout = 20
{extra_mqtt}

[model]
card = "{card}"
precision = "f32"
threads = 1

[results]
{results}
"#,
            d = dir.display(),
            card = card.display()
        ),
    )
    .expect("config");
    path
}
