//! `[downloads]`: the Hub ferrite fetches models from, and where they go.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[downloads]` in the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownloadConfig {
    /// The Hub: `HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// A token for gated and private repos: `HF_TOKEN`.
    pub token: Option<String>,
    /// Where models go: the registry's models directory.
    pub dir: Option<PathBuf>,
    /// The Hugging Face cache, looked in for files already fetched:
    /// `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub hf_cache: Option<PathBuf>,
    /// Seconds without a byte before a download fails (it resumes when
    /// started again).
    pub stall_secs: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            token: None,
            dir: None,
            hf_cache: None,
            stall_secs: 60,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl DownloadConfig {
    pub fn endpoint(&self) -> String {
        self.endpoint
            .clone()
            .or_else(|| env("HF_ENDPOINT"))
            .unwrap_or_else(|| "https://huggingface.co".into())
    }

    pub fn token(&self) -> Option<String> {
        self.token.clone().or_else(|| env("HF_TOKEN"))
    }

    pub fn hf_cache(&self) -> Option<PathBuf> {
        self.hf_cache
            .clone()
            .or_else(|| env("HF_HUB_CACHE").map(PathBuf::from))
            .or_else(|| env("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")))
    }
}
