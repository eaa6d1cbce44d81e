//! Finding files in the export folder that are ready to read.
//!
//! inotify (through notify) reports files as they appear, change, are renamed in or closed after
//! writing; a periodic full rescan catches what events miss, and `poll_only` relies on the rescan
//! alone for NFS/SMB shares where inotify sees nothing. A file is ready when it was closed after
//! writing, or when its size and mtime have not changed for `settle`. Hidden files and temporary
//! suffixes (`.part`, `.tmp`, …) wait until they are renamed. Symbolic links are followed only to
//! files inside the watched tree. Ready paths go out on a bounded channel: a slow consumer slows
//! the watcher down instead of growing memory.

use super::error::IngestError;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher as _};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Watcher settings.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub root: PathBuf,
    /// Rely on the periodic rescan only (network shares).
    pub poll_only: bool,
    pub rescan: Duration,
    /// How long size and mtime must stay unchanged for a file not seen closing.
    pub settle: Duration,
    /// File-name suffixes of files still being written.
    pub temporary_suffixes: Vec<String>,
}

impl WatchConfig {
    pub fn new(root: PathBuf) -> Self {
        WatchConfig {
            root,
            poll_only: false,
            rescan: Duration::from_secs(30),
            settle: Duration::from_secs(2),
            temporary_suffixes: [".part", ".tmp", ".partial", ".crdownload", ".filepart"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// A running watcher thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Asks the thread to stop and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
}

struct Pending {
    seen: Seen,
    since: Instant,
    closed: bool,
}

fn stat(path: &Path) -> Option<Seen> {
    let m = std::fs::metadata(path).ok()?;
    m.is_file().then(|| Seen {
        size: m.len(),
        mtime: m.modified().ok(),
    })
}

struct State {
    config: WatchConfig,
    canonical_root: PathBuf,
    pending: HashMap<PathBuf, Pending>,
    delivered: HashMap<PathBuf, Seen>,
}

impl State {
    /// Whether `path` is a file we should consider: not hidden, not temporary, and (if a
    /// symbolic link) pointing inside the tree.
    fn candidate(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
            return false;
        };
        if name.starts_with('.')
            || self
                .config
                .temporary_suffixes
                .iter()
                .any(|s| name.ends_with(s.as_str()))
        {
            return false;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
                Ok(target) if target.starts_with(&self.canonical_root) => true,
                _ => {
                    tracing::debug!(path = %path.display(), "symbolic link leaving the watched tree: ignored");
                    false
                }
            },
            Ok(m) => m.is_file(),
            Err(_) => false,
        }
    }

    fn touch(&mut self, path: PathBuf, closed: bool) {
        if !self.candidate(&path) {
            return;
        }
        let Some(seen) = stat(&path) else { return };
        if self.delivered.get(&path) == Some(&seen) {
            return;
        }
        let now = Instant::now();
        let p = self.pending.entry(path).or_insert(Pending {
            seen,
            since: now,
            closed: false,
        });
        if p.seen != seen {
            p.seen = seen;
            p.since = now;
        }
        p.closed |= closed;
    }

    fn rescan(&mut self) {
        let mut stack = vec![self.config.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(path),
                    Ok(_) => self.touch(path, false),
                    Err(_) => {}
                }
            }
        }
    }

    /// Paths that became ready, in a stable order.
    fn ready(&mut self) -> Vec<PathBuf> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (path, p) in self.pending.iter_mut() {
            match stat(path) {
                None => gone.push(path.clone()),
                Some(seen) if seen != p.seen => {
                    p.seen = seen;
                    p.since = now;
                }
                Some(_) if p.closed || now.duration_since(p.since) >= self.config.settle => {
                    out.push(path.clone())
                }
                Some(_) => {}
            }
        }
        for path in gone {
            self.pending.remove(&path);
        }
        out.sort();
        for path in &out {
            if let Some(p) = self.pending.remove(path) {
                self.delivered.insert(path.clone(), p.seen);
            }
        }
        out
    }
}

/// Starts watching; ready paths are sent on `ready` (blocking when it is full), as whatever the
/// consumer's queue carries (the daemon's queue also carries the DICOM receiver's arrivals).
pub fn spawn<T>(config: WatchConfig, ready: SyncSender<T>) -> Result<Watcher, IngestError>
where
    T: From<PathBuf> + Send + 'static,
{
    let canonical_root = std::fs::canonicalize(&config.root).map_err(|source| IngestError::Io {
        path: config.root.clone(),
        source,
    })?;
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let notifier = if config.poll_only {
        None
    } else {
        let mut w = notify::recommended_watcher(tx).map_err(|e| IngestError::Watch {
            path: config.root.clone(),
            reason: e.to_string(),
        })?;
        w.watch(&config.root, RecursiveMode::Recursive)
            .map_err(|e| IngestError::Watch {
                path: config.root.clone(),
                reason: e.to_string(),
            })?;
        Some(w)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("ismf-watch".into())
        .spawn(move || {
            let _keep_alive = notifier;
            let rescan_every = config.rescan;
            let mut state = State {
                config,
                canonical_root,
                pending: HashMap::new(),
                delivered: HashMap::new(),
            };
            state.rescan();
            let mut last_rescan = Instant::now();
            while !stop_flag.load(Ordering::SeqCst) {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(Ok(event)) => {
                        let closed = matches!(
                            event.kind,
                            EventKind::Access(AccessKind::Close(AccessMode::Write))
                        );
                        let relevant = closed
                            || matches!(
                                event.kind,
                                EventKind::Create(_)
                                    | EventKind::Modify(ModifyKind::Data(_))
                                    | EventKind::Modify(ModifyKind::Name(
                                        RenameMode::To | RenameMode::Both | RenameMode::Any
                                    ))
                                    | EventKind::Modify(ModifyKind::Any)
                            );
                        if relevant {
                            for p in event.paths {
                                if p.is_dir() {
                                    // A folder moved in: its files carry no events of their own.
                                    last_rescan = Instant::now() - rescan_every;
                                } else {
                                    state.touch(p, closed);
                                }
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "watch error; the rescan covers it"),
                    Err(RecvTimeoutError::Timeout) => {}
                    // Poll-only mode has no event source: pace the loop instead.
                    Err(RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                }
                if last_rescan.elapsed() >= rescan_every {
                    state.rescan();
                    last_rescan = Instant::now();
                }
                for path in state.ready() {
                    // Bounded hand-over: wait while the consumer is busy, but stay stoppable.
                    let mut item = T::from(path);
                    loop {
                        match ready.try_send(item) {
                            Ok(()) => break,
                            Err(TrySendError::Full(p)) => {
                                if stop_flag.load(Ordering::SeqCst) {
                                    return;
                                }
                                item = p;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            Err(TrySendError::Disconnected(_)) => return,
                        }
                    }
                }
            }
        })
        .map_err(|source| IngestError::Io {
            path: PathBuf::from("watch thread"),
            source,
        })?;
    Ok(Watcher {
        stop,
        handle: Some(handle),
    })
}
