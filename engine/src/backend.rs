//! The seam between the server pipeline and whatever runs the model.

use async_trait::async_trait;
use ferrite_openapi::chat::{ChatCompletionChunk, ChatRequest};
use ferrite_openapi::completions::{Completion, CompletionRequest};
use ferrite_openapi::models::ModelMeta;
use ferrite_openapi::ApiResult;
use futures::stream::BoxStream;

/// Chunks of one chat completion, in order; the last chunk carries `usage`
/// and no choices. An `Err` item ends the stream.
pub type ChatStream = BoxStream<'static, ApiResult<ChatCompletionChunk>>;

/// Chunks of one text completion, shaped like `text_completion` objects.
pub type CompletionStream = BoxStream<'static, ApiResult<Completion>>;

/// What a loaded model is and which engine features are really active.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub id: String,
    pub created: u64,
    pub meta: ModelMeta,
}

/// A text-generation backend. Implementations start generating when called
/// and stop as soon as the returned stream is dropped.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    fn info(&self) -> &ModelInfo;

    /// Runs a validated chat request.
    async fn chat(&self, request: ChatRequest) -> ApiResult<ChatStream>;

    /// Runs a validated text completion request.
    async fn complete(&self, request: CompletionRequest) -> ApiResult<CompletionStream>;

    /// How many tokens `text` is for this model (no special tokens).
    async fn count_tokens(&self, text: &str) -> ApiResult<usize>;
}
