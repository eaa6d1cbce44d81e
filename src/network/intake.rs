//! The hand-over between intake (the folder watcher and the DICOM receiver) and the core loop,
//! which owns the ingest engine: one queue, so both sources are catalogued by the same engine
//! in arrival order.

use crate::publish::message::EventKind;
use std::path::PathBuf;

/// Something for the core loop to take in.
#[derive(Debug)]
pub enum Arrival {
    /// A file the folder watcher found ready.
    File(PathBuf),
    /// An instance the receiver stored (complete and fsync'd); the core says through `reply`
    /// whether it was catalogued, and only then does the caller get its C-STORE response.
    Received {
        path: PathBuf,
        caller: String,
        reply: tokio::sync::oneshot::Sender<Verdict>,
    },
    /// A caller released its association after sending instances of these studies: a hint
    /// recorded with each study; the completeness timer still decides.
    Released {
        caller: String,
        studies: Vec<String>,
    },
    /// Something the reading room should hear (a refused association).
    Notice { kind: EventKind, reason: String },
}

impl From<PathBuf> for Arrival {
    fn from(path: PathBuf) -> Arrival {
        Arrival::File(path)
    }
}

/// What became of a received instance.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Catalogued (or already known): the caller may forget it. The study it joined, when new.
    Stored { study: Option<String> },
    /// Not kept; `status` is the DIMSE failure status to answer with.
    Refused { status: u16, reason: String },
}
