//! Getting models, LM Studio's REST API v1 (`POST /api/v1/models/download`
//! and its job status), with ferrite's additions for `ferrite get`: search,
//! the quantizations a repo offers, cancelling a job.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/models/download`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    /// `owner/repo`, `owner/repo:Q4_K_M`, or a Hugging Face link (to the
    /// repo, or to one of its files).
    pub model: String,
    /// `Q4_K_M`, `q8_0`...: any case. Default: Q4_K_M, then Q8_0, then the
    /// first GGUF.
    #[serde(default)]
    pub quantization: Option<String>,
}

/// A download job as LM Studio reports it, with ferrite's fields after.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DownloadStatus {
    /// Absent when `status` is `already_downloaded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// `downloading`, `completed`, `failed` or `already_downloaded`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<f64>,
    /// ISO 8601, while downloading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_completion: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// ferrite extension: why it failed (cancelled ones say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// ferrite extension: `owner/repo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// ferrite extension: the quantization being fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// ferrite extension: the key requests use once it is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_key: Option<String>,
    /// ferrite extension: where the model's (first) file lies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// ferrite extension: bytes that came over the network (less than
    /// `downloaded_bytes` when a file resumed or was linked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_bytes: Option<u64>,
    /// ferrite extension: the repo's commit the files came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// `GET /api/v1/models/download/search`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to look for.
    pub query: String,
    /// At most this many (1-100, default 20).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// `owner/repo`.
    pub id: String,
    pub downloads: u64,
    pub likes: u64,
    /// Whether the repo holds GGUF files (these come first).
    pub gguf: bool,
}

/// `GET /api/v1/models/download/options`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OptionsQuery {
    /// `owner/repo` or a Hugging Face link.
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DownloadOptions {
    /// `owner/repo`.
    pub model: String,
    /// Smallest first; one is `recommended` (what a download without a
    /// quantization gets).
    pub options: Vec<DownloadOption>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DownloadOption {
    pub quantization: String,
    /// Every file it takes, the projector included.
    pub size_bytes: u64,
    pub files: Vec<String>,
    pub recommended: bool,
}
