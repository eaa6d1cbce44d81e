//! The task that empties the PACS queue: due results go to PACS in one association at a time;
//! a success or warning status removes a result, anything else (PACS down, refused, a broken
//! association) counts an attempt and waits 2, 4, 8 … up to `max_backoff` seconds — on disk, so
//! an appliance restart neither forgets a result nor resets its backoff. At `max_attempts` a
//! `pacs_send_failed` event tells the reading room; sending goes on at the longest backoff, so a
//! PACS back after a long outage still gets everything.

use super::intake::Arrival;
use super::queue::{backoff, PacsQueue, Queued};
use super::scu::{self, Outgoing, Peer};
use crate::publish::message::{unix_seconds, EventKind};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Results sent in one association at most.
const BATCH: usize = 32;

#[derive(Clone, Debug)]
pub struct SenderSettings {
    pub peer: Peer,
    pub max_attempts: u32,
    pub max_backoff: f64,
}

/// Handle of the running sender: queue results and wake it.
#[derive(Clone)]
pub struct PacsSender {
    queue: Arc<PacsQueue>,
    wake: Arc<Notify>,
}

impl PacsSender {
    /// Starts the sender on `rt`; `notices` carries its events to the core loop.
    pub fn start(
        settings: SenderSettings,
        queue: PacsQueue,
        notices: SyncSender<Arrival>,
        rt: &tokio::runtime::Handle,
    ) -> PacsSender {
        let queue = Arc::new(queue);
        let wake = Arc::new(Notify::new());
        let waiting = queue.len().unwrap_or(0);
        tracing::info!(pacs = %settings.peer, waiting, "PACS sender started");
        rt.spawn(run(settings, queue.clone(), wake.clone(), notices));
        PacsSender { queue, wake }
    }

    /// Commits `items` to the queue, then wakes the sender.
    pub fn enqueue(&self, items: &[Queued]) -> Result<(), super::queue::QueueError> {
        self.queue.push(items)?;
        self.wake.notify_one();
        Ok(())
    }

    pub fn queue(&self) -> &PacsQueue {
        &self.queue
    }
}

async fn run(
    settings: SenderSettings,
    queue: Arc<PacsQueue>,
    wake: Arc<Notify>,
    notices: SyncSender<Arrival>,
) {
    loop {
        let now = unix_seconds();
        let all = match queue.all() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %crate::logging::Chain(&e), "PACS queue unreadable; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let due: Vec<Queued> = all
            .iter()
            .filter(|q| q.next_attempt_at <= now)
            .take(BATCH)
            .cloned()
            .collect();
        if due.is_empty() {
            let next = all
                .iter()
                .map(|q| q.next_attempt_at)
                .fold(f64::INFINITY, f64::min);
            let wait = (next - now).clamp(0.05, 30.0);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
            }
            continue;
        }
        let mut files = Vec::new();
        let mut items = Vec::new();
        for item in due {
            match Outgoing::of(&item.path) {
                Ok(f) => {
                    files.push(f);
                    items.push(item);
                }
                Err(reason) => {
                    // A result file removed from disk cannot be sent, ever: say so, drop it.
                    let reason = format!(
                        "result {} cannot be sent to PACS: {reason}",
                        item.path.display()
                    );
                    tracing::error!("{reason}");
                    notice(&notices, reason);
                    let _ = queue.settle(&item, true);
                }
            }
        }
        if files.is_empty() {
            continue;
        }
        let outcomes: Vec<scu::Outcome> = match scu::store(&settings.peer, &files).await {
            Ok(o) => o,
            Err(e) => {
                let reason = crate::logging::Chain(&e).to_string();
                vec![Err(reason); files.len()]
            }
        };
        let now = unix_seconds();
        for (mut item, outcome) in items.into_iter().zip(outcomes) {
            let failure = match outcome {
                Ok(code) if super::dimse::status::is_stored(code) => {
                    tracing::info!(
                        pacs = %settings.peer,
                        study = %item.study,
                        sop_instance = %item.sop_instance,
                        attempts = item.attempts + 1,
                        latency_ms = format!("{:.0}", (now - item.queued_at) * 1000.0),
                        "result stored in PACS"
                    );
                    if let Err(e) = queue.settle(&item, true) {
                        tracing::error!(error = %crate::logging::Chain(&e), "PACS queue: a stored result not removed (it is sent again)");
                    }
                    continue;
                }
                Ok(code) => format!("PACS answered status {code:#06x}"),
                Err(reason) => reason,
            };
            item.attempts += 1;
            item.next_attempt_at = now + backoff(item.attempts, settings.max_backoff);
            tracing::warn!(
                pacs = %settings.peer,
                file = %item.path.display(),
                attempts = item.attempts,
                retry_in_s = format!("{:.0}", item.next_attempt_at - now),
                reason = %failure,
                "result not stored in PACS"
            );
            if item.attempts == settings.max_attempts {
                notice(
                    &notices,
                    format!(
                        "result {} of study {} not stored in PACS {} after {} attempts: {failure}; still retrying every {:.0} s",
                        item.sop_instance, item.study, settings.peer, item.attempts, settings.max_backoff
                    ),
                );
            }
            item.last_error = Some(failure);
            if let Err(e) = queue.settle(&item, false) {
                tracing::error!(error = %crate::logging::Chain(&e), "PACS queue: attempt not recorded");
            }
        }
    }
}

fn notice(notices: &SyncSender<Arrival>, reason: String) {
    let _ = notices.try_send(Arrival::Notice {
        kind: EventKind::PacsSendFailed,
        reason,
    });
}
