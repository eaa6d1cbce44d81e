//! The durable outbox: every prediction and event is committed to disk (redb, fsync on commit)
//! before it is offered to MQTT, and removed only when the broker acknowledges it (PUBACK).
//!
//! rumqttc keeps unacknowledged messages in memory only and forgets them when the broker starts
//! a fresh session, so the outbox — not the client — is the record of what the reading room is
//! still owed. It survives broker outages, `kill -9` and power loss; order is the order of
//! [`Outbox::push`] (a monotonically increasing key). It is bounded: predictions are refused
//! with [`OutboxError::Full`] past `capacity` (the pipeline then stops taking studies), while a
//! small reserve beyond it keeps room for the events that say so. Nothing is ever dropped.

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");

/// Room beyond `capacity` kept for events (an `outbox_full` event must always fit).
pub const EVENT_RESERVE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}")]
    Storage {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("outbox {path} is full ({len} messages waiting for the broker, capacity {capacity})")]
    Full {
        path: PathBuf,
        len: usize,
        capacity: usize,
    },
}

/// What a message is, for the capacity policy and the subscriber's topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Prediction,
    Event,
    /// A study's key-image montage (PNG); counts against the capacity like a prediction.
    #[serde(rename = "key_images")]
    KeyImages,
}

/// One message waiting for its PUBACK.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub kind: MessageKind,
    pub topic: String,
    /// The JSON payload, exactly as published; for a binary message its bytes in base64.
    pub payload: String,
    /// Model sha256 for the MQTT user property (empty for events).
    pub model_sha256: String,
    /// A binary payload's MIME type (`image/png`); absent for JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_content_type: Option<String>,
    /// The prediction a key image belongs to (the `prediction_id` user property).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_id: Option<String>,
}

impl OutboxMessage {
    /// A JSON message.
    pub fn json(kind: MessageKind, topic: String, payload: String, model_sha256: String) -> Self {
        OutboxMessage {
            kind,
            topic,
            payload,
            model_sha256,
            binary_content_type: None,
            prediction_id: None,
        }
    }

    /// The bytes to publish (base64 decoded for binary messages).
    pub fn payload_bytes(&self) -> Vec<u8> {
        use base64::Engine;
        match self.binary_content_type {
            Some(_) => base64::engine::general_purpose::STANDARD
                .decode(&self.payload)
                .unwrap_or_default(),
            None => self.payload.clone().into_bytes(),
        }
    }
}

pub struct Outbox {
    db: Database,
    path: PathBuf,
    capacity: usize,
    /// Serialises push so that the length check and the insert are one step.
    push_lock: Mutex<()>,
}

impl Outbox {
    /// Opens (or creates) the outbox file; its parent folder is created if missing.
    pub fn open(path: &Path, capacity: usize) -> Result<Outbox, OutboxError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| OutboxError::Storage {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display()).into()))?;
        }
        let db = Database::create(path).map_err(|e| fail(e.into()))?;
        let outbox = Outbox {
            db,
            path: path.to_path_buf(),
            capacity,
            push_lock: Mutex::new(()),
        };
        // Create the table so that readers never see "table does not exist".
        let tx = outbox.db.begin_write().map_err(|e| outbox.err(e))?;
        tx.open_table(MESSAGES).map_err(|e| outbox.err(e))?;
        tx.commit().map_err(|e| outbox.err(e))?;
        Ok(outbox)
    }

    fn err(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> OutboxError {
        OutboxError::Storage {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Commits a message durably and returns its sequence number.
    pub fn push(&self, message: &OutboxMessage) -> Result<u64, OutboxError> {
        let _guard = self.push_lock.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = serde_json::to_vec(message).map_err(|e| self.err(e))?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let seq = {
            let mut table = tx.open_table(MESSAGES).map_err(|e| self.err(e))?;
            let len = table.len().map_err(|e| self.err(e))? as usize;
            let limit = match message.kind {
                MessageKind::Prediction | MessageKind::KeyImages => self.capacity,
                MessageKind::Event => self.capacity + EVENT_RESERVE,
            };
            if len >= limit {
                return Err(OutboxError::Full {
                    path: self.path.clone(),
                    len,
                    capacity: self.capacity,
                });
            }
            let last = table.last().map_err(|e| self.err(e))?;
            let seq = last.map(|(k, _)| k.value() + 1).unwrap_or(1);
            table
                .insert(seq, bytes.as_slice())
                .map_err(|e| self.err(e))?;
            seq
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(seq)
    }

    /// Removes an acknowledged message; false if it was not there.
    pub fn remove(&self, seq: u64) -> Result<bool, OutboxError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut table = tx.open_table(MESSAGES).map_err(|e| self.err(e))?;
            let removed = table.remove(seq).map_err(|e| self.err(e))?.is_some();
            removed
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    pub fn len(&self) -> Result<usize, OutboxError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(MESSAGES).map_err(|e| self.err(e))?;
        Ok(table.len().map_err(|e| self.err(e))? as usize)
    }

    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.len()? == 0)
    }

    /// Up to `limit` messages in order, skipping those `skip` says are already on their way.
    pub fn next_unsent(
        &self,
        limit: usize,
        skip: impl Fn(u64) -> bool,
    ) -> Result<Vec<(u64, OutboxMessage)>, OutboxError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(MESSAGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| self.err(e))?;
            let seq = k.value();
            if skip(seq) {
                continue;
            }
            let message: OutboxMessage = serde_json::from_slice(v.value())
                .map_err(|e| self.err(format!("message {seq} is unreadable: {e}")))?;
            out.push((seq, message));
        }
        Ok(out)
    }

    /// Every waiting message, in order.
    pub fn all(&self) -> Result<Vec<(u64, OutboxMessage)>, OutboxError> {
        self.next_unsent(usize::MAX, |_| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: MessageKind, n: usize) -> OutboxMessage {
        OutboxMessage::json(
            kind,
            "ismf/box/predictions".into(),
            format!("{{\"n\":{n}}}"),
            "abc".into(),
        )
    }

    #[test]
    fn survives_reopening_and_keeps_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/outbox.redb");
        {
            let o = Outbox::open(&path, 10).expect("open");
            for n in 0..5 {
                o.push(&message(MessageKind::Prediction, n)).expect("push");
            }
            assert!(o.remove(2).expect("remove"));
            assert!(!o.remove(2).expect("second remove"));
        }
        let o = Outbox::open(&path, 10).expect("reopen");
        let all = o.all().expect("all");
        let seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![1, 3, 4, 5]);
        assert_eq!(all[0].1, message(MessageKind::Prediction, 0));
        // New messages continue after the last key, never reusing one.
        assert_eq!(o.push(&message(MessageKind::Event, 9)).expect("push"), 6);
        let unsent = o.next_unsent(2, |s| s == 1).expect("unsent");
        assert_eq!(
            unsent.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn full_refuses_predictions_but_keeps_room_for_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Outbox::open(&dir.path().join("o.redb"), 3).expect("open");
        for n in 0..3 {
            o.push(&message(MessageKind::Prediction, n)).expect("push");
        }
        let e = o
            .push(&message(MessageKind::Prediction, 3))
            .expect_err("full");
        assert!(
            matches!(
                e,
                OutboxError::Full {
                    len: 3,
                    capacity: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("o.redb is full"), "{e}");
        o.push(&message(MessageKind::Event, 4)).expect("event fits");
        assert_eq!(o.len().expect("len"), 4);
    }

    #[test]
    fn an_unusable_path_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let e = Outbox::open(&blocker.join("outbox.redb"), 3)
            .err()
            .expect("error");
        // The cause is the error's source; logs and events print the whole chain.
        let text = crate::logging::Chain(&e).to_string();
        assert!(text.contains("cannot create"), "{text}");
    }
}
