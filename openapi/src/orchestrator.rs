//! The orchestrator API of the desktop system ferrite replaces (`/chat`,
//! `/chat/stream`, `/conversation`, `/generate`, `/health`, `/info`, under
//! a configurable prefix), as its clients send and read it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::Usage;

/// `POST /chat` and `POST /chat/stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorChat {
    pub message: String,
    /// Context for this message only: text, or any JSON (sent as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// The answer of `POST /chat`, and the last event of `/chat/stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorReply {
    pub response: String,
    pub model: String,
    pub conversation: String,
    pub usage: Usage,
}

/// One event of `POST /chat/stream`: text as it comes, then the whole reply
/// (`done: true`), or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OrchestratorEvent {
    Delta {
        delta: String,
    },
    Done {
        done: bool,
        #[serde(flatten)]
        reply: OrchestratorReply,
    },
}

/// One turn of the caller's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// Unix seconds.
    pub timestamp: i64,
}

/// `GET /conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub conversation: String,
    pub messages: Vec<Turn>,
}

/// `DELETE /conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationCleared {
    pub status: String,
    /// Exchanges forgotten.
    pub deleted: usize,
}

/// `POST /generate`: a raw prompt, no chat template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateReply {
    pub text: String,
    pub model: String,
    pub usage: Usage,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorHealth {
    /// `ok`, or `loading` until the model is ready.
    pub status: String,
    pub model: String,
}

/// `GET /info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorInfo {
    pub name: String,
    pub version: String,
    pub model: String,
    pub context_length: u32,
    /// The context documents in the system message, by path.
    pub documents: Vec<String>,
    pub conversation: String,
}
