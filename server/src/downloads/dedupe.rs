//! A file already on disk with the sha256 a download needs is hard-linked
//! into place instead of fetched again: one in the Hugging Face cache
//! (whose blobs are named by their sha256) or anywhere in the models
//! directory. Only files of the very size are read and hashed, and each
//! hash is remembered while the file is unchanged.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Hashes already computed, by path, while size and mtime hold.
#[derive(Default)]
pub struct Hashes {
    known: Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>,
}

impl Hashes {
    /// A file with `sha256` and `size` under `models` or in `hf_cache`
    /// (blocking: call on the blocking pool).
    pub fn find(
        &self,
        sha256: &str,
        size: u64,
        models: &Path,
        hf_cache: Option<&Path>,
    ) -> Option<PathBuf> {
        // A blob is named by its hash, but is read once to be sure.
        let cached = hf_cache.and_then(|cache| in_hf_cache(cache, sha256, size));
        if let Some(found) = cached.filter(|b| self.sha256(b).is_some_and(|h| h == sha256)) {
            return Some(found);
        }
        let mut candidates = Vec::new();
        same_size(models, size, 0, &mut candidates);
        candidates.into_iter().find(|path| {
            self.sha256(path)
                .is_some_and(|h| h.eq_ignore_ascii_case(sha256))
        })
    }

    /// Remembers what a download just verified.
    pub fn remember(&self, path: &Path, sha256: &str) {
        if let Ok(meta) = std::fs::metadata(path) {
            if let Ok(mtime) = meta.modified() {
                self.known
                    .lock()
                    .insert(path.to_path_buf(), (meta.len(), mtime, sha256.to_string()));
            }
        }
    }

    fn sha256(&self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let (len, mtime) = (meta.len(), meta.modified().ok()?);
        if let Some((l, m, hash)) = self.known.lock().get(path) {
            if *l == len && *m == mtime {
                return Some(hash.clone());
            }
        }
        let mut file = std::fs::File::open(path).ok()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let hash = hex::encode(hasher.finalize());
        self.known
            .lock()
            .insert(path.to_path_buf(), (len, mtime, hash.clone()));
        Some(hash)
    }
}

/// `models--owner--name/blobs/<sha256>` of any repo in the cache.
fn in_hf_cache(cache: &Path, sha256: &str, size: u64) -> Option<PathBuf> {
    std::fs::read_dir(cache)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("models--"))
        .map(|e| e.path().join("blobs").join(sha256.to_ascii_lowercase()))
        .find(|blob| std::fs::metadata(blob).is_ok_and(|m| m.is_file() && m.len() == size))
}

/// Regular files of exactly `size` bytes, three levels deep (LM Studio's
/// `publisher/repo/file`); links are not followed out of the folder.
fn same_size(dir: &Path, size: u64, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && depth < 2 && !entry.file_name().to_string_lossy().starts_with('.') {
            same_size(&path, size, depth + 1, out);
        } else if kind.is_file() && entry.metadata().is_ok_and(|m| m.len() == size) {
            out.push(path);
        }
    }
}

/// Hard-links `source` to `target` through a temporary name, so that the
/// target appears whole or not at all; false where the file systems differ.
pub fn link(source: &Path, target: &Path) -> bool {
    let staging = super::fetch::partial_of(target);
    let _ = std::fs::remove_file(&staging);
    if std::fs::hard_link(source, &staging).is_err() {
        return false;
    }
    std::fs::rename(&staging, target).is_ok()
}
