//! `/v1/chat/completions`: request, response and streaming chunk objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::adapters::AdapterChoice;
use crate::common::{Logprobs, StopSequences, StreamOptions, Usage};
use crate::thinking::{ReasoningEffort, RoundReport, ThinkingOptions};

/// An OpenAI chat completion request, plus the sampling extensions LM Studio
/// and llama.cpp accept (`top_k`, `min_p`, `repeat_penalty`).
///
/// Fields OpenAI defines but ferrite cannot honour are parsed so that they can
/// be rejected by name instead of silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// Model id; LM Studio scripts omit it, which selects the loaded model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_p: Option<f64>,
    /// `-1` means "until the context is full", as in LM Studio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1)]
    pub max_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -2.0, maximum = 2.0)]
    pub presence_penalty: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -2.0, maximum = 2.0)]
    pub frequency_penalty: Option<f32>,
    #[serde(
        default,
        alias = "repetition_penalty",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(exclusive_minimum = 0.0, maximum = 10.0)]
    pub repeat_penalty: Option<f32>,
    /// Token id (as a string, like OpenAI) to a bias in [-100, 100].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<BTreeMap<String, f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16)]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 20)]
    pub top_logprobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    // OpenAI fields parsed only to be refused by name; the OpenAPI document
    // leaves them out, since no value is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub audio: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub modalities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub prediction: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub web_search_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub functions: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub function_call: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub store: Option<bool>,
    /// LM Studio's speculative-decoding option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub draft_model: Option<String>,

    // ferrite extensions.
    /// ferrite extension: `false` turns conversation memory off for this
    /// request (no retrieval, no storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<bool>,
    /// ferrite extension: `false` bypasses the response cache for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// Thinking budget, mapped to `thinking.max_tokens` by configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// ferrite extension: thinking budgets and multi-round thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingOptions>,
    /// LM Studio's idle time-to-live in seconds for the model this request
    /// loads (or keeps loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// ferrite extension: LoRA adapters of the model's registry entry to
    /// apply, with scales (`"model": "base@adapter"` names them too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapters: Option<Vec<AdapterChoice>>,
    /// The context, in tokens, the model should be loaded with (LM Studio's
    /// `context_length`): a model resident with another is loaded again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 64)]
    pub context_length: Option<u32>,
    /// ferrite extension: what to do with a prompt longer than the context
    /// (default: the server's `long_context.policy`, else `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_overflow: Option<ContextOverflow>,
    /// ferrite extension: with `context_overflow: "memagent"`, return the
    /// final memory in `ferrite.memagent.memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_memory: Option<bool>,
    /// ferrite extension (vLLM's name): the last message, the assistant's,
    /// is continued instead of being followed by a new turn, as Anthropic's
    /// prefill and LM Studio's "Continue". The answer holds only what is
    /// added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_final_message: Option<bool>,

    /// Who is asking and what their headers said; set by the server, never
    /// read from the body.
    #[serde(skip)]
    pub context: CallContext,
}

/// What the server knows about a chat call besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// The authenticated caller: memory and budgets are kept per tenant.
    pub tenant: String,
    /// `x-ferrite-conversation`, else the request's `user`.
    pub conversation: Option<String>,
    /// `Cache-Control: no-cache`: generate afresh (the result is stored).
    pub no_cache: bool,
    /// `Cache-Control: no-store`: neither read nor write the cache.
    pub no_store: bool,
    /// `x-ferrite-memory: off`.
    pub no_memory: bool,
    /// `x-ferrite-debug: true`: responses explain what the layers did.
    pub debug: bool,
    /// Sent by the server itself (cache precompute), not by a client.
    pub precompute: bool,
    /// Its answer may serve any tenant from the response cache (the
    /// server's own precomputed prompts).
    pub shared_cache: bool,
    /// `max_tokens` is an upper bound, cut to what the context leaves
    /// (Anthropic's `max_tokens`, the Responses API's `max_output_tokens`:
    /// their clients send the largest value a model might take).
    pub max_tokens_is_cap: bool,
    /// The caller holds `models:manage`: its `context_length` may reload
    /// a model, its adapter scales build a merged model.
    pub manage_models: bool,
}

impl Default for CallContext {
    fn default() -> Self {
        Self {
            tenant: "default".into(),
            conversation: None,
            no_cache: false,
            no_store: false,
            no_memory: false,
            debug: false,
            precompute: false,
            shared_cache: false,
            max_tokens_is_cap: false,
            manage_models: false,
        }
    }
}

/// ferrite's additions to a response (`ferrite` field): what the pipeline did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseExtension {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    /// Each round's answer (`thinking.return_rounds`), the last one last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<Vec<RoundReport>>,
    /// Which model a router picked, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteReport>,
    /// The prompt did not fit the context: what the overflow policy did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memagent: Option<MemAgentReport>,
}

impl ResponseExtension {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.rounds.is_none()
            && self.route.is_none()
            && self.context.is_none()
            && self.memagent.is_none()
    }

    /// Fields set in `other` win.
    pub fn merge(&mut self, other: ResponseExtension) {
        if other.memory.is_some() {
            self.memory = other.memory;
        }
        if other.rounds.is_some() {
            self.rounds = other.rounds;
        }
        if other.route.is_some() {
            self.route = other.route;
        }
        if other.context.is_some() {
            self.context = other.context;
        }
        if other.memagent.is_some() {
            self.memagent = other.memagent;
        }
    }
}

/// What happens to a prompt longer than the model's context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContextOverflow {
    /// 400 `context_length_exceeded` (OpenAI's behaviour).
    #[default]
    Error,
    /// Keep the system messages, the first user turn and the latest turns;
    /// drop whole turns from the middle.
    TruncateMiddle,
    /// Drop the oldest turns (never a system message).
    RollingWindow,
    /// Read the overflowing turns in chunks into a bounded memory, then
    /// answer from it (MemAgent, Yu et al. 2025).
    Memagent,
}

impl ContextOverflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::TruncateMiddle => "truncate_middle",
            Self::RollingWindow => "rolling_window",
            Self::Memagent => "memagent",
        }
    }
}

/// A prompt that did not fit, and what was done about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContextReport {
    /// `truncate_middle`, `rolling_window` or `memagent`.
    pub policy: String,
    /// The model's context length.
    pub context_length: u32,
    /// Prompt tokens before the policy applied.
    pub prompt_tokens: u32,
    /// Messages left out (truncation) or read into memory (MemAgent).
    pub dropped_messages: usize,
    /// Their tokens.
    pub dropped_tokens: u32,
    /// Times the answer filled the window and went on past it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shifts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// MemAgent's reading of the overflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemAgentReport {
    /// Chunks read, in order.
    pub chunks: usize,
    /// The memory the answer was written from (`return_memory: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// The past exchanges injected into the prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryReport {
    /// How many memories were injected.
    pub used: usize,
    /// Their ids, as listed by `GET /v1/memory`.
    pub ids: Vec<i64>,
    /// The injected text, with `x-ferrite-debug: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn include_usage(&self) -> bool {
        self.is_stream()
            && self
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    /// OpenAI's newer name for `system`.
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// The role name chat templates know.
    pub fn template_name(self) -> &'static str {
        match self {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(MessageContent::Text(content.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
        }
    }
}

/// A message body: a string, or an array of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text, its text parts joined by newlines.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(t) => t.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

impl ChatRequest {
    /// The messages a template renders, and the text the answer continues
    /// from right after the assistant's turn opens (with
    /// `continue_final_message`, the last message's).
    pub fn prompt_parts(&self) -> (&[ChatMessage], Option<String>) {
        match self.messages.split_last() {
            Some((last, before)) if self.continue_final_message == Some(true) => (
                before,
                Some(
                    last.content
                        .as_ref()
                        .map(MessageContent::text)
                        .unwrap_or_default(),
                ),
            ),
            _ => (&self.messages, None),
        }
    }
}

/// `Some(true)` when the chat ends in the assistant's text: Anthropic and
/// Ollama continue such a message (a "prefill") instead of answering it.
pub fn prefill(messages: &[ChatMessage]) -> Option<bool> {
    let last = messages.last()?;
    (last.role == Role::Assistant && last.tool_calls.is_none()).then_some(true)
}

/// The text of the last user message: what the exchange is about.
pub fn last_user_text(messages: &[ChatMessage]) -> Option<String> {
    let m = messages.iter().rev().find(|m| m.role == Role::User)?;
    let text = m.content.as_ref()?.text();
    (!text.trim().is_empty()).then_some(text)
}

/// An `image_url` part's URL: `{"url": "..."}`, or a bare string as some
/// clients send.
pub fn image_url_of(image_url: &Value) -> Option<&str> {
    image_url
        .get("url")
        .or(Some(image_url))
        .and_then(|u| u.as_str())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        #[schema(value_type = Object)]
        image_url: Value,
    },
    InputAudio {
        #[schema(value_type = Object)]
        input_audio: Value,
    },
    File {
        #[schema(value_type = Object)]
        file: Value,
    },
    Refusal {
        refusal: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolDefinition {
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: FunctionDefinition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolKind {
    Function,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `"none" | "auto" | "required"` or `{"type":"function","function":{"name":...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    None,
    Auto,
    Required,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: NamedFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NamedFunction {
    pub name: String,
}

/// A tool call made by the assistant, in a message or a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    pub name: String,
    /// JSON-encoded arguments, as OpenAI sends them.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A `chat.completion` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    pub system_fingerprint: Option<String>,
    /// ferrite extension: what the middleware did (memory used, cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ferrite: Option<ResponseExtension>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<Logprobs>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssistantMessage {
    pub role: String,
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// A `chat.completion.chunk` object, as sent in each SSE event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: Option<String>,
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// ferrite extension: what the middleware did; on the first chunk, and
    /// on the usage chunk for what is known only at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ferrite: Option<ResponseExtension>,
    /// Progress sent as an SSE comment line instead of a chunk (multi-round
    /// thinking); never in a JSON body.
    #[serde(skip)]
    pub comment: Option<String>,
}

impl ChatCompletionChunk {
    /// A comment before any chunk exists (e.g. while the model loads).
    pub fn note(model: &str, text: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            object: "chat.completion.chunk".into(),
            created: crate::common::unix_now(),
            model: model.into(),
            system_fingerprint: None,
            choices: Vec::new(),
            usage: None,
            ferrite: None,
            comment: Some(text.into()),
        }
    }

    /// A chunk that only carries an SSE comment.
    pub fn comment(like: &ChatCompletionChunk, text: impl Into<String>) -> Self {
        Self {
            choices: Vec::new(),
            usage: None,
            ferrite: None,
            comment: Some(text.into()),
            ..like.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<Logprobs>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A router's decision: the model that answered, the route, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RouteReport {
    /// The virtual model the request named.
    pub router: String,
    /// The route chosen, or `default` below the confidence threshold.
    pub route: String,
    /// The model that answered.
    pub model: String,
    /// The classifier's confidence in `route`, 0 to 1.
    pub confidence: f64,
    /// What matched: a keyword, a pattern, a similar example, or the threshold.
    pub reason: String,
    /// Candidates that failed before `model` answered, with their errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<RouteFallback>,
    /// The model that reviewed the specialist's answer, when review is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    /// The specialist whose answer was reviewed, when review is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialist: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RouteFallback {
    pub model: String,
    pub error: String,
}
