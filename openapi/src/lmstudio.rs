//! LM Studio's REST API v0 (`/api/v0/...`): its model objects, and the
//! OpenAI bodies it extends with `stats`, `model_info` and `runtime`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::chat::ChatCompletion;
use crate::completions::Completion;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V0ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<V0Model>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V0Model {
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// `llm` (ferrite serves text models).
    #[serde(rename = "type")]
    pub kind: String,
    pub publisher: String,
    pub arch: String,
    /// `gguf` or `safetensors`.
    pub compatibility_type: String,
    pub quantization: String,
    /// `loaded` or `not-loaded`.
    pub state: String,
    pub max_context_length: u32,
    /// ferrite extension: the engine that serves it (`llama.cpp`, `mistral.rs`).
    pub runtime: String,
}

/// How the generation went, as LM Studio reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// Completion tokens over `generation_time`.
    pub tokens_per_second: f64,
    /// Seconds from the request to the first generated token.
    pub time_to_first_token: f64,
    /// Seconds from the first generated token to the last.
    pub generation_time: f64,
    /// `eosFound` (the model or a stop string ended it),
    /// `maxPredictedTokensReached`, `toolCalls`.
    pub stop_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    pub arch: String,
    pub quant: String,
    pub format: String,
    pub context_length: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Runtime {
    pub name: String,
    pub version: String,
    pub supported_formats: Vec<String>,
}

/// What a v0 response adds to the OpenAI body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V0Extras {
    pub stats: Stats,
    pub model_info: ModelInfo,
    pub runtime: Runtime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V0ChatCompletion {
    #[serde(flatten)]
    pub completion: ChatCompletion,
    #[serde(flatten)]
    pub extras: V0Extras,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V0Completion {
    #[serde(flatten)]
    pub completion: Completion,
    #[serde(flatten)]
    pub extras: V0Extras,
}

/// LM Studio's name for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> String {
    match finish_reason {
        Some("stop") => "eosFound",
        Some("length") => "maxPredictedTokensReached",
        Some("tool_calls") => "toolCalls",
        Some(other) => other,
        None => "userStopped",
    }
    .to_string()
}
