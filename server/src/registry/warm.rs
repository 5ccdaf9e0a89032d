//! Reading a model's weight files once before the engine maps them: the
//! engine then loads from the page cache, and the bytes read are a real
//! measure of load progress (mistral.rs reports none).

use std::io::Read;
use std::path::{Path, PathBuf};

fn weight_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x == "safetensors" || x == "gguf")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Reads every weight file, reporting the fraction read. Errors are left
/// for the loader, which words them better.
pub fn read_through(path: &Path, progress: impl Fn(f64)) {
    let files = weight_files(path);
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut done = 0u64;
    let mut buf = vec![0u8; 8 << 20];
    for file in files {
        let Ok(mut f) = std::fs::File::open(&file) else {
            continue;
        };
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            done += n as u64;
            if total > 0 {
                progress(done as f64 / total as f64);
            }
        }
    }
}
