//! Ollama's API, for the tools that speak only it (Open WebUI, Continue,
//! the `ollama` Python and JS clients), on ferrite's port and optionally on
//! Ollama's own (`--ollama-port 11434`).
//!
//! # Layout
//! - `chat.rs`: `/api/chat` and `/api/generate` into chat requests;
//! - `answer.rs`: the chat road's chunks as Ollama's objects, NDJSON;
//! - `embed.rs`: `/api/embed` and `/api/embeddings`;
//! - `keep.rs`: `keep_alive`, as a TTL or an unload;
//! - `models.rs`: tags, show, ps, version, pull and delete;
//! - `names.rs`: Ollama's `name:tag` on ferrite's model ids.
//!
//! Wire types and the error shape are in `ferrite_openapi::ollama`.

pub mod answer;
pub mod chat;
pub mod embed;
pub mod keep;
pub mod models;
pub mod names;
