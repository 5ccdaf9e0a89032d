//! Anthropic's Messages API, as its SDKs and Claude Code send it:
//! `POST /v1/messages` and `POST /v1/messages/count_tokens`, the message
//! object, the stream's events and Anthropic's error shape.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::validate::{Shape, ShapeNames};

/// What a messages request and a token count share: the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Prompt {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
}

impl Prompt {
    /// Anthropic's names for what a request's size is counted in.
    pub const NAMES: ShapeNames = ShapeNames {
        messages: "messages",
        content_parts: "messages[].content",
        tools: "tools",
        tool_calls: "messages[].content",
        images: "messages[].content",
    };

    /// How many messages, blocks, tools and tool uses it holds.
    pub fn shape(&self) -> Shape {
        let mut shape = Shape {
            messages: self.messages.len(),
            tools: self.tools.as_ref().map_or(0, Vec::len),
            ..Shape::default()
        };
        for m in &self.messages {
            if let Content::Blocks(blocks) = &m.content {
                shape.content_parts = shape.content_parts.saturating_add(blocks.len());
                let uses = blocks
                    .iter()
                    .filter(|b| matches!(b, Block::ToolUse { .. }))
                    .count();
                shape.tool_calls = shape.tool_calls.saturating_add(uses);
            }
        }
        shape
    }
}

/// `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessagesRequest {
    #[serde(flatten)]
    pub prompt: Prompt,
    /// Required, as in Anthropic's API.
    #[schema(minimum = 1)]
    pub max_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// Accepted and ignored (`user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// `POST /v1/messages/count_tokens`: the prompt alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CountTokensRequest {
    #[serde(flatten)]
    pub prompt: Prompt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CountTokensResponse {
    pub input_tokens: u32,
}

/// A string, or text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum System {
    Text(String),
    Blocks(Vec<TextBlock>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextBlock {
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
    /// Instructions mid-conversation (Claude Code sends its environment so).
    System,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub role: MessageRole,
    pub content: Content,
}

/// A string, or content blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

/// A content block in a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    /// Refused: ferrite's models read text.
    Image {
        #[schema(value_type = Object)]
        source: Value,
    },
    ToolUse {
        id: String,
        name: String,
        #[schema(value_type = Object)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
    /// Earlier thinking, sent back by clients; not shown to the model again.
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<TextBlock>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema object.
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    /// Some tool must be used.
    Any,
    Tool {
        name: String,
    },
    None,
}

/// Extended thinking: `budget_tokens` becomes ferrite's thinking budget;
/// with `adaptive` (and kinds ferrite does not know) the model thinks as it
/// would anyway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    Enabled {
        budget_tokens: u32,
    },
    Disabled,
    Adaptive,
    #[serde(other)]
    Other,
}

/// `effort` maps onto `reasoning_effort`; `format` onto a JSON schema
/// response format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputConfig {
    /// `low`, `medium`, `high`, `xhigh` or `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputFormat {
    JsonSchema {
        #[schema(value_type = Object)]
        schema: Value,
    },
}

/// The message object a non-streaming call returns (and `message_start`
/// carries, still empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageObject {
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    pub content: Vec<OutBlock>,
    pub model: String,
    /// `end_turn`, `max_tokens`, `stop_sequence` or `tool_use`.
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
    pub usage: MessageUsage,
}

/// A content block in an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutBlock {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
        /// Empty: ferrite does not sign thinking.
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[schema(value_type = Object)]
        input: Value,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// Anthropic's error body: `{"type":"error","error":{"type","message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnthropicErrorBody {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub error: AnthropicErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnthropicErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl AnthropicErrorBody {
    /// The same error in Anthropic's words: its type follows the status.
    pub fn of(e: &ApiError) -> Self {
        let kind = match e.status {
            400 | 405 | 408 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            _ => "api_error",
        };
        Self {
            kind: "error".into(),
            error: AnthropicErrorDetail {
                kind: kind.into(),
                message: e.message.clone(),
            },
        }
    }
}

/// An [`ApiError`] answered in Anthropic's shape, with the same status and
/// headers (`Retry-After`, rate limits).
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let body = Json(AnthropicErrorBody::of(&self.0)).into_response();
        let mut response = self.0.into_response();
        *response.body_mut() = body.into_body();
        response
    }
}

/// Anthropic's error body, with every status these routes may send.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AnthropicErrors {
    /// Malformed JSON, a field of the wrong type or out of range, a prompt
    /// longer than the context.
    #[response(status = 400)]
    BadRequest(AnthropicErrorBody),
    /// Authentication is on and the key (`x-api-key` or Bearer) is missing or wrong.
    #[response(status = 401)]
    Unauthorized(AnthropicErrorBody),
    /// Unknown model.
    #[response(status = 404)]
    NotFound(AnthropicErrorBody),
    /// The body is larger than `http.max_body_bytes`.
    #[response(status = 413)]
    TooLarge(AnthropicErrorBody),
    /// The body is not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(AnthropicErrorBody),
    /// A request or token budget is spent; `Retry-After` says when to retry.
    #[response(status = 429)]
    RateLimited(AnthropicErrorBody),
    /// The model is still loading, the server is full or draining.
    #[response(status = 503)]
    Unavailable(AnthropicErrorBody),
}

/// One event of a streamed message, its name repeated in `type`:
/// `message_start` (with `message`), `content_block_start` (with `index`
/// and `content_block`), `content_block_delta` (`index`, `delta`),
/// `content_block_stop` (`index`), `message_delta` (`delta`, `usage`),
/// `message_stop`, `ping`, or `error` (with `error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub content_block: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub delta: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub usage: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AnthropicErrorDetail>,
}
