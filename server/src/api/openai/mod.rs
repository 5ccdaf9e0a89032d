//! OpenAI's API: `/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings` (and LM Studio's `/api/v0/embeddings`), `/v1/models`.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod models;
