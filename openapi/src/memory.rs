//! `/v1/memory`: the caller's stored conversation memory.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One stored exchange: a prompt and the answer it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Memory {
    pub id: i64,
    /// Always `memory`.
    pub object: String,
    pub conversation: Option<String>,
    pub model: String,
    /// The user's message, as sent (before any memory was injected).
    pub prompt: String,
    pub answer: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Unix seconds.
    pub created_at: i64,
    /// Relevance to the query (higher is better); search results only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The quality score it was given, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
}

/// A quality score given to a stored exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Feedback {
    /// 0 (bad) to 1 (good).
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// `POST /v1/memory/{id}/feedback`: scores replace earlier ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub comment: Option<String>,
}

/// One line of `GET /v1/memory/export`: OpenAI's chat fine-tuning format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingExample {
    pub messages: Vec<TrainingMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingMessage {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// A page of memories, newest first, in OpenAI's cursor list shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Memory>,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub has_more: bool,
}

impl MemoryList {
    pub fn new(data: Vec<Memory>, has_more: bool) -> Self {
        Self {
            object: "list".into(),
            first_id: data.first().map(|m| m.id),
            last_id: data.last().map(|m| m.id),
            data,
            has_more,
        }
    }
}

/// The answer to a deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryDeleted {
    /// The deleted memory's id; absent when deleting all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// `memory.deleted`, or `memory.list.deleted` for all of them.
    pub object: String,
    pub deleted: usize,
}
