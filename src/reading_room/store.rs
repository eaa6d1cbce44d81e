//! The reading room's durable memory (redb, fsync on every commit): predictions (one row per
//! prediction id, so a re-delivery replaces its row), key-image montages, each appliance's last
//! status, events and the messages refused as invalid. Bounded: at most `max_predictions` rows
//! and nothing older than `max_age`; events and refusals keep their newest
//! [`Retention::max_events`]. Every write is committed before the MQTT message is acknowledged,
//! so a crash loses nothing the broker does not deliver again.

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sort key `"<created at, ms, 16 digits>|<prediction id>"` → the stored row (JSON).
const PREDICTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("predictions");
/// Prediction id → its sort key.
const BY_ID: TableDefinition<&str, &str> = TableDefinition::new("prediction_ids");
/// Montage SHA-256 → PNG.
const KEY_IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("key_images");
/// Montage SHA-256 → when it arrived (kept apart so that pruning never reads the PNGs).
const KEY_ARRIVALS: TableDefinition<&str, f64> = TableDefinition::new("key_image_arrivals");
/// Montage SHA-256 → the sort key of the prediction that refers to it.
const KEY_OWNERS: TableDefinition<&str, &str> = TableDefinition::new("key_image_owners");
/// Appliance id → its row (JSON).
const APPLIANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("appliances");
/// Arrival number → event row (JSON).
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Event id → its arrival number: a re-delivered event is kept once.
const EVENT_IDS: TableDefinition<&str, u64> = TableDefinition::new("event_ids");
/// Arrival number → refused message (JSON).
const INVALID: TableDefinition<u64, &[u8]> = TableDefinition::new("invalid");
/// Counters that outlive pruning ("invalid_total").
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// A key image that no prediction refers to yet is kept this long (it may arrive first).
const ORPHAN_KEY_IMAGE_S: f64 = 3600.0;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading-room store {path}")]
    Storage {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading-room store {path}: a stored row is not JSON: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// What the store keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retention {
    pub max_predictions: usize,
    pub max_age: Duration,
    /// Events kept, and refused messages listed (their count is kept forever).
    pub max_events: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_predictions: 10_000,
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_events: 1000,
        }
    }
}

/// A worklist row: the prediction as the appliance sent it, with what the reading room adds.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct PredictionRow {
    /// When the reading room received it (seconds since the Unix epoch).
    pub received_at: f64,
    /// Whether its key-image montage is here (`/api/key-images/<prediction_id>`).
    pub has_key_image: bool,
    pub prediction: Value,
}

impl PredictionRow {
    pub fn id(&self) -> &str {
        self.prediction["prediction_id"].as_str().unwrap_or("")
    }

    fn key_image_sha(&self) -> Option<&str> {
        self.prediction["key_images"]["sha256"].as_str()
    }
}

/// An appliance as the reading room last heard of it.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ApplianceRow {
    pub appliance_id: String,
    /// When its last status arrived (seconds since the Unix epoch).
    pub received_at: f64,
    /// Whether the broker delivered it as the retained status (at subscription), not live.
    pub retained: bool,
    pub status: Value,
}

/// An event, or a refused message, with its arrival number.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Logged {
    pub seq: u64,
    pub received_at: f64,
    pub body: Value,
}

/// Which worklist rows to list.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub appliance: Option<String>,
    /// Top class (`SCN` … `MET`).
    pub class: Option<String>,
    /// The prediction's `assessment` (`confident`, `uncertain`, `out_of_scope`); `none` for
    /// predictions without one.
    pub flag: Option<String>,
    /// At most this many (default 200, at most 1000).
    pub limit: Option<usize>,
    /// Only rows older than this sort key (the `next` of the previous page).
    pub before: Option<String>,
}

impl Filter {
    pub fn admits(&self, p: &Value) -> bool {
        let is = |want: &Option<String>, got: &Value| {
            want.as_deref()
                .filter(|w| !w.is_empty())
                .is_none_or(|w| got.as_str().unwrap_or("none") == w)
        };
        is(&self.appliance, &p["appliance_id"])
            && is(&self.class, &p["top_class"])
            && is(&self.flag, &p["assessment"])
    }
}

/// One page of the worklist.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub rows: Vec<PredictionRow>,
    /// The `before` of the next page, if there are more rows.
    pub next: Option<String>,
    /// Rows in the store (all appliances, unfiltered).
    pub total: u64,
}

pub struct Store {
    db: Database,
    path: PathBuf,
    retention: Retention,
    /// When orphan key images were last looked for (they are looked for once a minute).
    orphans_checked: std::sync::Mutex<f64>,
}

/// A message's `created_at` in seconds since the Unix epoch (0 when it does not parse).
fn made_at(message: &Value) -> f64 {
    message["created_at"]
        .as_str()
        .and_then(crate::publish::message::unix_seconds_of)
        .unwrap_or(0.0)
}

fn sort_key(p: &Value, received_at: f64) -> String {
    let created = p["created_at"]
        .as_str()
        .and_then(crate::publish::message::unix_seconds_of)
        .unwrap_or(received_at);
    let created_ms = (created * 1e3).round() as u64;
    format!(
        "{created_ms:016}|{}",
        p["prediction_id"].as_str().unwrap_or("")
    )
}

impl Store {
    /// Opens (or creates) the store. The page cache is kept small: the worklist reads a page of
    /// rows at a time, and the reading room must fit beside a browser.
    pub fn open(path: &Path, retention: Retention) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Storage {
                path: path.to_path_buf(),
                source: Box::new(e),
            })?;
        }
        let db = redb::Builder::new()
            .set_cache_size(16 << 20)
            .create(path)
            .map_err(|e| StoreError::Storage {
                path: path.to_path_buf(),
                source: Box::new(e),
            })?;
        let store = Store {
            db,
            path: path.to_path_buf(),
            retention,
            orphans_checked: std::sync::Mutex::new(f64::NEG_INFINITY),
        };
        // Create the tables, so that readers of an empty store find them.
        store.write(|tx| {
            tx.open_table(PREDICTIONS)?;
            tx.open_table(BY_ID)?;
            tx.open_table(KEY_IMAGES)?;
            tx.open_table(KEY_ARRIVALS)?;
            tx.open_table(KEY_OWNERS)?;
            tx.open_table(APPLIANCES)?;
            tx.open_table(EVENTS)?;
            tx.open_table(EVENT_IDS)?;
            tx.open_table(INVALID)?;
            tx.open_table(COUNTERS)?;
            Ok(())
        })?;
        Ok(store)
    }

    fn err(&self, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Storage {
            path: self.path.clone(),
            source: Box::new(e),
        }
    }

    fn corrupt(&self, e: serde_json::Error) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let out = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| self.err(e))
    }

    /// Keeps a validated prediction (replacing an earlier delivery of the same id) and applies
    /// the retention limits. Returns its row, or `None` when it is already older than `max_age`.
    pub fn put_prediction(
        &self,
        prediction: Value,
        received_at: f64,
    ) -> Result<Option<PredictionRow>, StoreError> {
        let key = sort_key(&prediction, received_at);
        let created_s = key[..16].parse::<f64>().unwrap_or(0.0) / 1e3;
        if received_at - created_s > self.retention.max_age.as_secs_f64() {
            return Ok(None);
        }
        let id = prediction["prediction_id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut row = PredictionRow {
            received_at,
            has_key_image: false,
            prediction,
        };
        let bytes_of = |row: &PredictionRow| serde_json::to_vec(row).unwrap_or_default();
        let row = self.write(|tx| {
            let mut rows = tx.open_table(PREDICTIONS)?;
            let mut ids = tx.open_table(BY_ID)?;
            if let Some(sha) = row.key_image_sha().map(str::to_string) {
                row.has_key_image = tx.open_table(KEY_IMAGES)?.get(sha.as_str())?.is_some();
                tx.open_table(KEY_OWNERS)?
                    .insert(sha.as_str(), key.as_str())?;
            }
            let old = ids.get(id.as_str())?.map(|k| k.value().to_string());
            if let Some(old) = old {
                let old_row = rows
                    .remove(old.as_str())?
                    .and_then(|v| serde_json::from_slice::<PredictionRow>(v.value()).ok());
                // A re-delivery naming another montage: the old one has no row any more.
                if let Some(old_sha) = old_row.as_ref().and_then(|r| r.key_image_sha()) {
                    if Some(old_sha) != row.key_image_sha() {
                        forget_key_image(tx, old_sha)?;
                    }
                }
            }
            rows.insert(key.as_str(), bytes_of(&row).as_slice())?;
            ids.insert(id.as_str(), key.as_str())?;
            Ok(row)
        })?;
        self.prune(received_at)?;
        Ok(Some(row))
    }

    /// Keeps a key-image montage; returns the row of the prediction it belongs to, if that is
    /// here already (it then has its key image).
    pub fn put_key_image(
        &self,
        sha256: &str,
        png: &[u8],
        received_at: f64,
    ) -> Result<Option<PredictionRow>, StoreError> {
        let row = self.write(|tx| {
            tx.open_table(KEY_IMAGES)?.insert(sha256, png)?;
            tx.open_table(KEY_ARRIVALS)?.insert(sha256, received_at)?;
            let owner = tx
                .open_table(KEY_OWNERS)?
                .get(sha256)?
                .map(|k| k.value().to_string());
            let Some(key) = owner else {
                return Ok(None);
            };
            let mut rows = tx.open_table(PREDICTIONS)?;
            let row = rows
                .get(key.as_str())?
                .and_then(|v| serde_json::from_slice::<PredictionRow>(v.value()).ok());
            let Some(mut row) = row else {
                return Ok(None);
            };
            row.has_key_image = true;
            let bytes = serde_json::to_vec(&row).unwrap_or_default();
            rows.insert(key.as_str(), bytes.as_slice())?;
            Ok(Some(row))
        })?;
        self.prune_orphans(received_at)?;
        Ok(row)
    }

    /// The montage PNG of a prediction.
    pub fn key_image(&self, prediction_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(row) = self.prediction(prediction_id)? else {
            return Ok(None);
        };
        let Some(sha) = row.key_image_sha() else {
            return Ok(None);
        };
        let tx = self.read()?;
        let table = tx.open_table(KEY_IMAGES).map_err(|e| self.err(e))?;
        let png = table.get(sha).map_err(|e| self.err(e))?;
        Ok(png.map(|v| v.value().to_vec()))
    }

    /// One prediction by id.
    pub fn prediction(&self, prediction_id: &str) -> Result<Option<PredictionRow>, StoreError> {
        let tx = self.read()?;
        let ids = tx.open_table(BY_ID).map_err(|e| self.err(e))?;
        let Some(key) = ids.get(prediction_id).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let rows = tx.open_table(PREDICTIONS).map_err(|e| self.err(e))?;
        let row = rows.get(key.value()).map_err(|e| self.err(e))?;
        row.map(|v| serde_json::from_slice(v.value()).map_err(|e| self.corrupt(e)))
            .transpose()
    }

    /// Worklist rows, newest first.
    pub fn predictions(&self, filter: &Filter) -> Result<Page, StoreError> {
        let limit = filter.limit.unwrap_or(200).clamp(1, 1000);
        let tx = self.read()?;
        let rows = tx.open_table(PREDICTIONS).map_err(|e| self.err(e))?;
        let total = rows.len().map_err(|e| self.err(e))?;
        let range = match filter.before.as_deref() {
            Some(before) => rows.range(..before),
            None => rows.range::<&str>(..),
        }
        .map_err(|e| self.err(e))?;
        let mut page = Vec::new();
        let mut next = None;
        for entry in range.rev() {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let row: PredictionRow =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt(e))?;
            if !filter.admits(&row.prediction) {
                continue;
            }
            if page.len() == limit {
                next = Some(k.value().to_string());
                break;
            }
            page.push(row);
        }
        // `next` names the first row not shown; the next page starts at it (inclusive), so
        // its `before` is that key with one more character.
        let next = next.map(|k| k + "\u{10FFFF}");
        Ok(Page {
            rows: page,
            next,
            total,
        })
    }

    /// Keeps an appliance's status. A live one always replaces the last (the last will is made
    /// when the appliance connects, so it is older than its heartbeats); a retained one only if
    /// it was made later than the one kept (a retained status delivered at a new subscription
    /// does not roll the panel back).
    pub fn put_status(
        &self,
        status: Value,
        retained: bool,
        received_at: f64,
    ) -> Result<Option<ApplianceRow>, StoreError> {
        let id = status["appliance_id"].as_str().unwrap_or("").to_string();
        let row = ApplianceRow {
            appliance_id: id.clone(),
            received_at,
            retained,
            status,
        };
        self.write(|tx| {
            let mut table = tx.open_table(APPLIANCES)?;
            let newer = match table.get(id.as_str())? {
                Some(_) if !row.retained => true,
                Some(old) => serde_json::from_slice::<ApplianceRow>(old.value())
                    .map(|old| made_at(&old.status) <= made_at(&row.status))
                    .unwrap_or(true),
                None => true,
            };
            if !newer {
                return Ok(None);
            }
            table.insert(
                id.as_str(),
                serde_json::to_vec(&row).unwrap_or_default().as_slice(),
            )?;
            Ok(Some(row))
        })
    }

    pub fn appliances(&self) -> Result<Vec<ApplianceRow>, StoreError> {
        let tx = self.read()?;
        let table = tx.open_table(APPLIANCES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (_, v) = entry.map_err(|e| self.err(e))?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| self.corrupt(e))?);
        }
        Ok(out)
    }

    /// Appends `body` to `table`, keeping the newest `max_events` and nothing older than
    /// `max_age`; `id` (an event's `event_id`) makes a re-delivery a no-op (`None`). With a
    /// `counter`, also counts it: the count after is returned beside the row (else 0).
    fn append(
        &self,
        table: TableDefinition<u64, &[u8]>,
        body: Value,
        received_at: f64,
        id: Option<&str>,
        counter: Option<&str>,
    ) -> Result<Option<(Logged, u64)>, StoreError> {
        let max = self.retention.max_events as u64;
        let cutoff = received_at - self.retention.max_age.as_secs_f64();
        self.write(|tx| {
            let mut ids = tx.open_table(EVENT_IDS)?;
            if let Some(id) = id {
                if ids.get(id)?.is_some() {
                    return Ok(None);
                }
            }
            let mut t = tx.open_table(table)?;
            let seq = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
            let row = Logged {
                seq,
                received_at,
                body,
            };
            t.insert(seq, serde_json::to_vec(&row).unwrap_or_default().as_slice())?;
            if let Some(id) = id {
                ids.insert(id, seq)?;
            }
            // The oldest go: beyond the count, or older than max_age.
            drop_oldest(&mut t, &mut ids, |k, old| {
                (seq >= max && k <= seq - max) || old.is_some_and(|o| o.received_at < cutoff)
            })?;
            let mut count = 0;
            if let Some(name) = counter {
                let mut counters = tx.open_table(COUNTERS)?;
                count = counters.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
                counters.insert(name, count)?;
            }
            Ok(Some((row, count)))
        })
    }

    /// Keeps an event; `None` when it is a re-delivery of one already kept.
    pub fn put_event(&self, event: Value, received_at: f64) -> Result<Option<Logged>, StoreError> {
        let id = event["event_id"].as_str().unwrap_or("").to_string();
        let id = (!id.is_empty()).then_some(id);
        Ok(self
            .append(EVENTS, event, received_at, id.as_deref(), None)?
            .map(|(row, _)| row))
    }

    /// Notes a refused message (its topic and the reason, never its content); returns the
    /// refusals counted in all, and the note.
    pub fn put_invalid(
        &self,
        topic: &str,
        reason: &str,
        received_at: f64,
    ) -> Result<(u64, Logged), StoreError> {
        let body = serde_json::json!({"topic": topic, "reason": reason});
        let logged = self.append(INVALID, body, received_at, None, Some("invalid_total"))?;
        // Without an id nothing is a re-delivery: the row is always there.
        logged
            .map(|(row, total)| (total, row))
            .ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                reason: "a refusal was not kept".into(),
            })
    }

    fn logged(
        &self,
        table: TableDefinition<u64, &[u8]>,
        limit: usize,
    ) -> Result<Vec<Logged>, StoreError> {
        let tx = self.read()?;
        let t = tx.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(|e| self.err(e))?.rev().take(limit) {
            let (_, v) = entry.map_err(|e| self.err(e))?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| self.corrupt(e))?);
        }
        Ok(out)
    }

    /// The newest events, newest first.
    pub fn events(&self, limit: usize) -> Result<Vec<Logged>, StoreError> {
        self.logged(EVENTS, limit)
    }

    /// How many messages were refused in all, and the newest refusals.
    pub fn invalid(&self, limit: usize) -> Result<(u64, Vec<Logged>), StoreError> {
        let tx = self.read()?;
        let counters = tx.open_table(COUNTERS).map_err(|e| self.err(e))?;
        let total = counters
            .get("invalid_total")
            .map_err(|e| self.err(e))?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok((total, self.logged(INVALID, limit)?))
    }

    /// Drops rows, events and refusals older than `max_age` (run periodically: they also age
    /// when nothing arrives).
    pub fn prune_aged(&self, now: f64) -> Result<(), StoreError> {
        self.prune(now)?;
        let cutoff = now - self.retention.max_age.as_secs_f64();
        for table in [EVENTS, INVALID] {
            self.write(|tx| {
                let mut t = tx.open_table(table)?;
                let mut ids = tx.open_table(EVENT_IDS)?;
                drop_oldest(&mut t, &mut ids, |_, old| {
                    old.is_some_and(|o| o.received_at < cutoff)
                })
            })?;
        }
        Ok(())
    }

    /// Drops the oldest rows beyond `max_predictions` and rows older than `max_age` (by their
    /// `created_at`), with their key images.
    fn prune(&self, now: f64) -> Result<(), StoreError> {
        let cutoff_ms = ((now - self.retention.max_age.as_secs_f64()).max(0.0) * 1e3) as u64;
        let cutoff = format!("{cutoff_ms:016}");
        let over = {
            let tx = self.read()?;
            let rows = tx.open_table(PREDICTIONS).map_err(|e| self.err(e))?;
            let len = rows.len().map_err(|e| self.err(e))? as usize;
            let oldest_is_old = rows
                .first()
                .map_err(|e| self.err(e))?
                .is_some_and(|(k, _)| k.value() < cutoff.as_str());
            if len <= self.retention.max_predictions && !oldest_is_old {
                return Ok(());
            }
            len.saturating_sub(self.retention.max_predictions)
        };
        self.write(|tx| {
            let mut rows = tx.open_table(PREDICTIONS)?;
            let mut ids = tx.open_table(BY_ID)?;
            let mut doomed = Vec::new();
            for (i, entry) in rows.iter()?.enumerate() {
                let (k, v) = entry?;
                if i >= over && k.value() >= cutoff.as_str() {
                    break;
                }
                let row: Option<PredictionRow> = serde_json::from_slice(v.value()).ok();
                doomed.push((k.value().to_string(), row));
            }
            for (key, row) in doomed {
                rows.remove(key.as_str())?;
                if let Some(row) = row {
                    ids.remove(row.id())?;
                    if let Some(sha) = row.key_image_sha() {
                        forget_key_image(tx, sha)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Drops key images that no prediction has referred to for an hour (theirs never came, or
    /// was dropped before they arrived); looked for at most once a minute.
    fn prune_orphans(&self, now: f64) -> Result<(), StoreError> {
        {
            let mut checked = self
                .orphans_checked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if now - *checked < 60.0 {
                return Ok(());
            }
            *checked = now;
        }
        self.write(|tx| {
            let owners = tx.open_table(KEY_OWNERS)?;
            let mut orphans = Vec::new();
            for entry in tx.open_table(KEY_ARRIVALS)?.iter()? {
                let (sha, at) = entry?;
                if now - at.value() > ORPHAN_KEY_IMAGE_S && owners.get(sha.value())?.is_none() {
                    orphans.push(sha.value().to_string());
                }
            }
            drop(owners);
            for sha in orphans {
                forget_key_image(tx, &sha)?;
            }
            Ok(())
        })
    }
}

/// Removes the first entries of an event or refusal table while `doomed(seq, entry)` holds
/// (with their event ids).
fn drop_oldest(
    t: &mut redb::Table<u64, &[u8]>,
    ids: &mut redb::Table<&str, u64>,
    doomed: impl Fn(u64, Option<&Logged>) -> bool,
) -> Result<(), redb::Error> {
    loop {
        let (k, old) = match t.first()? {
            Some((k, v)) => (k.value(), serde_json::from_slice::<Logged>(v.value()).ok()),
            None => return Ok(()),
        };
        if !doomed(k, old.as_ref()) {
            return Ok(());
        }
        t.remove(k)?;
        if let Some(id) = old.as_ref().and_then(|o| o.body["event_id"].as_str()) {
            ids.remove(id)?;
        }
    }
}

fn forget_key_image(tx: &redb::WriteTransaction, sha: &str) -> Result<(), redb::Error> {
    tx.open_table(KEY_IMAGES)?.remove(sha)?;
    tx.open_table(KEY_ARRIVALS)?.remove(sha)?;
    tx.open_table(KEY_OWNERS)?.remove(sha)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::message::sample_prediction;

    fn prediction(i: usize, created_at: &str) -> Value {
        let mut p = serde_json::to_value(sample_prediction(i)).expect("json");
        p["created_at"] = created_at.into();
        p
    }

    fn now() -> f64 {
        crate::publish::message::unix_seconds()
    }

    #[test]
    fn newest_first_one_row_per_id_filters_and_pages() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("rr.redb"), Retention::default()).expect("open");
        let t = now();
        for i in 0..5 {
            let created = humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + Duration::from_secs_f64(t - 100.0 + i as f64),
            )
            .to_string();
            let mut p = prediction(i, &created);
            if i == 2 {
                p["appliance_id"] = "other".into();
            }
            store.put_prediction(p.clone(), t).expect("put");
            // A re-delivery replaces its row.
            store.put_prediction(p, t).expect("put again");
        }
        let page = store.predictions(&Filter::default()).expect("list");
        assert_eq!(page.total, 5);
        let studies: Vec<_> = page
            .rows
            .iter()
            .map(|r| {
                r.prediction["study_instance_uid"]
                    .as_str()
                    .expect("uid")
                    .to_string()
            })
            .collect();
        assert_eq!(studies, ["2.25.4", "2.25.3", "2.25.2", "2.25.1", "2.25.0"]);
        let other = Filter {
            appliance: Some("other".into()),
            ..Filter::default()
        };
        assert_eq!(store.predictions(&other).expect("list").rows.len(), 1);
        let class = Filter {
            class: Some("SCN".into()),
            ..Filter::default()
        };
        assert!(store.predictions(&class).expect("list").rows.is_empty());
        let unflagged = Filter {
            flag: Some("none".into()),
            ..Filter::default()
        };
        assert_eq!(store.predictions(&unflagged).expect("list").rows.len(), 5);
        // Pages of two cover every row once.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .predictions(&Filter {
                    limit: Some(2),
                    before: before.clone(),
                    ..Filter::default()
                })
                .expect("page");
            seen.extend(page.rows.iter().map(|r| r.id().to_string()));
            match page.next {
                Some(n) => before = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), 5);
        seen.dedup();
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn retention_bounds_rows_age_and_events_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("rr.redb");
        let retention = Retention {
            max_predictions: 3,
            max_age: Duration::from_secs(3600),
            max_events: 2,
        };
        let t = now();
        {
            let store = Store::open(&path, retention).expect("open");
            let old = humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + Duration::from_secs_f64(t - 7200.0),
            )
            .to_string();
            assert!(store
                .put_prediction(prediction(99, &old), t)
                .expect("put")
                .is_none());
            for i in 0..5 {
                let created = humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + Duration::from_secs_f64(t - 10.0 + i as f64),
                )
                .to_string();
                let mut p = prediction(i, &created);
                p["key_images"] = serde_json::json!({"topic": "t", "content_type": "image/png",
                    "bytes": 3, "sha256": format!("sha{i}")});
                store.put_prediction(p, t).expect("put");
                store
                    .put_key_image(&format!("sha{i}"), b"png", t)
                    .expect("png");
            }
            for i in 0..4 {
                store
                    .put_event(serde_json::json!({"n": i}), t)
                    .expect("event");
                store
                    .put_invalid("ismf/x/predictions", "bad", t)
                    .expect("invalid");
            }
        }
        let store = Store::open(&path, retention).expect("reopen");
        let page = store.predictions(&Filter::default()).expect("list");
        assert_eq!(page.total, 3);
        assert!(page.rows.iter().all(|r| r.has_key_image));
        let first = page.rows[2].id().to_string();
        assert!(store.key_image(&first).expect("png").is_some());
        let dropped = sample_prediction(0).prediction_id;
        assert!(store.prediction(&dropped).expect("get").is_none());
        let events = store.events(10).expect("events");
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 2]);
        let (total, recent) = store.invalid(10).expect("invalid");
        assert_eq!((total, recent.len()), (4, 2));
    }

    #[test]
    fn a_live_status_replaces_the_last_and_an_older_retained_one_does_not() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("rr.redb"), Retention::default()).expect("open");
        let status = |state: &str, at: &str| serde_json::json!({"appliance_id": "box", "state": state, "created_at": at});
        store
            .put_status(status("online", "2026-01-01T00:00:02Z"), false, 1.0)
            .expect("put");
        // An older retained status (delivered at a new subscription) does not roll it back …
        assert!(store
            .put_status(status("offline", "2026-01-01T00:00:01Z"), true, 2.0)
            .expect("put")
            .is_none());
        assert_eq!(
            store.appliances().expect("list")[0].status["state"],
            "online"
        );
        // … but the last will, live, does: it was made at connect time, before the heartbeats.
        store
            .put_status(status("offline", "2026-01-01T00:00:00Z"), false, 3.0)
            .expect("put");
        let rows = store.appliances().expect("list");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status["state"], "offline");
    }
}
