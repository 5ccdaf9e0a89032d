//! `[images]`: whether image URLs are fetched for clients.

use serde::{Deserialize, Serialize};

/// `[images]`: fetching image URLs for clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// Fetch `http(s)` image URLs (off: only data URLs are taken).
    pub fetch: bool,
    /// Seconds one fetch may take, connection to last byte.
    pub fetch_timeout_secs: u64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            fetch: false,
            fetch_timeout_secs: 10,
        }
    }
}
