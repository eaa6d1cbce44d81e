//! The Storage SCU: sends DICOM files to a peer in one association — the appliance's results to
//! PACS, and the demo's simulated studies to the appliance.
//!
//! Transfer syntaxes are negotiated per SOP class: Explicit VR Little Endian first, Implicit VR
//! Little Endian as the fallback every SCP must accept, and a file's own compressed syntax in a
//! context of its own. A native file is re-encoded into whichever native syntax was accepted; a
//! compressed file the peer will not take compressed is refused with that reason (no lossy
//! transcoding here).

use super::dimse::{self, Command};
use crate::tls::rustls;
use dicom_object::OpenFileOptions;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use dicom_ul::association::client::AsyncClientAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextResultReason};
use dicom_ul::{ClientAssociationOptions, Pdu};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// A stream an association runs on (TCP, or TLS over TCP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

#[derive(Debug, thiserror::Error)]
pub enum ScuError {
    #[error("{peer}: cannot associate")]
    Associate {
        peer: String,
        #[source]
        source: dicom_ul::association::Error,
    },
    #[error("{peer}: association broke")]
    Transfer {
        peer: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where to send, and as whom.
#[derive(Clone, Debug)]
pub struct Peer {
    pub host: String,
    pub port: u16,
    pub called_ae: String,
    pub calling_ae: String,
    pub timeout: Duration,
    pub max_pdu: u32,
    /// DICOM TLS: the peer's certificate is checked against these roots and must name `host`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.called_ae, self.host, self.port)
    }
}

/// One file to send, with what its header says.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub path: PathBuf,
    pub sop_class: String,
    pub sop_instance: String,
    pub transfer_syntax: String,
}

impl Outgoing {
    /// Reads a Part-10 file's meta information.
    pub fn of(path: &Path) -> Result<Outgoing, String> {
        let obj = OpenFileOptions::new()
            .read_until(dicom_dictionary_std::tags::SOP_CLASS_UID)
            .open_file(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let m = obj.meta();
        let t = |s: &str| s.trim_end_matches(['\0', ' ']).to_string();
        Ok(Outgoing {
            path: path.to_path_buf(),
            sop_class: t(m.media_storage_sop_class_uid()),
            sop_instance: t(m.media_storage_sop_instance_uid()),
            transfer_syntax: t(m.transfer_syntax()),
        })
    }
}

/// What the peer said of one file: its DIMSE status, or why it was not sent.
pub type Outcome = Result<u16, String>;

fn is_native(ts: &str) -> bool {
    matches!(
        ts,
        dimse::EXPLICIT_VR_LE | dimse::IMPLICIT_VR_LE | "1.2.840.10008.1.2.2"
    )
}

/// The data set of `file` encoded in `ts` (the file's own syntax, or a native one).
fn data_set(file: &Outgoing, ts: &str) -> Result<Vec<u8>, String> {
    let obj =
        dicom_object::open_file(&file.path).map_err(|e| format!("{}: {e}", file.path.display()))?;
    let syntax = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| format!("transfer syntax {ts} unknown"))?;
    let mut bytes = Vec::with_capacity(
        std::fs::metadata(&file.path)
            .map(|m| m.len() as usize)
            .unwrap_or(0),
    );
    obj.write_dataset_with_ts(&mut bytes, syntax)
        .map_err(|e| format!("{}: cannot encode in {ts}: {e}", file.path.display()))?;
    Ok(bytes)
}

/// Establishes an association with `peer` from `options` (over TLS when the peer has a TLS
/// configuration) and evaluates `$body` with it bound to `$assoc`. A macro and not a function:
/// the TLS and the plain association are different types, and `$body` is generic over both.
macro_rules! associated {
    ($peer:expr, $options:expr, |$assoc:ident| $body:expr) => {{
        let peer: &Peer = $peer;
        let address = format!("{}:{}", peer.host, peer.port);
        let associate = |source| ScuError::Associate {
            peer: peer.to_string(),
            source,
        };
        match &peer.tls {
            Some(tls) => {
                let $assoc = $options
                    .tls_config(tls.clone())
                    .server_name(&peer.host)
                    .establish_tls_async(address.as_str())
                    .await
                    .map_err(associate)?;
                $body.await
            }
            None => {
                let $assoc = $options
                    .establish_async(address.as_str())
                    .await
                    .map_err(associate)?;
                $body.await
            }
        }
    }};
}

/// Sends `files` to `peer` in one association and returns one outcome per file, in order. An
/// error means no association (or it broke): nothing after the break was stored.
pub async fn store(peer: &Peer, files: &[Outgoing]) -> Result<Vec<Outcome>, ScuError> {
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(peer.calling_ae.as_str())
        .called_ae_title(peer.called_ae.as_str())
        .max_pdu_length(peer.max_pdu)
        .read_timeout(peer.timeout)
        .write_timeout(peer.timeout)
        .connection_timeout(peer.timeout);
    // One context per (class, compressed syntax) and one native context per class.
    let mut proposed: Vec<(String, Vec<String>)> = Vec::new();
    for f in files {
        let native = vec![
            dimse::EXPLICIT_VR_LE.to_string(),
            dimse::IMPLICIT_VR_LE.to_string(),
        ];
        let own = if is_native(&f.transfer_syntax) {
            native
        } else {
            vec![f.transfer_syntax.clone()]
        };
        for ts in [
            own,
            vec![
                dimse::EXPLICIT_VR_LE.to_string(),
                dimse::IMPLICIT_VR_LE.to_string(),
            ],
        ] {
            let pc = (f.sop_class.clone(), ts);
            if !proposed.contains(&pc) && proposed.len() < 127 {
                proposed.push(pc);
            }
        }
    }
    for (class, ts) in &proposed {
        options = options
            .with_presentation_context(class.as_str(), ts.iter().map(String::as_str).collect());
    }
    associated!(peer, options, |assoc| transfer(peer, assoc, files))
}

async fn transfer<S: Stream>(
    peer: &Peer,
    mut assoc: AsyncClientAssociation<S>,
    files: &[Outgoing],
) -> Result<Vec<Outcome>, ScuError> {
    let accepted: Vec<(u8, String, String)> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| {
            let t = |s: &str| s.trim_end_matches(['\0', ' ']).to_string();
            (pc.id, t(&pc.abstract_syntax), t(&pc.transfer_syntax))
        })
        .collect();
    let broke = |source: Box<dyn std::error::Error + Send + Sync>| ScuError::Transfer {
        peer: peer.to_string(),
        source,
    };
    let mut outcomes = Vec::with_capacity(files.len());
    for (n, f) in files.iter().enumerate() {
        // The file's own syntax if accepted, else a native one for a native file.
        let choice = accepted
            .iter()
            .find(|(_, c, ts)| *c == f.sop_class && *ts == f.transfer_syntax)
            .or_else(|| {
                accepted.iter().find(|(_, c, ts)| {
                    *c == f.sop_class && is_native(ts) && is_native(&f.transfer_syntax)
                })
            });
        let Some((pc, _, ts)) = choice else {
            outcomes.push(Err(format!(
                "{peer} accepted no presentation context for SOP class {} in {} or a native syntax",
                f.sop_class, f.transfer_syntax
            )));
            continue;
        };
        let bytes = match data_set(f, ts) {
            Ok(b) => b,
            Err(e) => {
                outcomes.push(Err(e));
                continue;
            }
        };
        let message_id = (n % 0xFFFF) as u16 + 1;
        let command = dimse::store_rq(message_id, &f.sop_class, &f.sop_instance)
            .map_err(|e| broke(e.into()))?;
        assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: *pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: command,
                }],
            })
            .await
            .map_err(|e| broke(e.into()))?;
        {
            let mut writer = assoc.send_pdata(*pc);
            writer
                .write_all(&bytes)
                .await
                .map_err(|e| broke(e.into()))?;
            writer.finish().await.map_err(|e| broke(e.into()))?;
        }
        let response = read_response(&mut assoc).await.map_err(broke)?;
        outcomes.push(Ok(response
            .status
            .unwrap_or(dimse::status::CANNOT_UNDERSTAND)));
        if let (Some(code), Some(comment)) = (response.status, response.error_comment) {
            if !dimse::status::is_stored(code) {
                tracing::warn!(peer = %peer, file = %f.path.display(), status = format!("{code:#06x}"), %comment, "store refused");
            }
        }
    }
    let _ = assoc.release().await;
    Ok(outcomes)
}

/// Verification: associates, sends C-ECHO and returns its status.
pub async fn echo(peer: &Peer) -> Result<u16, ScuError> {
    let options = ClientAssociationOptions::new()
        .calling_ae_title(peer.calling_ae.as_str())
        .called_ae_title(peer.called_ae.as_str())
        .with_abstract_syntax(dimse::VERIFICATION)
        .read_timeout(peer.timeout)
        .connection_timeout(peer.timeout);
    associated!(peer, options, |assoc| verify(peer, assoc))
}

async fn verify<S: Stream>(
    peer: &Peer,
    mut assoc: AsyncClientAssociation<S>,
) -> Result<u16, ScuError> {
    let broke = |source: Box<dyn std::error::Error + Send + Sync>| ScuError::Transfer {
        peer: peer.to_string(),
        source,
    };
    let pc = assoc
        .presentation_contexts()
        .first()
        .map(|p| p.id)
        .unwrap_or(1);
    let command = dimse::echo_rq(1).map_err(|e| broke(e.into()))?;
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        })
        .await
        .map_err(|e| broke(e.into()))?;
    let response = read_response(&mut assoc).await.map_err(broke)?;
    let _ = assoc.release().await;
    Ok(response.status.unwrap_or(dimse::status::CANNOT_UNDERSTAND))
}

async fn read_response<S: Stream>(
    assoc: &mut AsyncClientAssociation<S>,
) -> Result<Command, Box<dyn std::error::Error + Send + Sync>> {
    let mut bytes = Vec::new();
    loop {
        match assoc.receive().await? {
            Pdu::PData { data } => {
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command {
                        bytes.extend_from_slice(&pdv.data);
                        if pdv.is_last {
                            return Ok(Command::parse(&bytes)?);
                        }
                    }
                }
            }
            Pdu::AbortRQ { source } => return Err(format!("peer aborted: {source:?}").into()),
            other => return Err(format!("unexpected {}", other.short_description()).into()),
        }
    }
}
