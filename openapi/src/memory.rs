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
