//! The seam between the server pipeline and whatever runs the model.

use async_trait::async_trait;
use ferrite_openapi::chat::{ChatCompletionChunk, ChatRequest};
use ferrite_openapi::completions::{Completion, CompletionRequest};
use ferrite_openapi::models::ModelMeta;
use ferrite_openapi::{ApiError, ApiResult};
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

    /// How many tokens `text` is for this model (no special tokens). A
    /// runtime may answer a lower bound for a text longer than any context
    /// of the model could hold (it is over every budget either way).
    async fn count_tokens(&self, text: &str) -> ApiResult<usize>;

    /// The model's token ids for `text`; `special` adds the start token
    /// when the model uses one.
    async fn encode(&self, _text: &str, _special: bool) -> ApiResult<Vec<u32>> {
        Err(unsupported())
    }

    /// The text of `tokens`, special tokens included; an id outside the
    /// vocabulary is the request's fault.
    async fn decode(&self, _tokens: &[u32]) -> ApiResult<String> {
        Err(unsupported())
    }

    /// The prompt the model's chat template renders for `request`, up to
    /// where the assistant's answer begins.
    async fn render_prompt(&self, _request: &ChatRequest) -> ApiResult<String> {
        Err(unsupported())
    }

    /// One unit-length vector per input, in order, from an embedding model.
    async fn embed(&self, _inputs: Vec<EmbedInput>) -> ApiResult<Embedded> {
        Err(ApiError::invalid(
            "model",
            format!(
                "`{}` is a chat model; name an embedding model to make embeddings.",
                self.info().id
            ),
        ))
    }
}

/// One input to embed: text, or the model's token ids as they are.
#[derive(Debug, Clone)]
pub enum EmbedInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// Embeddings in input order, and the tokens they took.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: usize,
}

fn unsupported() -> ApiError {
    ApiError::unsupported("model", "This engine does not expose its tokenizer.")
}

/// 400 for a token id the vocabulary of `size` does not have.
pub fn check_ids(tokens: &[u32], size: Option<u32>) -> ApiResult<()> {
    match (tokens.iter().find(|&&t| size.is_some_and(|n| t >= n)), size) {
        (Some(bad), Some(n)) => Err(ApiError::invalid(
            "tokens",
            format!("Token id {bad} is not in this model's vocabulary of {n} tokens."),
        )),
        _ => Ok(()),
    }
}
