//! OpenAI-compatible wire types for ferrite: requests, responses, streaming
//! chunks, the error object, and the checks every request passes first.

pub mod adapters;
pub mod aggregate;
pub mod aliases;
pub mod anthropic;
pub mod chat;
pub mod common;
pub mod completions;
pub mod conversations;
pub mod doc;
pub mod downloads;
pub mod embeddings;
pub mod error;
pub mod health;
pub mod lmstudio;
pub mod lmstudio_sdk;
pub mod manage;
pub mod memory;
pub mod models;
pub mod ollama;
pub mod orchestrator;
pub mod parse;
pub mod responses;
pub mod thinking;
pub mod tokens;
pub mod validate;

pub use error::{ApiError, ApiResult, ErrorBody, ErrorCode};
