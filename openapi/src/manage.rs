//! Model management, LM Studio's REST API v1 (`/api/v1/models...`): the
//! models on disk and their loaded instances, loading with progress, unloading.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V1ModelList {
    pub models: Vec<V1Model>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V1Model {
    /// `llm`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id requests use.
    pub key: String,
    pub display_name: String,
    pub publisher: String,
    pub architecture: Option<String>,
    pub quantization: Option<Quantization>,
    pub size_bytes: u64,
    /// `gguf` or `safetensors`.
    pub format: String,
    pub max_context_length: u32,
    /// Empty when not loaded; ferrite runs at most one instance per model.
    pub loaded_instances: Vec<LoadedInstance>,
    /// ferrite extension: other names requests may use.
    pub aliases: Vec<String>,
    /// ferrite extension: the weights' path.
    pub path: String,
    /// ferrite extension: the engine that serves it (`llama.cpp`, `mistral.rs`).
    pub runtime: String,
    /// ferrite extension: its LoRA adapters, each requested as `key@id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<V1Adapter>,
    /// What it takes besides text (LLMs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<V1Capabilities>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V1Capabilities {
    /// Images, through a vision projector.
    pub vision: bool,
}

/// A LoRA adapter served with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V1Adapter {
    /// The name requests use: `model@id`.
    pub key: String,
    pub path: String,
    /// The scale a request that gives none runs it with.
    pub scale: f32,
    /// `per_request` (llama.cpp switches it per step, with the model
    /// loaded) or `merged` (mistral.rs loads a model with it merged in).
    pub mode: String,
    /// The merged model's instance, when loaded (mistral.rs).
    pub loaded_instances: Vec<LoadedInstance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Quantization {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadedInstance {
    /// The instance id, the model key (one instance per model).
    pub id: String,
    pub config: InstanceConfig,
    /// ferrite extension: `loading` or `loaded`.
    pub status: String,
    /// ferrite extension: seconds since the last request finished (0 while in use).
    pub idle_seconds: f64,
    /// ferrite extension: the idle time-to-live; `null` means it stays loaded.
    pub ttl_seconds: Option<u64>,
    /// ferrite extension: seconds until the TTL unloads it, if idle that long.
    pub expires_in_seconds: Option<f64>,
    /// ferrite extension: requests running on it now.
    pub in_flight: usize,
    /// ferrite extension: resident weight bytes (the weight files' size).
    pub memory_bytes: u64,
    /// ferrite extension: how long loading took.
    pub load_time_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceConfig {
    pub context_length: u32,
}

/// `POST /api/v1/models/load`. LM Studio's llama.cpp-only knobs
/// (`flash_attention`, `eval_batch_size`...) are accepted and ignored, as
/// LM Studio does for its other engines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadRequest {
    pub model: String,
    /// Idle seconds before it unloads; absent keeps it loaded until evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Tokens of context to load it with (at most what it was trained for);
    /// a model loaded with another context is loaded again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 64)]
    pub context_length: Option<u32>,
    /// ferrite extension: answer with server-sent `model_load.*` events.
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub echo_load_config: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadResponse {
    /// `llm`.
    #[serde(rename = "type")]
    pub kind: String,
    pub instance_id: String,
    pub load_time_seconds: f64,
    /// `loaded`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_config: Option<InstanceConfig>,
}

/// One `model_load.progress` event of a streamed load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadProgress {
    /// `model_load.start`, `model_load.progress` or `model_load.end`.
    #[serde(rename = "type")]
    pub kind: String,
    pub model_instance_id: String,
    /// 0 to 1.
    pub progress: f64,
    /// What is happening: `waiting` (for room), `reading` (the weights), `initializing`.
    pub phase: String,
}

/// An event of a streamed load: progress, then the load response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LoadEvent {
    Progress(LoadProgress),
    Done(LoadResponse),
}

/// `POST /api/v1/models/unload`: one instance (LM Studio's `instance_id`,
/// or `model`), or `all`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnloadRequest {
    #[serde(default, alias = "model", skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnloadResponse {
    /// The instance unloaded (the first, with `all`).
    pub instance_id: Option<String>,
    /// ferrite extension: every instance unloaded.
    pub unloaded: Vec<String>,
}
