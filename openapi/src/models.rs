//! `/v1/models`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelObject>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    /// The base model of a LoRA adapter listed as a model (`base@adapter`),
    /// as vLLM lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// ferrite extension: what is loaded and which engine features are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ModelMeta>,
}

/// Facts about a model. Once loaded, every flag reports what is actually
/// active; before, the header's facts and the configured settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelMeta {
    /// `llm` (chat and completions) or `embeddings`, as LM Studio says.
    #[serde(default, rename = "type")]
    pub kind: ModelKind,
    /// The engine that serves it: `llama.cpp` or `mistral.rs`.
    #[serde(default)]
    pub runtime: String,
    pub format: String,
    pub path: String,
    pub architecture: Option<String>,
    pub quantization: Option<String>,
    /// The context in force: the tokens one request may hold (set at load
    /// time, at most what the model was trained for).
    pub context_length: u32,
    /// The context the model was trained for.
    #[serde(default)]
    pub max_context_length: u32,
    /// Weight file bytes (a folder's `*.safetensors` summed).
    pub size_bytes: u64,
    /// Where it runs (once loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_dtype: Option<String>,
    /// The in-situ quantization applied at load time, if any.
    pub isq: Option<String>,
    pub paged_attention: bool,
    pub prefix_cache: bool,
    pub continuous_batching: bool,
    pub max_seqs: u32,
    /// `loaded`, `loading` or `not-loaded` (LM Studio's words).
    pub state: String,
    /// The chat template in force, once loaded: `gguf` or `model` (the
    /// model's own), `override`, `file:PATH`, `lmstudio` (its per-model
    /// config), or `default:chatml` (the file has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// Whether it takes images (a vision projector is loaded, or found
    /// beside a model not loaded yet).
    #[serde(default)]
    pub vision: bool,
    /// The vision projector's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmproj: Option<String>,
}

/// What a model is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Llm,
    Embeddings,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::Embeddings => "embeddings",
        }
    }
}
