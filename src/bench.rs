//! `ismf bench`: measurements that BENCHMARKS.md reports, run from the release binary so the
//! numbers are the product's, not a test harness's.

use crate::ingest::{self, catalog, IngestError};
use crate::inspect;
use crate::pixels::DEFAULT_MAX_VOXELS;
use crate::preprocess::{study_inputs, PreprocessError, PreprocessParams};
use crate::series::Rules;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("{0}: no complete study to measure")]
    NoStudy(PathBuf),
    #[error(transparent)]
    Dataset(#[from] crate::dataset::DatasetError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Mqtt(#[from] crate::publish::mqtt::MqttError),
    #[error(transparent)]
    Outbox(#[from] crate::publish::outbox::OutboxError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// `ismf bench mqtt`: what publishing costs on top of inference.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MqttBench {
    pub broker: String,
    pub payload_bytes: usize,
    /// Messages sent one at a time (each after the previous PUBACK): submit → PUBACK.
    pub latency_messages: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// Messages submitted back to back, until the outbox is empty again.
    pub throughput_messages: usize,
    pub throughput_per_second: f64,
    /// The outbox alone (durable commit of a prediction, no network).
    pub outbox_pushes_per_second: f64,
}

/// Publishes stand-in predictions through a fresh outbox in `dir` to the broker at `url`.
pub fn mqtt_publish(
    url: &crate::publish::url::BrokerUrl,
    latency_messages: usize,
    throughput_messages: usize,
    dir: &Path,
) -> Result<MqttBench, BenchError> {
    use crate::publish::message::sample_prediction;
    use crate::publish::mqtt::Publisher;
    use crate::publish::outbox::{MessageKind, Outbox, OutboxMessage};
    use std::time::Duration;

    let payload = serde_json::to_string(&sample_prediction(0)).unwrap_or_default();
    // The outbox alone.
    let alone = Outbox::open(&dir.join("alone.redb"), usize::MAX / 2)?;
    let n_alone = 500;
    let t = Instant::now();
    for _ in 0..n_alone {
        alone.push(&OutboxMessage::json(
            MessageKind::Prediction,
            "bench".into(),
            payload.clone(),
            String::new(),
        ))?;
    }
    let outbox_pushes_per_second = n_alone as f64 / t.elapsed().as_secs_f64();

    let rt = crate::publish::edge_runtime().map_err(BenchError::Runtime)?;
    // The appliance's own configuration, pointed at the broker and a fresh state folder.
    let mut config = crate::config::Config::default_config();
    config.appliance.id = "bench".into();
    config.mqtt.client_id = format!("ismf-bench-{}", std::process::id());
    config.mqtt.url = url.clone();
    config.mqtt.topic_prefix = "ismf-bench".into();
    config.mqtt.heartbeat = Duration::from_secs(3600);
    config.mqtt.outbox_capacity = 1_000_000;
    config.ingest.state_dir = dir.join("state");
    let publisher = Publisher::open(config.publisher(None), rt.handle())?;
    let timeout = Duration::from_secs(30);
    // Connect first: latency is measured on a live connection.
    publisher.submit_json(MessageKind::Prediction, &sample_prediction(0), "")?;
    rt.block_on(publisher.drain(timeout))?;
    let mut latencies = Vec::with_capacity(latency_messages);
    for i in 0..latency_messages {
        let t = Instant::now();
        publisher.submit_json(MessageKind::Prediction, &sample_prediction(i), "")?;
        rt.block_on(publisher.drain(timeout))?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(f64::total_cmp);
    let t = Instant::now();
    for i in 0..throughput_messages {
        publisher.submit_json(MessageKind::Prediction, &sample_prediction(i), "")?;
    }
    rt.block_on(publisher.drain(timeout))?;
    let throughput_per_second = throughput_messages as f64 / t.elapsed().as_secs_f64();
    rt.block_on(publisher.shutdown(Duration::from_secs(2)));
    Ok(MqttBench {
        broker: url.to_string(),
        payload_bytes: payload.len(),
        latency_messages,
        latency_p50_ms: crate::eval::percentile(&latencies, 50.0),
        latency_p99_ms: crate::eval::percentile(&latencies, 99.0),
        latency_max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        throughput_messages,
        throughput_per_second,
        outbox_pushes_per_second,
    })
}

/// Model-only latency (`ismf bench --json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelLatency {
    pub precision: String,
    /// `cpu` or `cuda`.
    pub backend: String,
    pub threads: usize,
    pub runs: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    /// Card check + tract load + optimise + warm-up run.
    pub load_ms: f64,
    pub peak_rss_mib: f64,
    /// With one thread per run: half the wall time of two runs side by side on two OS threads.
    /// Splitting the graph into two halves of two encoders each, run concurrently, cannot beat
    /// this, so comparing it with the 2-thread executor's median tells whether such a split is
    /// worth exporting. Absent when `threads` > 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent_halves_ms: Option<f64>,
    /// Under the name the benchmark script collects (`tract_f32_ms`, `tract_int8_ms`, …): the median.
    #[serde(flatten)]
    pub by_precision: std::collections::BTreeMap<String, f64>,
}

/// The simulated study every model benchmark runs (seed 77, study 0: the reference study of
/// `models/reference-outputs.json`).
fn bench_inputs() -> Result<crate::preprocess::ModelInputs, BenchError> {
    let opts = crate::simulate::StudyOptions {
        seed: 77,
        site: crate::simulate::Site::Internal,
        classes: Vec::new(),
        vendor: None,
        distractors: Default::default(),
    };
    let scratch = crate::dataset::default_scratch();
    Ok(crate::dataset::study_tensors(&opts, 0, &scratch, &PreprocessParams::default())?.0)
}

/// Per-node times of `runs` runs on the benchmark study, largest first.
pub fn model_profile(
    model: &crate::model::Model,
    runs: usize,
) -> Result<Vec<crate::model::runtime::NodeTime>, BenchError> {
    Ok(model.profile(&bench_inputs()?, runs.max(1))?)
}

/// The one-line summary of `ismf bench` (model latency).
pub fn render_latency(r: &ModelLatency) -> String {
    format!(
        "tract {} on {} threads {}: median {:.2} ms, p90 {:.2} ms over {} runs; load {:.0} ms; peak RSS {:.0} MiB",
        r.precision, r.backend, r.threads, r.median_ms, r.p90_ms, r.runs, r.load_ms, r.peak_rss_mib
    )
}

/// The one-line summary of `ismf bench mqtt`.
pub fn render_mqtt(r: &MqttBench) -> String {
    format!(
        "payload {} B | submit→PUBACK over {} messages: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | back to back: {:.0} messages/s over {} | outbox alone: {:.0} commits/s",
        r.payload_bytes,
        r.latency_messages,
        r.latency_p50_ms,
        r.latency_p99_ms,
        r.latency_max_ms,
        r.throughput_per_second,
        r.throughput_messages,
        r.outbox_pushes_per_second
    )
}

/// The profile as text: totals per operator, then the ten slowest nodes.
pub fn render_profile(nodes: &[crate::model::runtime::NodeTime]) -> String {
    use std::fmt::Write;
    let total: f64 = nodes.iter().map(|n| n.ms).sum();
    let mut by_op: Vec<(String, f64, usize)> = Vec::new();
    for n in nodes {
        match by_op.iter_mut().find(|o| o.0 == n.op) {
            Some(o) => {
                o.1 += n.ms;
                o.2 += 1;
            }
            None => by_op.push((n.op.clone(), n.ms, 1)),
        }
    }
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut s =
        format!("total {total:.2} ms a run\n\noperator               nodes      ms    share\n");
    for (op, ms, count) in &by_op {
        let _ = writeln!(
            s,
            "{op:<22} {count:>5} {ms:>7.3} {:>7.1} %",
            100.0 * ms / total.max(1e-9)
        );
    }
    let _ = writeln!(s, "\nslowest nodes");
    for n in nodes.iter().take(10) {
        let _ = writeln!(
            s,
            "{:>7.3} ms {:>6.1} %  {} ({})",
            n.ms,
            100.0 * n.ms / total.max(1e-9),
            n.node,
            n.op
        );
    }
    s
}

/// Times `runs` runs of `model` on the inputs of a simulated study (seed 77, study 0: the
/// reference study of `models/reference-outputs.json`), after one more warm-up run.
pub fn model_latency(
    model: &crate::model::Model,
    threads: usize,
    runs: usize,
    load_ms: f64,
) -> Result<ModelLatency, BenchError> {
    let inputs = bench_inputs()?;
    model.run(&inputs)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(model.run(&inputs)?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let precision = model.precision().to_string();
    let concurrent_halves_ms = if threads == 1 {
        let mut pairs = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            std::thread::scope(|s| {
                let a = s.spawn(|| model.run(&inputs));
                let b = s.spawn(|| model.run(&inputs));
                a.join().map(|r| r.is_ok()).unwrap_or(false)
                    && b.join().map(|r| r.is_ok()).unwrap_or(false)
            });
            pairs.push(t.elapsed().as_secs_f64() * 1e3 / 2.0);
        }
        pairs.sort_by(f64::total_cmp);
        Some(pairs[pairs.len() / 2])
    } else {
        None
    };
    Ok(ModelLatency {
        by_precision: [(format!("tract_{precision}_ms"), at(0.5))].into(),
        precision,
        backend: model.backend().to_string(),
        threads,
        runs,
        median_ms: at(0.5),
        p90_ms: at(0.9),
        min_ms: times[0],
        load_ms,
        peak_rss_mib: peak_rss_mib().unwrap_or(f64::NAN),
        concurrent_halves_ms,
    })
}

/// Peak resident set size of this process so far, MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Seconds of each run of decode + preprocess of the first complete study under `dir`.
pub fn preprocess_runs(dir: &Path, repeat: usize) -> Result<Vec<f64>, BenchError> {
    let report = inspect::inspect(dir, &Rules::default())?;
    let study = report
        .studies
        .iter()
        .find(|s| s.complete)
        .ok_or_else(|| BenchError::NoStudy(dir.to_path_buf()))?;
    let files = study.sequences.files();
    let clinical = catalog::read_header(&files[0].1[0])?.clinical();
    let params = PreprocessParams::default();
    let mut runs = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        let inputs = study_inputs(&files, &clinical, &params, DEFAULT_MAX_VOXELS)?;
        runs.push(t.elapsed().as_secs_f64());
        std::hint::black_box(inputs);
    }
    Ok(runs)
}

/// Seconds to read the headers of every file under `dir`, and how many were read.
pub fn header_scan(dir: &Path) -> Result<(f64, usize), BenchError> {
    let t = Instant::now();
    let scan = ingest::scan(dir)?;
    let n: usize = scan
        .catalog
        .studies
        .values()
        .flat_map(|s| s.series.values())
        .map(|s| s.instances.len())
        .sum();
    Ok((t.elapsed().as_secs_f64(), n))
}
