//! Where received instances land: each is streamed PDU by PDU into a temporary file under
//! `<state_dir>/received/.tmp` (never held whole in memory), fsync'd, then renamed to
//! `<state_dir>/received/<SOP Instance UID>.dcm` — only a complete instance ever has a name the
//! ingest engine sees. A partial file (an aborted association, a dead caller) is removed when its
//! [`Part`] is dropped, and leftovers of a crash are removed at start.

use dicom_object::meta::FileMetaTableBuilder;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum LandingError {
    #[error("received folder {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("only {free_mb} MB free in {path} (at least {min_mb} MB are kept free)")]
    DiskShort {
        path: PathBuf,
        free_mb: u64,
        min_mb: u64,
    },
    #[error("file meta information cannot be built: {0}")]
    Meta(String),
}

impl LandingError {
    /// Whether the failure is the disk's (answered `Out of resources`).
    pub fn is_disk_short(&self) -> bool {
        match self {
            LandingError::DiskShort { .. } => true,
            LandingError::Io { source, .. } => {
                matches!(
                    source.raw_os_error(),
                    Some(libc::ENOSPC) | Some(libc::EDQUOT)
                )
            }
            LandingError::Meta(_) => false,
        }
    }
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `s` is written by statvfs on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `s`.
    let s = unsafe { s.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// The received folder.
#[derive(Clone, Debug)]
pub struct Landing {
    dir: PathBuf,
    tmp: PathBuf,
    min_free: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LandingError + '_ {
    move |source| LandingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where received instances live: `<state_dir>/received` (the daemon also needs it with the
/// receiver off, to tell a received instance from a folder file when a study is finished).
pub fn received_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("received")
}

impl Landing {
    /// Creates `<state_dir>/received` and empties its temporary folder (partial files of a
    /// previous run were never acknowledged, so their callers still have them).
    pub fn open(state_dir: &Path, min_free: u64) -> Result<Landing, LandingError> {
        let dir = received_dir(state_dir);
        let tmp = dir.join(".tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(Landing { dir, tmp, min_free })
    }

    /// The instances already in the received folder (offered again at start: one renamed just
    /// before a crash may not be catalogued yet).
    pub fn stored(&self) -> Result<Vec<PathBuf>, LandingError> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let path = entry.map_err(io(&self.dir))?.path();
            if path.extension().is_some_and(|x| x == "dcm") {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Refuses when the disk holds less than the configured reserve (plus what is coming).
    pub fn check_room(&self, incoming: u64) -> Result<(), LandingError> {
        let free = free_bytes(&self.dir).map_err(io(&self.dir))?;
        if free < self.min_free.saturating_add(incoming) {
            return Err(LandingError::DiskShort {
                path: self.dir.clone(),
                free_mb: free / 1_000_000,
                min_mb: self.min_free / 1_000_000,
            });
        }
        Ok(())
    }

    /// Starts an instance: a temporary file with the Part-10 preamble and file meta information
    /// for `sop_class`/`sop_instance` in `transfer_syntax`, ready for the data set's bytes.
    pub async fn begin(
        &self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        caller: &str,
    ) -> Result<Part, LandingError> {
        self.check_room(0)?;
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_instance)
            .transfer_syntax(transfer_syntax)
            .implementation_class_uid(crate::simulate::dicom_writer::IMPLEMENTATION_CLASS_UID)
            .implementation_version_name("ISMF_EDGE_SCP")
            .source_application_entity_title(caller)
            .build()
            .map_err(|e| LandingError::Meta(e.to_string()))?;
        let mut head = vec![0u8; 128];
        head.extend_from_slice(b"DICM");
        meta.write(&mut head)
            .map_err(|e| LandingError::Meta(e.to_string()))?;
        let path = self.tmp.join(format!("{}.part", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&path).await.map_err(io(&path))?;
        let mut part = Part {
            file: Some(tokio::io::BufWriter::with_capacity(256 * 1024, file)),
            path,
            target: self.dir.join(format!("{sop_instance}.dcm")),
            bytes: 0,
        };
        part.write(&head).await?;
        Ok(part)
    }
}

/// An instance being received. Dropped unfinished, its temporary file is removed.
#[derive(Debug)]
pub struct Part {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    path: PathBuf,
    target: PathBuf,
    bytes: u64,
}

impl Part {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), LandingError> {
        if let Some(f) = self.file.as_mut() {
            f.write_all(bytes).await.map_err(io(&self.path))?;
            self.bytes += bytes.len() as u64;
        }
        Ok(())
    }

    /// Bytes written so far (with the file meta information).
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Flushes, fsyncs and renames the file to its final name (and fsyncs the folder, so the
    /// name survives a power cut). An instance already received under the same SOP Instance
    /// UID is kept as it is and this copy discarded: the catalog has the first. Returns the
    /// final path and whether it was new.
    pub async fn finish(mut self) -> Result<(PathBuf, bool), LandingError> {
        let Some(mut f) = self.file.take() else {
            return Err(LandingError::Meta("instance already finished".into()));
        };
        if tokio::fs::try_exists(&self.target).await.unwrap_or(false) {
            // A re-send: no need to make this copy durable (Drop removes it).
            return Ok((self.target.clone(), false));
        }
        f.flush().await.map_err(io(&self.path))?;
        let file = f.into_inner();
        file.sync_all().await.map_err(io(&self.path))?;
        drop(file);
        tokio::fs::rename(&self.path, &self.target)
            .await
            .map_err(io(&self.target))?;
        if let Some(dir) = self.target.parent() {
            if let Ok(d) = tokio::fs::File::open(dir).await {
                let _ = d.sync_all().await;
            }
        }
        Ok((self.target.clone(), true))
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        // After a successful rename nothing is left under the temporary name.
        self.file.take();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::dimse::{EXPLICIT_VR_LE, MR_IMAGE_STORAGE};

    #[test]
    fn a_short_disk_refuses_and_only_finished_instances_get_a_name() {
        let dir = tempfile::tempdir().expect("dir");
        let short = Landing::open(dir.path(), u64::MAX / 2).expect("open");
        let e = short.check_room(0).expect_err("short");
        assert!(
            e.is_disk_short() && e.to_string().contains("MB free"),
            "{e}"
        );
        let landing = Landing::open(dir.path(), 0).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let tmp = dir.path().join("received/.tmp");
        let count = |d: &Path| std::fs::read_dir(d).expect("dir").count();
        rt.block_on(async {
            let mut p = landing
                .begin(MR_IMAGE_STORAGE, "1.2.3", EXPLICIT_VR_LE, "X")
                .await
                .expect("begin");
            p.write(b"partial").await.expect("write");
            assert_eq!(count(&tmp), 1);
            drop(p);
            assert_eq!(count(&tmp), 0, "an unfinished instance leaves nothing");
            let p = landing
                .begin(MR_IMAGE_STORAGE, "1.2.3", EXPLICIT_VR_LE, "X")
                .await
                .expect("begin");
            let (path, new) = p.finish().await.expect("finish");
            assert!(new && path.ends_with("received/1.2.3.dcm"));
            let meta = dicom_object::OpenFileOptions::new()
                .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
                .open_file(&path);
            assert!(meta.is_ok(), "the file meta information reads back");
            let again = landing
                .begin(MR_IMAGE_STORAGE, "1.2.3", EXPLICIT_VR_LE, "X")
                .await
                .expect("begin");
            assert!(
                !again.finish().await.expect("finish").1,
                "a resend keeps the first copy"
            );
            assert_eq!(count(&tmp), 0);
        });
        // A restart removes what a crash left in the temporary folder.
        std::fs::write(tmp.join("x.part"), b"left").expect("leftover");
        Landing::open(dir.path(), 0).expect("reopen");
        assert_eq!(count(&tmp), 0);
    }
}
