//! Context documents (a project briefing, say) placed in a system message:
//! read at start, and read again when a file changes, checked by its
//! modification time on each use.

use std::path::PathBuf;
use std::time::SystemTime;

use tokio::sync::Mutex;
use tracing::{info, warn};

struct Document {
    path: PathBuf,
    modified: Option<SystemTime>,
    text: String,
}

pub struct Documents {
    docs: Mutex<Vec<Document>>,
}

impl Documents {
    pub fn new(paths: &[PathBuf]) -> Self {
        let docs = paths
            .iter()
            .map(|p| Document {
                path: p.clone(),
                modified: None,
                text: String::new(),
            })
            .collect();
        Self {
            docs: Mutex::new(docs),
        }
    }

    /// Every document's text, each under its file name; a file that cannot
    /// be read is left out (and logged), not fatal.
    pub async fn text(&self) -> String {
        let mut docs = self.docs.lock().await;
        let mut out = String::new();
        for doc in docs.iter_mut() {
            let modified = tokio::fs::metadata(&doc.path)
                .await
                .and_then(|m| m.modified())
                .ok();
            if modified.is_none() {
                if doc.modified.take().is_some() || doc.text.is_empty() {
                    warn!(path = %doc.path.display(), "context document unreadable; left out");
                }
                doc.text.clear();
                continue;
            }
            if modified != doc.modified {
                match tokio::fs::read_to_string(&doc.path).await {
                    Ok(text) => {
                        info!(path = %doc.path.display(), bytes = text.len(), "context document read");
                        doc.text = text;
                        doc.modified = modified;
                    }
                    Err(e) => {
                        warn!(path = %doc.path.display(), "context document unreadable: {e}");
                        doc.text.clear();
                    }
                }
            }
            if !doc.text.trim().is_empty() {
                let name = doc.path.file_name().unwrap_or_default().to_string_lossy();
                out.push_str(&format!(
                    "<document name=\"{name}\">\n{}\n</document>\n",
                    doc.text.trim()
                ));
            }
        }
        out
    }

    pub async fn paths(&self) -> Vec<String> {
        self.docs
            .lock()
            .await
            .iter()
            .map(|d| d.path.display().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_file_is_read_again_and_a_missing_one_left_out() {
        let dir = std::env::temp_dir().join(format!("ferrite-docs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let brief = dir.join("brief.md");
        std::fs::write(&brief, "Project Kestrel ships in May.").unwrap();
        let docs = Documents::new(&[brief.clone(), dir.join("missing.md")]);
        let first = docs.text().await;
        assert!(first.contains("<document name=\"brief.md\">\nProject Kestrel ships in May."));
        assert!(!first.contains("missing"));
        // A later modification time: read again.
        std::fs::write(&brief, "Project Kestrel ships in June.").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&brief)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(docs.text().await.contains("June"));
        std::fs::remove_file(&brief).unwrap();
        assert_eq!(docs.text().await, "");
    }
}
