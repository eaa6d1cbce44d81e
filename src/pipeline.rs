//! `ismf run`: the appliance daemon. watcher and DICOM receiver → ingest (catalog, quarantine,
//! completeness) → inference on its own thread → durable outbox → MQTT, and the DICOM results
//! through the durable PACS queue to PACS, as in `docs/ARCHITECTURE.md`.
//!
//! The core loop is synchronous and owns the ingest engine; tokio runs only the MQTT publisher,
//! the DICOM receiver and the PACS sender, on the runtime the caller hands in (the binary owns the runtime and the signals, and asks for
//! a stop through [`Shutdown`]). Queues are bounded: the watcher blocks when the core falls behind, and
//! at most [`INFERENCE_QUEUE`] studies wait for the model (the others stay `complete` in the
//! journal). Crash safety comes from the order of writes: a prediction is committed to the outbox
//! before its study is marked processed in the journal, so a crash between the two re-runs the
//! study on restart and publishes the same `prediction_id` again — a duplicate at most, never a
//! loss.

use crate::classify::{Classified, Classifier, ClassifyError};
use crate::config::Config;
use crate::ingest::complete::StudyState;
use crate::ingest::watch;
use crate::ingest::{Ingest, IngestError, IngestEvent};
use crate::logging::Chain;
use crate::model::{Model, ModelError};
use crate::network::dimse::status;
use crate::network::intake::{Arrival, Verdict};
use crate::network::landing::{received_dir, Landing, LandingError};
use crate::network::queue::{PacsQueue, QueueError, Queued};
use crate::network::scp::{self, ScpError};
use crate::network::scu::Outgoing;
use crate::network::sender::PacsSender;
use crate::preprocess::PreprocessParams;
use crate::publish::message::{Event, EventKind, ModelInfo};
use crate::publish::mqtt::{MqttError, Publisher};
use crate::publish::outbox::{MessageKind, OutboxError};
use crate::results::{write_results, ResultInputs, ResultsError, Written, PNG_MAX_BYTES};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Studies waiting for the model at most (backpressure beyond it).
pub const INFERENCE_QUEUE: usize = 2;

/// Ready files the watcher may queue before it blocks (backpressure on the folder scan).
pub const READY_QUEUE: usize = 1024;

/// A study through the model, with its results as written (or why they could not be).
type Finished = (Classified, Result<Written, ResultsError>);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot start the inference thread")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Receiver(#[from] ScpError),
    #[error(transparent)]
    Landing(#[from] LandingError),
    #[error(transparent)]
    PacsQueue(#[from] QueueError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Asks the daemon to stop: set from the binary's signal handler (SIGTERM, SIGINT), a test, or
/// `ismf demo`; cloning shares the request.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a run did, for the log line at exit and for tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    pub predicted: usize,
    pub failed: usize,
    pub incomplete: usize,
    pub quarantined: usize,
}

fn now_seconds() -> f64 {
    crate::publish::message::unix_seconds()
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Runs until `shutdown` is requested, then stops intake, finishes the studies in flight (at most
/// [`INFERENCE_QUEUE`]), gives the broker a moment to take what is queued, publishes `offline`
/// and returns. The MQTT publisher runs on `rt`.
pub fn run(
    config: &Config,
    rt: &tokio::runtime::Handle,
    shutdown: &Shutdown,
) -> Result<RunSummary, PipelineError> {
    let ing = &config.ingest;
    for dir in [&ing.watch_dir, &ing.state_dir, &ing.quarantine_dir] {
        std::fs::create_dir_all(dir).map_err(|source| IngestError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    crate::model::set_threads(config.model.threads);
    let params = PreprocessParams::default();
    let model = Model::load_on(
        &config.model.card,
        config.model.precision,
        &params,
        config.model.backend,
    )?;
    tracing::info!(backend = %model.backend(), "model loaded");
    let model_info = ModelInfo::of(&model);
    let mut classifier = Classifier::new(model, params);
    classifier.appliance_id = config.appliance.id.clone();
    classifier.phi = config.mqtt.phi;
    classifier.explain = config
        .results
        .explain
        .then(crate::explain::Occlusion::default);
    let publisher = Publisher::open(config.publisher(Some(model_info.clone())), rt)?;
    let results_dir = config.results.dir.clone();
    let key_images_topic = publisher.key_images_topic().to_string();

    let (mut ingest, owed) = Ingest::open(config.ingest_engine())?;
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Arrival>(READY_QUEUE);
    let pacs = match config.pacs_sender()? {
        Some(settings) => Some(PacsSender::start(
            settings,
            PacsQueue::open(&config.pacs_queue_path())?,
            ready_tx.clone(),
            rt,
        )),
        None => None,
    };
    let received_dir = received_dir(&config.ingest.state_dir);
    let mut events = owed;
    let receiver = match config.receiver()? {
        Some(settings) => {
            let landing = Landing::open(&config.ingest.state_dir, config.dicom.min_free_bytes)?;
            // Received before a crash but not yet catalogued: catalogued now (known files are
            // skipped by the engine).
            for path in landing.stored()? {
                events.extend(ingest.offer_received(&path, now_seconds())?);
            }
            Some(scp::start(settings, landing, ready_tx.clone(), rt)?)
        }
        None => None,
    };
    let watcher = watch::spawn(config.watcher(), ready_tx)?;

    // The inference thread: catalogued studies in, predictions out.
    let (job_tx, job_rx) =
        mpsc::sync_channel::<crate::ingest::catalog::StudyEntry>(INFERENCE_QUEUE);
    let (done_tx, done_rx) = mpsc::channel::<(String, Result<Finished, ClassifyError>)>();
    let inference = std::thread::Builder::new()
        .name("inference".into())
        .spawn(move || {
            for entry in job_rx {
                let uid = entry.study_instance_uid.clone();
                // Header reads happened as the files arrived (minutes apart); what the study
                // costs here starts with its completeness report.
                // Results are written and fsync'd here, before the study can be marked
                // processed (the same crash-safe order as the prediction).
                let result = classifier.classify_entry_full(&entry, 0.0).map(|mut c| {
                    let written =
                        write_results(&results_dir, &ResultInputs::of(&c, classifier.max_voxels));
                    if let Ok(w) = &written {
                        c.prediction.key_images = w.key_images_ref(&key_images_topic);
                    }
                    (c, written)
                });
                if done_tx.send((uid, result)).is_err() {
                    return;
                }
            }
        })
        .map_err(PipelineError::Thread)?;

    let mut summary = RunSummary::default();
    let mut waiting: VecDeque<String> = VecDeque::new();
    let mut in_flight = 0usize;
    let mut outbox_full_reported = false;
    tracing::info!(
        watch = %ing.watch_dir.display(),
        broker = %config.mqtt.url,
        model = %model_info.name,
        version = %model_info.version,
        owed = events.len(),
        "appliance running"
    );
    let mut last_tick = Instant::now();
    loop {
        for event in events.drain(..) {
            handle_event(event, config, &publisher, &mut waiting, &mut summary);
        }
        while let Ok((uid, result)) = done_rx.try_recv() {
            in_flight -= 1;
            let done = Done {
                config,
                publisher: &publisher,
                pacs: pacs.as_ref(),
                received_dir: &received_dir,
            };
            if let Some(uid) = done.record(uid, result, &mut ingest, &mut summary)? {
                waiting.push_front(uid);
            }
        }
        // Intake stops while the outbox is full; an event says so once.
        let outbox_len = publisher.outbox().len()?;
        let room = outbox_len < config.mqtt.outbox_capacity;
        if !room && !outbox_full_reported {
            outbox_full_reported = true;
            let reason = format!(
                "outbox full ({outbox_len} messages waiting for the broker): intake stopped until it drains"
            );
            tracing::error!("{reason}");
            let _ = publisher.submit_json(
                MessageKind::Event,
                &Event::new(EventKind::OutboxFull, &config.appliance.id, reason),
                "",
            );
        } else if room {
            outbox_full_reported = false;
        }
        while room && in_flight < INFERENCE_QUEUE && !shutdown.is_requested() {
            let Some(uid) = waiting.pop_front() else {
                break;
            };
            let Some(entry) = ingest.catalog().studies.get(&uid).cloned() else {
                continue;
            };
            if job_tx.send(entry).is_err() {
                break;
            }
            in_flight += 1;
        }
        publisher.set_studies_waiting(waiting.len() + in_flight);
        if shutdown.is_requested() {
            break;
        }
        // New files (bounded wait so ticks and results keep flowing).
        if room {
            match ready_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(arrival) => events.extend(take(arrival, &mut ingest, config, &publisher)?),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
        if last_tick.elapsed() >= Duration::from_millis(500) {
            last_tick = Instant::now();
            events.extend(ingest.tick(now_seconds())?);
        }
    }

    // Shutdown: no more intake; the studies in flight finish and are published; the rest stay
    // `complete` in the journal for the next start.
    tracing::info!(in_flight, waiting = waiting.len(), "stopping");
    if let Some(r) = &receiver {
        r.stop();
    }
    watcher.stop();
    drop(job_tx);
    let _ = inference.join();
    let done = Done {
        config,
        publisher: &publisher,
        pacs: pacs.as_ref(),
        received_dir: &received_dir,
    };
    while let Ok((uid, result)) = done_rx.try_recv() {
        // A study the full outbox refuses now stays `complete` for the next start.
        done.record(uid, result, &mut ingest, &mut summary)?;
    }
    let _ = rt.block_on(publisher.drain(Duration::from_secs(3)));
    rt.block_on(publisher.shutdown(Duration::from_secs(2)));
    tracing::info!(
        predicted = summary.predicted,
        failed = summary.failed,
        incomplete = summary.incomplete,
        quarantined = summary.quarantined,
        "stopped"
    );
    Ok(summary)
}

/// Takes one arrival from intake: a folder file or a received instance is offered to the
/// ingest engine (the receiver's caller learns the verdict), a release is noted with its
/// studies, a notice becomes an event.
fn take(
    arrival: Arrival,
    ingest: &mut Ingest,
    config: &Config,
    publisher: &Publisher,
) -> Result<Vec<IngestEvent>, PipelineError> {
    let now = now_seconds();
    match arrival {
        Arrival::File(path) => Ok(ingest.offer(&path, now)?),
        Arrival::Received {
            path,
            caller,
            reply,
        } => {
            let events = ingest.offer_received(&path, now)?;
            let verdict = verdict_of(&events);
            tracing::debug!(file = %path.display(), caller = %caller, ?verdict, "instance received");
            // The caller may have given up waiting: the instance is catalogued regardless.
            let _ = reply.send(verdict);
            Ok(events)
        }
        Arrival::Released { studies, .. } => {
            for study in &studies {
                ingest.note_released(study, now);
            }
            Ok(Vec::new())
        }
        Arrival::Notice { kind, reason } => {
            if let Err(e) = publisher.submit_json(
                MessageKind::Event,
                &Event::new(kind, &config.appliance.id, reason),
                "",
            ) {
                tracing::error!(error = %Chain(&e), "event not queued");
            }
            Ok(Vec::new())
        }
    }
}

/// The C-STORE answer for what ingest made of a received instance.
fn verdict_of(events: &[IngestEvent]) -> Verdict {
    for e in events {
        match e {
            IngestEvent::Added { study, .. } | IngestEvent::Late { study, .. } => {
                return Verdict::Stored {
                    study: Some(study.clone()),
                }
            }
            IngestEvent::Quarantined { reason, .. } => {
                return Verdict::Refused {
                    status: status::CANNOT_UNDERSTAND,
                    reason: reason.clone(),
                }
            }
            IngestEvent::Vanished { .. } => {
                return Verdict::Refused {
                    status: status::OUT_OF_RESOURCES,
                    reason: "instance vanished from the received folder".into(),
                }
            }
            _ => {}
        }
    }
    // A duplicate, a conflict (the first copy is kept) or an instance already handled.
    Verdict::Stored { study: None }
}

/// What recording a finished study needs besides the study.
struct Done<'a> {
    config: &'a Config,
    publisher: &'a Publisher,
    pacs: Option<&'a PacsSender>,
    received_dir: &'a Path,
}

impl Done<'_> {
    /// A finished study: its key image and prediction go to the outbox first, and its DICOM
    /// results to the PACS queue, then the journal says `processed` (the crash-safe order; the
    /// DICOM results were written before this); a failure is journaled and reported. Results that
    /// could not be made raise an `error` event, and the prediction is published regardless. Once
    /// processed, the instances the receiver stored for the study are deleted (the appliance is not
    /// an archive: the scanner and PACS keep the originals). Returns the study back when the full
    /// outbox refused it (it stays `complete` and is retried).
    fn record(
        &self,
        uid: String,
        result: Result<Finished, ClassifyError>,
        ingest: &mut Ingest,
        summary: &mut RunSummary,
    ) -> Result<Option<String>, PipelineError> {
        let (config, publisher) = (self.config, self.publisher);
        let now = now_seconds();
        let event = |reason: String| {
            let mut e = Event::new(EventKind::Error, &config.appliance.id, reason);
            e.study_instance_uid = Some(uid.clone());
            if let Err(err) = publisher.submit_json(MessageKind::Event, &e, "") {
                tracing::error!(error = %Chain(&err), "event not queued");
            }
        };
        match result {
            Ok((c, written)) => {
                let p = &c.prediction;
                match &written {
                    Ok(w) => {
                        for problem in &w.problems {
                            event(format!("results: {problem}"));
                        }
                        if let (Some(png), None) = (&w.png_bytes, &p.key_images) {
                            event(format!(
                            "results: key image of {} bytes is over the {PNG_MAX_BYTES}-byte MQTT limit; written to disk only",
                            png.len()
                        ));
                        }
                    }
                    Err(e) => {
                        let reason = Chain(e).to_string();
                        tracing::error!(study = %uid, error = %reason, "results not written");
                        event(format!("results not written: {reason}"));
                    }
                }
                if p.key_images.is_some() {
                    if let Some(png) = written.as_ref().ok().and_then(|w| w.png_bytes.as_ref()) {
                        match publisher.submit_key_images(png, &p.prediction_id, &p.model.sha256) {
                            Ok(_) => {}
                            Err(OutboxError::Full { .. }) => return Ok(Some(uid)),
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                match publisher.submit_prediction(p, ingest.last_arrival(&uid)) {
                    Ok(_) => {
                        if let (Some(pacs), Ok(w)) = (self.pacs, &written) {
                            let items: Vec<Queued> = [&w.sr, &w.sc, &w.kos]
                                .into_iter()
                                .flatten()
                                .filter_map(|path| match Outgoing::of(path) {
                                    Ok(o) => Some(Queued::new(
                                        o.path,
                                        o.sop_class,
                                        o.sop_instance,
                                        uid.clone(),
                                        now,
                                    )),
                                    Err(e) => {
                                        event(format!("results: not queued for PACS: {e}"));
                                        None
                                    }
                                })
                                .collect();
                            pacs.enqueue(&items)?;
                        }
                        ingest.set_state(&uid, StudyState::Processed, now)?;
                        self.forget_received(ingest, &uid);
                        summary.predicted += 1;
                        let t = &p.timings;
                        tracing::info!(
                            study = %uid,
                            top = %p.top_class,
                            preprocess_ms = format!("{:.1}", t.preprocess_ms),
                            inference_ms = format!("{:.1}", t.inference_ms),
                            explain_ms = format!("{:.1}", t.explain_ms),
                            total_ms = format!("{:.1}", t.total_ms),
                            "study predicted"
                        );
                        Ok(None)
                    }
                    Err(OutboxError::Full { .. }) => Ok(Some(uid)),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => {
                let reason = Chain(&e).to_string();
                tracing::error!(study = %uid, error = %reason, "study failed");
                ingest.set_state(&uid, StudyState::Failed, now)?;
                summary.failed += 1;
                event(reason);
                Ok(None)
            }
        }
    }

    /// Deletes the received instances of a processed study.
    fn forget_received(&self, ingest: &Ingest, uid: &str) {
        let Some(entry) = ingest.catalog().studies.get(uid) else {
            return;
        };
        for file in entry.series.values().flat_map(|s| s.files()) {
            if file.starts_with(self.received_dir) {
                if let Err(e) = std::fs::remove_file(&file) {
                    tracing::warn!(file = %file.display(), error = %e, "received instance not deleted");
                }
            }
        }
    }
}

fn handle_event(
    event: IngestEvent,
    config: &Config,
    publisher: &Publisher,
    waiting: &mut VecDeque<String>,
    summary: &mut RunSummary,
) {
    let id = &config.appliance.id;
    let watch_dir = &config.ingest.watch_dir;
    let event = match event {
        IngestEvent::Complete { study, .. } => {
            tracing::info!(study = %study, "study complete");
            if !waiting.contains(&study) {
                waiting.push_back(study);
            }
            return;
        }
        IngestEvent::Incomplete { study, problems } => {
            summary.incomplete += 1;
            tracing::warn!(study = %study, problems = %problems.join("; "), "study incomplete");
            let mut e = Event::new(EventKind::IncompleteStudy, id, problems.join("; "));
            e.study_instance_uid = Some(study);
            e
        }
        IngestEvent::Quarantined { path, reason, .. } => {
            summary.quarantined += 1;
            let mut e = Event::new(EventKind::QuarantinedFile, id, reason);
            e.path = Some(relative(watch_dir, &path));
            e
        }
        other => {
            tracing::debug!(event = ?other, "ingest");
            return;
        }
    };
    if let Err(e) = publisher.submit_json(MessageKind::Event, &event, "") {
        tracing::error!(error = %Chain(&e), "event not queued");
    }
}
