//! The Storage SCP: scanners and routers send studies to the appliance's AE title.
//!
//! Runs on the daemon's tokio runtime (the core stays synchronous): one task accepts, one task
//! per association, at most `max_associations` at once — a connection beyond that gets an
//! A-ASSOCIATE-RJ "local limit exceeded" (transient, so the sender retries) from a small pool of
//! refusers, and beyond that pool the connection is simply closed: memory stays bounded however
//! many connect. Callers are checked against the allow-list (calling AE title, optionally the
//! host it connects from) before any presentation context is accepted.
//!
//! Each C-STORE's data set is written PDU by PDU to a temporary file ([`Landing`]), fsync'd and
//! renamed, then handed to the core loop, which catalogues it with the same engine the folder
//! watcher feeds; the response is sent only after the core's verdict: success, `Out of
//! resources` (disk short, or the core too busy to answer in time — the instance is kept and a
//! resend is a harmless duplicate), or `Cannot understand` for a data set that does not parse
//! (quarantined with the reason).

use super::dimse::{self, status, Command};
use super::intake::{Arrival, Verdict};
use super::landing::{Landing, LandingError, Part};
use super::scu::Stream;
use crate::publish::message::EventKind;
use crate::tls::rustls;
use dicom_ul::association::server::{AccessControl, AsyncServerAssociation};
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, PDataValue, PDataValueType, UserIdentity,
};
use dicom_ul::{Pdu, ServerAssociationOptions};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// Connections beyond `max_associations` that are answered with a rejection at the same time;
/// past these, an extra connection is closed without an answer.
const REFUSERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ScpError {
    #[error("dicom.listen {addr}: cannot listen")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Landing(#[from] LandingError),
}

/// One allow-list entry: a calling AE title, and optionally the address it must come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub ae_title: String,
    pub host: Option<IpAddr>,
}

impl FromStr for Caller {
    type Err = String;

    /// `"MRSCANNER"` or `"MRSCANNER@10.1.2.3"`.
    fn from_str(s: &str) -> Result<Caller, String> {
        let (ae, host) = match s.split_once('@') {
            Some((ae, host)) => (
                ae,
                Some(
                    host.parse::<IpAddr>()
                        .map_err(|_| format!("'{s}': '{host}' is not an IP address"))?,
                ),
            ),
            None => (s, None),
        };
        check_ae_title(ae).map_err(|e| format!("'{s}': {e}"))?;
        Ok(Caller {
            ae_title: ae.to_string(),
            host,
        })
    }
}

/// An AE title as PS3.5 allows it: 1–16 characters of the default repertoire, no backslash or
/// control character, not all spaces.
pub fn check_ae_title(ae: &str) -> Result<(), String> {
    if ae.trim().is_empty() || ae.len() > 16 {
        return Err(format!("AE title '{ae}' must be 1–16 characters"));
    }
    if !ae.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
        return Err(format!(
            "AE title '{ae}' may hold only printable ASCII without '\\'"
        ));
    }
    Ok(())
}

/// The receiver's settings (from `[dicom]`).
#[derive(Clone, Debug)]
pub struct ScpSettings {
    pub listen: SocketAddr,
    pub ae_title: String,
    pub allowed_callers: Vec<Caller>,
    pub accept_any: bool,
    pub max_associations: usize,
    pub max_pdu: u32,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// How long a C-STORE waits for the core's verdict before answering `Out of resources`.
    pub verdict_timeout: Duration,
    /// DICOM TLS: the listener speaks only TLS (with client certificates when the configuration
    /// names a client CA).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The allow-list check for one connection (it knows the peer's address, which dicom-ul's
/// access-control hook does not pass), remembering the refused caller for the log and event.
struct Access<'a> {
    settings: &'a ScpSettings,
    peer: IpAddr,
    refused: Arc<Mutex<Option<String>>>,
}

impl AccessControl for Access<'_> {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let refuse = |why: String, reason| {
            if let Ok(mut r) = self.refused.lock() {
                *r = Some(why);
            }
            Err(reason)
        };
        if called_ae_title.trim() != this_ae_title {
            return refuse(
                format!(
                    "called AE title '{}' is not this appliance's ('{this_ae_title}')",
                    called_ae_title.trim()
                ),
                AssociationRJServiceUserReason::CalledAETitleNotRecognized,
            );
        }
        let calling = calling_ae_title.trim();
        let allowed = self.settings.accept_any
            || self
                .settings
                .allowed_callers
                .iter()
                .any(|c| c.ae_title == calling && c.host.is_none_or(|h| h == self.peer));
        if allowed {
            Ok(())
        } else {
            refuse(
                format!(
                    "calling AE title '{calling}' from {} is not in dicom.allowed_callers",
                    self.peer
                ),
                AssociationRJServiceUserReason::CallingAETitleNotRecognized,
            )
        }
    }
}

/// A running receiver; [`Receiver::stop`] ends the accept loop (associations in progress finish
/// on their own or time out).
pub struct Receiver {
    stop: Arc<Notify>,
    local_addr: SocketAddr,
}

impl Receiver {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stop(&self) {
        self.stop.notify_one();
    }
}

struct Shared {
    settings: ScpSettings,
    landing: Landing,
    arrivals: SyncSender<Arrival>,
}

impl Shared {
    /// A notice for the core loop; never waits (a full queue only loses the event, and logs).
    fn notice(&self, kind: EventKind, reason: String) {
        if let Err(TrySendError::Full(_)) = self.arrivals.try_send(Arrival::Notice { kind, reason })
        {
            tracing::warn!("intake queue full: a receiver event was not queued");
        }
    }

    /// Hands an arrival to the core loop, waiting while its queue is full.
    async fn hand_over(&self, mut arrival: Arrival) -> bool {
        loop {
            match self.arrivals.try_send(arrival) {
                Ok(()) => return true,
                Err(TrySendError::Full(a)) => {
                    arrival = a;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
    }
}

/// Binds `settings.listen` (so a taken port fails the start, not later) and starts accepting on
/// `rt`.
pub fn start(
    settings: ScpSettings,
    landing: Landing,
    arrivals: SyncSender<Arrival>,
    rt: &tokio::runtime::Handle,
) -> Result<Receiver, ScpError> {
    let bind = |source| ScpError::Bind {
        addr: settings.listen,
        source,
    };
    let std_listener = std::net::TcpListener::bind(settings.listen).map_err(bind)?;
    std_listener.set_nonblocking(true).map_err(bind)?;
    let local_addr = std_listener.local_addr().map_err(bind)?;
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(std_listener).map_err(bind)?
    };
    let stop = Arc::new(Notify::new());
    let stop_rx = stop.clone();
    tracing::info!(listen = %local_addr, ae_title = %settings.ae_title, max_associations = settings.max_associations, tls = settings.tls.is_some(), "DICOM receiver listening");
    let shared = Arc::new(Shared {
        settings,
        landing,
        arrivals,
    });
    rt.spawn(accept_loop(listener, shared, stop_rx));
    Ok(Receiver { stop, local_addr })
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: Arc<Notify>) {
    let associations = Arc::new(Semaphore::new(shared.settings.max_associations));
    let refusers = Arc::new(Semaphore::new(REFUSERS));
    loop {
        let (socket, peer) = tokio::select! {
            _ = stop.notified() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "DICOM receiver: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match associations.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    association(socket, peer, &shared).await;
                    drop(permit);
                });
            }
            Err(_) => {
                let reason = format!(
                    "association from {peer} refused: {} associations already open (dicom.max_associations)",
                    shared.settings.max_associations
                );
                tracing::warn!("{reason}");
                shared.notice(EventKind::AssociationRejected, reason);
                if let Ok(permit) = refusers.clone().try_acquire_owned() {
                    let timeout = shared.settings.read_timeout.min(Duration::from_secs(5));
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(timeout, refuse_busy(socket)).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// Reads the caller's A-ASSOCIATE-RQ and answers A-ASSOCIATE-RJ "local limit exceeded".
async fn refuse_busy(mut socket: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut buf = bytes::BytesMut::with_capacity(4096);
    if dicom_ul::association::read_pdu_from_wire_async(&mut socket, &mut buf, 64 * 1024, true)
        .await
        .is_err()
    {
        return;
    }
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut out = Vec::new();
    if dicom_ul::write_pdu(&mut out, &rj).is_ok() {
        let _ = socket.write_all(&out).await;
        let _ = socket.shutdown().await;
    }
}

/// The C-STORE in progress on an association.
struct Incoming {
    command: Command,
    context: u8,
    /// The file being written, or why the instance is refused (its data is read and dropped).
    part: Result<Part, (u16, String)>,
}

async fn association(socket: tokio::net::TcpStream, peer: SocketAddr, shared: &Shared) {
    let s = &shared.settings;
    let refused = Arc::new(Mutex::new(None));
    let access = Access {
        settings: s,
        peer: peer.ip(),
        refused: refused.clone(),
    };
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(access)
        .ae_title(s.ae_title.as_str())
        .with_abstract_syntax(dimse::VERIFICATION)
        .max_pdu_length(s.max_pdu)
        .strict(true)
        .read_timeout(s.read_timeout)
        .write_timeout(s.write_timeout);
    for class in dimse::RECEIVED_CLASSES {
        options = options.with_abstract_syntax(class);
    }
    for (ts, _) in crate::pixels::SUPPORTED {
        options = options.with_transfer_syntax(ts);
    }
    // The handshake and the association request are bounded by the read timeout: a caller that
    // connects and says nothing must not hold one of the `max_associations` places.
    let no_request = || "no association request within dicom.read_timeout_seconds".to_string();
    let failure = match &s.tls {
        Some(tls) => {
            let options = options.tls_config(tls.clone());
            match tokio::time::timeout(s.read_timeout, options.establish_tls_async(socket)).await {
                Ok(Ok(assoc)) => return serve(assoc, peer, shared).await,
                Ok(Err(e)) => e.to_string(),
                Err(_) => no_request(),
            }
        }
        None => match tokio::time::timeout(s.read_timeout, options.establish_async(socket)).await {
            Ok(Ok(assoc)) => return serve(assoc, peer, shared).await,
            Ok(Err(e)) => e.to_string(),
            Err(_) => no_request(),
        },
    };
    let refused = refused.lock().ok().and_then(|mut r| r.take());
    let reason = match &refused {
        Some(why) => format!("association from {peer} refused: {why}"),
        None => format!("association from {peer} failed: {failure}"),
    };
    tracing::warn!("{reason}");
    if refused.is_some() {
        shared.notice(EventKind::AssociationRejected, reason);
    }
}

/// Serves an accepted association until the caller releases or aborts it.
async fn serve<S: Stream>(mut assoc: AsyncServerAssociation<S>, peer: SocketAddr, shared: &Shared) {
    let caller = dicom_ul::association::Association::peer_ae_title(&assoc)
        .trim()
        .to_string();
    let contexts: Vec<(u8, String)> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == dicom_ul::pdu::PresentationContextResultReason::Acceptance)
        .map(|pc| (pc.id, pc.transfer_syntax.trim_end_matches('\0').to_string()))
        .collect();
    tracing::info!(%peer, caller = %caller, contexts = contexts.len(), "association accepted");
    let mut command_bytes: Vec<u8> = Vec::new();
    let mut incoming: Option<Incoming> = None;
    let mut studies: BTreeSet<String> = BTreeSet::new();
    let mut stored = 0usize;
    loop {
        let pdu = match assoc.receive().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%peer, caller = %caller, error = %e, stored, "association ended without release");
                // `incoming` drops here: a partial instance is removed, never catalogued.
                let _ = assoc.abort().await;
                return;
            }
        };
        match pdu {
            Pdu::PData { data } => {
                for pdv in data {
                    match pdv.value_type {
                        PDataValueType::Command => {
                            if command_bytes.len() + pdv.data.len() > 64 * 1024 {
                                tracing::warn!(%peer, "command set over 64 KiB: aborting");
                                let _ = assoc.abort().await;
                                return;
                            }
                            command_bytes.extend_from_slice(&pdv.data);
                            if !pdv.is_last {
                                continue;
                            }
                            let command = match Command::parse(&command_bytes) {
                                Ok(c) => c,
                                Err(e) => {
                                    tracing::warn!(%peer, error = %e, "unreadable command: aborting");
                                    let _ = assoc.abort().await;
                                    return;
                                }
                            };
                            command_bytes.clear();
                            let ts = contexts
                                .iter()
                                .find(|(id, _)| *id == pdv.presentation_context_id)
                                .map(|(_, ts)| ts.clone());
                            match command.field {
                                dimse::C_ECHO_RQ => {
                                    if !respond(
                                        &mut assoc,
                                        pdv.presentation_context_id,
                                        &command,
                                        status::SUCCESS,
                                        None,
                                    )
                                    .await
                                    {
                                        return;
                                    }
                                }
                                dimse::C_STORE_RQ => {
                                    let part =
                                        begin(shared, &command, ts.as_deref(), &caller).await;
                                    incoming = Some(Incoming {
                                        command,
                                        context: pdv.presentation_context_id,
                                        part,
                                    });
                                }
                                _ => {
                                    let ok = respond(
                                        &mut assoc,
                                        pdv.presentation_context_id,
                                        &command,
                                        status::UNRECOGNIZED_OPERATION,
                                        Some("only C-ECHO and C-STORE are supported"),
                                    )
                                    .await;
                                    if !ok {
                                        return;
                                    }
                                }
                            }
                        }
                        PDataValueType::Data => {
                            let Some(inc) = incoming.as_mut() else {
                                tracing::warn!(%peer, "data without a C-STORE request: aborting");
                                let _ = assoc.abort().await;
                                return;
                            };
                            if let Ok(part) = inc.part.as_mut() {
                                if let Err(e) = part.write(&pdv.data).await {
                                    inc.part = Err(refusal(&e));
                                }
                            }
                            if !pdv.is_last {
                                continue;
                            }
                            let Some(inc) = incoming.take() else { continue };
                            let (code, comment, study) = conclude(shared, inc.part, &caller).await;
                            if code == status::SUCCESS {
                                stored += 1;
                            }
                            if let Some(study) = study {
                                studies.insert(study);
                            }
                            if !respond(
                                &mut assoc,
                                inc.context,
                                &inc.command,
                                code,
                                comment.as_deref(),
                            )
                            .await
                            {
                                return;
                            }
                        }
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP).await;
                tracing::info!(%peer, caller = %caller, stored, studies = studies.len(), "association released");
                if !studies.is_empty() {
                    shared
                        .hand_over(Arrival::Released {
                            caller,
                            studies: studies.into_iter().collect(),
                        })
                        .await;
                }
                return;
            }
            Pdu::AbortRQ { source } => {
                tracing::warn!(%peer, caller = %caller, ?source, stored, "association aborted by the caller");
                return;
            }
            other => {
                tracing::warn!(%peer, pdu = %other.short_description(), "unexpected PDU: aborting");
                let _ = assoc.abort().await;
                return;
            }
        }
    }
}

/// The DIMSE failure for a landing failure.
fn refusal(e: &LandingError) -> (u16, String) {
    if e.is_disk_short() {
        tracing::error!(error = %e, "instance refused: disk short");
        (
            status::OUT_OF_RESOURCES,
            "disk short on the appliance".into(),
        )
    } else {
        tracing::error!(error = %e, "instance refused");
        (
            status::OUT_OF_RESOURCES,
            "appliance cannot store the instance".into(),
        )
    }
}

/// Starts storing the instance a C-STORE-RQ announces, or says why it will be refused.
async fn begin(
    shared: &Shared,
    command: &Command,
    ts: Option<&str>,
    caller: &str,
) -> Result<Part, (u16, String)> {
    let Some(ts) = ts else {
        return Err((
            status::SOP_CLASS_NOT_SUPPORTED,
            "presentation context not accepted".into(),
        ));
    };
    if !dimse::RECEIVED_CLASSES.contains(&command.affected_sop_class.as_str()) {
        return Err((
            status::SOP_CLASS_NOT_SUPPORTED,
            format!(
                "SOP class {} is not stored here",
                command.affected_sop_class
            ),
        ));
    }
    if !dimse::is_valid_uid(&command.affected_sop_instance) {
        return Err((status::CANNOT_UNDERSTAND, "invalid SOP Instance UID".into()));
    }
    shared
        .landing
        .begin(
            &command.affected_sop_class,
            &command.affected_sop_instance,
            ts,
            caller,
        )
        .await
        .map_err(|e| refusal(&e))
}

/// Finishes a received instance and asks the core for its verdict: the status to answer, an
/// error comment, and the study it joined.
async fn conclude(
    shared: &Shared,
    part: Result<Part, (u16, String)>,
    caller: &str,
) -> (u16, Option<String>, Option<String>) {
    let part = match part {
        Ok(p) => p,
        Err((code, why)) => return (code, Some(why), None),
    };
    // A re-send keeps the first copy, which is offered again all the same: a crash between its
    // rename and its catalogue entry must not leave it uncatalogued behind a success.
    let path = match part.finish().await {
        Ok((path, fresh)) => {
            if !fresh {
                tracing::debug!(file = %path.display(), "instance received again; the first copy is kept");
            }
            path
        }
        Err(e) => {
            let (code, why) = refusal(&e);
            return (code, Some(why), None);
        }
    };
    let (reply, verdict) = tokio::sync::oneshot::channel();
    let arrival = Arrival::Received {
        path,
        caller: caller.to_string(),
        reply,
    };
    if !shared.hand_over(arrival).await {
        return (
            status::OUT_OF_RESOURCES,
            Some("appliance stopping".into()),
            None,
        );
    }
    match tokio::time::timeout(shared.settings.verdict_timeout, verdict).await {
        Ok(Ok(Verdict::Stored { study })) => (status::SUCCESS, None, study),
        Ok(Ok(Verdict::Refused { status, reason })) => (status, Some(reason), None),
        Ok(Err(_)) => (
            status::OUT_OF_RESOURCES,
            Some("appliance stopping".into()),
            None,
        ),
        Err(_) => (
            status::OUT_OF_RESOURCES,
            Some("appliance busy; resend later".into()),
            None,
        ),
    }
}

/// Sends a response command; false when the association broke.
async fn respond<S: Stream>(
    assoc: &mut AsyncServerAssociation<S>,
    context: u8,
    rq: &Command,
    code: u16,
    comment: Option<&str>,
) -> bool {
    let bytes = match dimse::response(rq, code, comment) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "response not encoded");
            return false;
        }
    };
    let pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: context,
            value_type: PDataValueType::Command,
            is_last: true,
            data: bytes,
        }],
    };
    match assoc.send(&pdu).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "response not sent");
            false
        }
    }
}
