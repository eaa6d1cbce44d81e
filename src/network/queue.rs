//! The PACS queue: the DICOM results (SR, SC, KOS) waiting to be stored in PACS, with the
//! outbox's guarantees — committed (redb, fsync on commit) before the first attempt, removed only
//! when PACS answers a success or warning status, attempts and the next attempt's time kept on
//! disk so backoff survives restarts. Keyed by SOP Instance UID: a study re-run after a crash
//! writes the same result UIDs, so it cannot queue a result twice.

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("results");

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("PACS queue {path}")]
    Storage {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One result file owed to PACS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub path: PathBuf,
    pub sop_class: String,
    pub sop_instance: String,
    pub study: String,
    /// When it was queued (seconds since the Unix epoch): the send order.
    pub queued_at: f64,
    pub attempts: u32,
    pub next_attempt_at: f64,
    /// The last failure, for the event and the log.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Queued {
    pub fn new(
        path: PathBuf,
        sop_class: String,
        sop_instance: String,
        study: String,
        now: f64,
    ) -> Queued {
        Queued {
            path,
            sop_class,
            sop_instance,
            study,
            queued_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        }
    }
}

/// Seconds to wait after `attempts` failed attempts: 2, 4, 8 … capped at `max`.
pub fn backoff(attempts: u32, max: f64) -> f64 {
    (2f64.powi(attempts.min(20) as i32)).min(max)
}

#[derive(Debug)]
pub struct PacsQueue {
    db: Database,
    path: PathBuf,
}

impl PacsQueue {
    pub fn open(path: &Path) -> Result<PacsQueue, QueueError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| QueueError::Storage {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.into()))?;
        }
        let db = Database::create(path).map_err(|e| fail(e.into()))?;
        let q = PacsQueue {
            db,
            path: path.to_path_buf(),
        };
        let tx = q.db.begin_write().map_err(|e| q.err(e))?;
        tx.open_table(RESULTS).map_err(|e| q.err(e))?;
        tx.commit().map_err(|e| q.err(e))?;
        Ok(q)
    }

    fn err(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> QueueError {
        QueueError::Storage {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    /// Commits `items` in one transaction; an item already queued keeps its attempts.
    pub fn push(&self, items: &[Queued]) -> Result<(), QueueError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(RESULTS).map_err(|e| self.err(e))?;
            for item in items {
                if t.get(item.sop_instance.as_str())
                    .map_err(|e| self.err(e))?
                    .is_some()
                {
                    continue;
                }
                let bytes = serde_json::to_vec(item).map_err(|e| self.err(e))?;
                t.insert(item.sop_instance.as_str(), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Writes back an item's attempts (or removes it when `stored`).
    pub fn settle(&self, item: &Queued, stored: bool) -> Result<(), QueueError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(RESULTS).map_err(|e| self.err(e))?;
            if stored {
                t.remove(item.sop_instance.as_str())
                    .map_err(|e| self.err(e))?;
            } else {
                let bytes = serde_json::to_vec(item).map_err(|e| self.err(e))?;
                t.insert(item.sop_instance.as_str(), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Everything queued, oldest first.
    pub fn all(&self) -> Result<Vec<Queued>, QueueError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(RESULTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let q: Queued = serde_json::from_slice(v.value())
                .map_err(|e| self.err(format!("entry {} is unreadable: {e}", k.value())))?;
            out.push(q);
        }
        out.sort_by(|a, b| a.queued_at.total_cmp(&b.queued_at));
        Ok(out)
    }

    pub fn len(&self) -> Result<usize, QueueError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(RESULTS).map_err(|e| self.err(e))?;
        Ok(t.len().map_err(|e| self.err(e))? as usize)
    }

    pub fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopening_dedupes_by_uid_and_removes_only_when_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("pacs.redb");
        let item = |uid: &str, t: f64| {
            Queued::new(
                dir.path().join(format!("{uid}.dcm")),
                "1.2".into(),
                uid.into(),
                "9".into(),
                t,
            )
        };
        {
            let q = PacsQueue::open(&path).expect("open");
            q.push(&[item("1.1", 2.0), item("1.2", 1.0)]).expect("push");
            let mut failed = item("1.1", 2.0);
            failed.attempts = 3;
            q.settle(&failed, false).expect("failed attempt");
            q.push(&[item("1.1", 5.0)]).expect("re-queue");
        }
        let q = PacsQueue::open(&path).expect("reopen");
        let all = q.all().expect("all");
        assert_eq!(
            all.iter()
                .map(|i| i.sop_instance.as_str())
                .collect::<Vec<_>>(),
            ["1.2", "1.1"]
        );
        assert_eq!(all[1].attempts, 3, "a re-queued result keeps its attempts");
        q.settle(&all[0], true).expect("stored");
        assert_eq!(q.len().expect("len"), 1);
        assert_eq!(backoff(1, 60.0), 2.0);
        assert_eq!(backoff(30, 60.0), 60.0);
    }
}
