//! One file: fetched into `<file>.incomplete` beside its target, resumed
//! with `Range` from where an earlier try stopped (from the start when the
//! server ignores the range), hashed as it is written, and renamed into
//! place only once its size and sha256 are right. A wrong checksum, a
//! cancel or a full disk leave nothing in the target's place. Disk writes
//! and hashing run on the blocking pool; the network on the async workers.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::{Hub, HubError, Resolved};

/// Why a file could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(
        "`{file}` arrived with sha256 {got}, not the {want} the Hub lists: it was not installed."
    )]
    Checksum {
        file: String,
        want: String,
        got: String,
    },
    #[error("`{file}` arrived with {got} bytes, not {want}.")]
    Size { file: String, want: u64, got: u64 },
    #[error("The disk is full: `{file}` needs {need} more bytes in {dir}.")]
    DiskFull {
        file: String,
        need: u64,
        dir: String,
    },
    #[error("No byte of `{0}` arrived for {1} seconds.")]
    Stalled(String, u64),
    #[error("The download was cancelled.")]
    Cancelled,
    #[error("Writing `{file}` failed: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

/// The `.incomplete` file beside `target`.
pub fn partial_of(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".incomplete");
    target.with_file_name(name)
}

/// What a fetch reports as it goes.
pub struct Progress {
    /// Bytes of this job on disk (resumed ones included).
    pub bytes: Arc<AtomicU64>,
    /// Bytes fetched over the network (what a resume saves shows here).
    pub fetched: Arc<AtomicU64>,
}

/// Fetches `resolved` into `target` (its folder exists).
pub async fn fetch(
    hub: &Hub,
    resolved: &Resolved,
    target: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
    stall: Duration,
) -> Result<(), FetchError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = partial_of(target);
    let io = |source| FetchError::Io {
        file: name.clone(),
        source,
    };
    // What an earlier try left, hashed again (off the async workers).
    let (have, hasher) = {
        let partial = partial.clone();
        let want = resolved.size;
        tokio::task::spawn_blocking(move || resume_state(&partial, want))
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?
    };
    if let Some(want) = resolved.size {
        ensure_room(target, want.saturating_sub(have), &name)?;
    }
    progress.bytes.fetch_add(have, Ordering::Relaxed);
    let response = hub.body(resolved, have).await?;
    let restart = have > 0 && response.status() == StatusCode::OK;
    let done_already = response.status() == StatusCode::RANGE_NOT_SATISFIABLE;
    let (have, hasher) = if restart {
        // The server ignored the range: the body starts from byte 0.
        progress.bytes.fetch_sub(have, Ordering::Relaxed);
        (0, Sha256::new())
    } else {
        (have, hasher)
    };
    // The writer: appends chunks and hashes them on the blocking pool.
    let (tx, rx) = mpsc::channel::<bytes::Bytes>(16);
    let writer = {
        let partial = partial.clone();
        tokio::task::spawn_blocking(move || write_all(&partial, have, hasher, rx))
    };
    let mut body = response.bytes_stream();
    let mut failure = None;
    if !done_already {
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(stall, body.next()) => next,
                () = cancel.cancelled() => {
                    failure = Some(FetchError::Cancelled);
                    break;
                }
            };
            let chunk = match next {
                Err(_) => {
                    failure = Some(FetchError::Stalled(name.clone(), stall.as_secs()));
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(source))) => {
                    failure = Some(
                        HubError::Network {
                            endpoint: resolved.url.to_string(),
                            source,
                        }
                        .into(),
                    );
                    break;
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let n = chunk.len() as u64;
            if tx.send(chunk).await.is_err() {
                break; // the writer failed: its error says why
            }
            progress.bytes.fetch_add(n, Ordering::Relaxed);
            progress.fetched.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("ferrite:download_bytes_total").increment(n);
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| io(std::io::Error::other(e)))?;
    let (size, digest) = match written {
        Ok(done) => done,
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(FetchError::DiskFull {
                file: name,
                need: resolved.size.unwrap_or(0),
                dir: target.parent().unwrap_or(target).display().to_string(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    match failure {
        // Cancelled on purpose: nothing is kept.
        Some(FetchError::Cancelled) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(FetchError::Cancelled);
        }
        // Cut short: what arrived stays, for the next try to resume.
        Some(e) => return Err(e),
        None => {}
    }
    if let Some(want) = resolved.size.filter(|&w| w != size) {
        if size > want {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        return Err(FetchError::Size {
            file: name,
            want,
            got: size,
        });
    }
    if let Some(want) = &resolved.sha256 {
        if !want.eq_ignore_ascii_case(&digest) {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(FetchError::Checksum {
                file: name,
                want: want.clone(),
                got: digest,
            });
        }
    }
    tokio::fs::rename(&partial, target).await.map_err(io)?;
    Ok(())
}

/// What is already in `partial` and its running hash; a file longer than
/// the whole starts over.
fn resume_state(partial: &Path, want: Option<u64>) -> std::io::Result<(u64, Sha256)> {
    let mut hasher = Sha256::new();
    let Ok(mut file) = File::open(partial) else {
        return Ok((0, hasher));
    };
    let len = file.metadata()?.len();
    if want.is_some_and(|w| len > w) {
        drop(file);
        std::fs::remove_file(partial)?;
        return Ok((0, hasher));
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0;
    while read < len {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
    }
    Ok((read, hasher))
}

/// Appends every chunk to `partial` from byte `from` on; the bytes on disk
/// and their sha256 when the body ends.
fn write_all(
    partial: &Path,
    from: u64,
    mut hasher: Sha256,
    mut rx: mpsc::Receiver<bytes::Bytes>,
) -> std::io::Result<(u64, String)> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(partial)?;
    file.set_len(from)?;
    file.seek(std::io::SeekFrom::Start(from))?;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut size = from;
    let mut started = from;
    while let Some(chunk) = rx.blocking_recv() {
        file.write_all(&chunk)?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if size - started >= WRITE_BACK {
            file.flush()?;
            write_back(file.get_ref(), started, size - started);
            started = size;
        }
    }
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Bytes after which the kernel is asked to start writing them out, so
/// that the `fsync` before the rename has little left to wait for.
const WRITE_BACK: u64 = 32 << 20;

/// Starts writing `len` bytes from `offset` to the disk, without waiting
/// (Linux; elsewhere the final fsync does it all).
#[cfg(not(target_os = "linux"))]
fn write_back(_file: &File, _offset: u64, _len: u64) {}

#[cfg(target_os = "linux")]
fn write_back(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range(2) on our own open descriptor; a failure only
    // leaves the work to the final fsync.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// A clear error before starting when the disk cannot hold `need` bytes.
fn ensure_room(target: &Path, need: u64, name: &str) -> Result<(), FetchError> {
    let dir = target.parent().unwrap_or(target);
    match free_bytes(dir) {
        Some(free) if free < need => Err(FetchError::DiskFull {
            file: name.to_string(),
            need,
            dir: dir.display().to_string(),
        }),
        _ => Ok(()),
    }
}

/// Bytes free to an unprivileged user on `dir`'s file system.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs(3) fills the struct from a NUL-terminated path.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it wrote the struct.
    let stat = unsafe { stat.assume_init() };
    // Their widths differ between systems (u32 on macOS).
    #[allow(clippy::unnecessary_cast)]
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}
