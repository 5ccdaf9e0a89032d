//! Ollama's API (`/api/chat`, `/api/generate`, `/api/tags`, ...): its wire
//! types and its error shape, `{"error": "..."}`, as the `ollama` Python
//! and JS clients parse them. Durations are nanoseconds, as Ollama sends.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::ApiError;

/// The Ollama version ferrite answers as: the API of this release is what
/// the routes follow (clients gate features on it).
pub const VERSION: &str = "0.13.0";

/// The paths Ollama's API owns, for layers that answer before a handler
/// (authentication) in Ollama's error shape.
pub fn is_ollama_path(path: &str) -> bool {
    matches!(
        path,
        "/api/chat"
            | "/api/generate"
            | "/api/tags"
            | "/api/show"
            | "/api/ps"
            | "/api/version"
            | "/api/embed"
            | "/api/embeddings"
            | "/api/pull"
            | "/api/delete"
    )
}

/// Sampling and context options; others Ollama knows (`num_gpu`,
/// `mirostat`, ...) are accepted and ignored, as Ollama ignores what a
/// runner does not use.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::Options)]
pub struct Options {
    /// The context length the model is loaded with.
    pub num_ctx: Option<u32>,
    /// Tokens to generate; -1 (the default) and -2 mean until the model stops.
    pub num_predict: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub min_p: Option<f64>,
    pub repeat_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<Vec<String>>,
}

/// `keep_alive`: seconds, or a duration such as `"5m"`, `"1h30m"`; 0
/// unloads after the request, a negative value keeps the model loaded.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::KeepAlive)]
#[serde(untagged)]
pub enum KeepAlive {
    Seconds(f64),
    Duration(String),
}

/// `think`: on or off, or a level for models that take one.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::Think)]
#[serde(untagged)]
pub enum Think {
    On(bool),
    Level(String),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::ToolCallFunction)]
pub struct ToolCallFunction {
    pub name: String,
    /// An object, not a JSON string as in OpenAI's API.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::ToolCall)]
pub struct ToolCall {
    pub function: ToolCallFunction,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::Message)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Base64 images, for vision models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On a `tool` message: the tool whose result this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

/// What `/api/chat` and `/api/generate` share, taken out of either.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub model: String,
    pub stream: Option<bool>,
    pub options: Option<Options>,
    pub format: Option<Value>,
    pub keep_alive: Option<KeepAlive>,
    pub think: Option<Think>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
}

/// A request with the [`Common`] fields, declared in place rather than
/// `#[serde(flatten)]`ed: a flattened struct's errors lose the field's name.
macro_rules! with_common {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        pub struct $name {
            pub model: String,
            /// Streams NDJSON unless `false`.
            pub stream: Option<bool>,
            pub options: Option<Options>,
            /// `"json"`, or a JSON schema the answer must follow.
            #[schema(value_type = Option<serde_json::Value>)]
            pub format: Option<Value>,
            pub keep_alive: Option<KeepAlive>,
            pub think: Option<Think>,
            pub logprobs: Option<bool>,
            pub top_logprobs: Option<u32>,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            pub fn common(&mut self) -> Common {
                Common {
                    model: std::mem::take(&mut self.model),
                    stream: self.stream,
                    options: self.options.take(),
                    format: self.format.take(),
                    keep_alive: self.keep_alive.take(),
                    think: self.think.take(),
                    logprobs: self.logprobs,
                    top_logprobs: self.top_logprobs,
                }
            }
        }
    };
}

with_common! {
    #[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
    #[schema(as = ollama::ChatRequest)]
    pub struct ChatRequest {
        #[serde(default)]
        pub messages: Vec<Message>,
        /// OpenAI-style function tools.
        #[schema(value_type = Option<Vec<Object>>)]
        pub tools: Option<Vec<Value>>,
        /// ferrite extension (Ollama has none): OpenAI's `tool_choice`, to
        /// make a model call a tool (`"required"`, or one by name).
        pub tool_choice: Option<crate::chat::ToolChoice>,
    }
}

with_common! {
    #[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
    #[schema(as = ollama::GenerateRequest)]
    pub struct GenerateRequest {
        /// No prompt loads the model (or, with `keep_alive: 0`, unloads it).
        pub prompt: Option<String>,
        pub system: Option<String>,
        pub images: Option<Vec<String>>,
        /// The prompt as is, without the model's chat template.
        pub raw: Option<bool>,
        pub suffix: Option<String>,
    }
}

/// What the last object of an answer adds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Done)]
pub struct Done {
    /// `stop`, `length`, `load` or `unload`.
    pub done_reason: String,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u32,
    pub prompt_eval_duration: u64,
    pub eval_count: u32,
    pub eval_duration: u64,
}

/// One `/api/chat` object: a piece of the answer, or (with `done`) the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::ChatResponse)]
pub struct ChatResponse {
    pub model: String,
    pub created_at: String,
    pub message: Message,
    pub done: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Done>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Logprob>>,
}

/// One `/api/generate` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::GenerateResponse)]
pub struct GenerateResponse {
    pub model: String,
    pub created_at: String,
    pub response: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    pub done: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Done>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Logprob>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::TokenLogprob)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Logprob)]
pub struct Logprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<TokenLogprob>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Details)]
pub struct Details {
    pub parent_model: String,
    pub format: String,
    pub family: String,
    pub families: Vec<String>,
    pub parameter_size: String,
    pub quantization_level: String,
}

/// A model in `/api/tags`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Model)]
pub struct Model {
    pub name: String,
    pub model: String,
    pub modified_at: String,
    pub size: u64,
    pub digest: String,
    pub details: Details,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Tags)]
pub struct Tags {
    pub models: Vec<Model>,
}

/// A loaded model in `/api/ps`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Running)]
pub struct Running {
    pub name: String,
    pub model: String,
    pub size: u64,
    pub digest: String,
    pub details: Details,
    /// When the TTL unloads it (far in the future without one).
    pub expires_at: String,
    pub size_vram: u64,
    pub context_length: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Ps)]
pub struct Ps {
    pub models: Vec<Running>,
}

/// `/api/show`, `/api/delete`: a model by name (`name` is the older field).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::ModelName)]
pub struct ModelName {
    #[serde(default)]
    pub model: String,
    #[serde(default, skip_serializing)]
    pub name: String,
}

impl ModelName {
    pub fn get(&self) -> &str {
        if self.model.is_empty() {
            &self.name
        } else {
            &self.model
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Show)]
pub struct Show {
    pub modelfile: String,
    pub parameters: String,
    pub template: String,
    pub details: Details,
    #[schema(value_type = Object)]
    pub model_info: Value,
    /// `completion`, `embedding`, `vision`, `tools`.
    pub capabilities: Vec<String>,
    pub modified_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Version)]
pub struct Version {
    pub version: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::EmbedInput)]
#[serde(untagged)]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::EmbedRequest)]
pub struct EmbedRequest {
    pub model: String,
    pub input: EmbedInput,
    pub truncate: Option<bool>,
    pub dimensions: Option<u32>,
    pub keep_alive: Option<KeepAlive>,
    pub options: Option<Options>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::EmbedResponse)]
pub struct EmbedResponse {
    pub model: String,
    pub embeddings: Vec<Vec<f32>>,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u32,
}

/// The older `/api/embeddings`: one prompt, one vector.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::EmbeddingsRequest)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub prompt: String,
    pub keep_alive: Option<KeepAlive>,
    pub options: Option<Options>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::EmbeddingsResponse)]
pub struct EmbeddingsResponse {
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = ollama::PullRequest)]
pub struct PullRequest {
    #[serde(flatten)]
    pub name: ModelName,
    /// Streams progress lines unless `false`.
    pub stream: Option<bool>,
    /// Accepted and ignored: the Hub is reached as configured.
    pub insecure: Option<bool>,
}

/// One line of `/api/pull` progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::Progress)]
pub struct Progress {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

/// Ollama's error body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = ollama::ErrorBody)]
pub struct ErrorBody {
    pub error: String,
}

/// An [`ApiError`] answered in Ollama's shape, with the same status and
/// headers (`Retry-After`, rate limits).
pub struct OllamaError(pub ApiError);

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: self.0.message.clone(),
        })
        .into_response();
        let mut response = self.0.into_response();
        *response.body_mut() = body.into_body();
        response
    }
}

/// Ollama's error body, with every status these routes may send.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum OllamaErrors {
    /// Malformed JSON, a field of the wrong type, a prompt longer than the context.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Authentication is on and the Bearer key is missing or wrong.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key lacks a scope the route needs (`models:manage`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Unknown model.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body is larger than `http.max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A request or token budget is spent; `Retry-After` says when to retry.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The server is starting, draining or full.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Seconds of a `keep_alive` duration (`"5m"`, `"1h30m"`, `"10s"`,
/// `"-1"`, a number); negative means forever (`None`).
pub fn keep_alive_secs(keep: &KeepAlive) -> Result<Option<u64>, String> {
    let secs = match keep {
        KeepAlive::Seconds(s) => *s,
        KeepAlive::Duration(text) => parse_duration(text.trim()).ok_or_else(|| {
            format!("`{text}` is not a duration: use e.g. \"5m\", \"1h\" or \"30s\".")
        })?,
    };
    if !secs.is_finite() {
        return Err("`keep_alive` must be a finite number of seconds.".into());
    }
    Ok((secs >= 0.0).then(|| secs.ceil().min(u64::MAX as f64) as u64))
}

/// Go's duration syntax (what Ollama parses), or a bare number of seconds.
fn parse_duration(text: &str) -> Option<f64> {
    if let Ok(secs) = text.parse::<f64>() {
        return Some(secs);
    }
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, text),
    };
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit..];
    }
    Some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_reads_go_durations_and_numbers() {
        let d = |s: &str| keep_alive_secs(&KeepAlive::Duration(s.into()));
        assert_eq!(d("5m"), Ok(Some(300)));
        assert_eq!(d("1h30m"), Ok(Some(5400)));
        assert_eq!(d("10s"), Ok(Some(10)));
        assert_eq!(d("0"), Ok(Some(0)));
        assert_eq!(d("-1"), Ok(None));
        assert_eq!(d("-1m"), Ok(None));
        assert_eq!(keep_alive_secs(&KeepAlive::Seconds(0.0)), Ok(Some(0)));
        assert_eq!(keep_alive_secs(&KeepAlive::Seconds(-1.0)), Ok(None));
        assert!(d("soon").is_err());
        assert!(d("5x").is_err());
    }
}
