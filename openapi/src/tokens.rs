//! llama-server's token routes, so that clients can count before they send:
//! `/tokenize`, `/detokenize` and `/apply-template`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /tokenize`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenizeRequest {
    /// ferrite extension: the model whose tokenizer to use (default: the
    /// loaded model, as for chat).
    #[serde(default)]
    pub model: Option<String>,
    pub content: String,
    /// Add the start token when the model uses one.
    #[serde(default)]
    pub add_special: bool,
    /// Each token with its text, instead of ids alone.
    #[serde(default)]
    pub with_pieces: bool,
}

/// A token and its text (invalid UTF-8 replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenPiece {
    pub id: u32,
    pub piece: String,
}

/// An id, or (with `with_pieces`) an id with its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Token {
    Id(u32),
    Piece(TokenPiece),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenizeResponse {
    pub tokens: Vec<Token>,
}

/// `POST /detokenize`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetokenizeRequest {
    /// ferrite extension: the model whose vocabulary to use.
    #[serde(default)]
    pub model: Option<String>,
    pub tokens: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetokenizeResponse {
    pub content: String,
}

/// `POST /apply-template` answers with the chat prompt a chat completion
/// request (its `messages` and `tools`) renders to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyTemplateResponse {
    pub prompt: String,
    /// ferrite extension: the template used (`gguf`, `model`, `override`,
    /// `file:PATH`, `lmstudio`, `default:chatml`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}
