//! ferrite's HTTP server: the OpenAI, LM Studio and management APIs over
//! the model registry and each model's chat pipeline. The `ferrite` binary
//! (crate `ferrite-cli`) runs it as `ferrite serve`.
//!
//! # Layout
//! - `serve.rs`: start-up, background loading, graceful drain; `args.rs`
//!   and `config.rs`: the flags and the config file.
//! - `http/`: the axum app (`app.rs`, one `ServiceBuilder`), its routes,
//!   extractors, SSE framing, request metrics and the OpenAPI document.
//! - `chat/`: the one road every chat request takes to a model
//!   (`generate.rs`), the per-model middleware pipeline (`pipeline.rs`) and
//!   the expert routers (`experts.rs`), the context documents the
//!   orchestrator API (`http/routes/orchestrator.rs`) puts in its prompts,
//!   and image URLs fetched for clients where allowed (`images.rs`).
//! - `registry/`: which models exist, loading just in time, leases, TTLs
//!   and eviction.
//! - `downloads/`: models from the Hugging Face Hub into the models
//!   directory: the Hub's API, quantization picks, resumable verified
//!   fetches, the jobs.
//! - `api/`: the other APIs, a room each (`api/ollama/`: Ollama's).
//! - `sdk/`: LM Studio's SDK protocol (WebSockets per namespace) for
//!   `import lmstudio`, `@lmstudio/sdk` and `lms`; `files.rs` keeps the
//!   images its clients prepare.
//! - `versions/`: versioned aliases, evaluation, promotion and rollback.
//! - `state.rs`: what handlers share; `logging.rs`: tracing set-up.

mod api;
mod args;
mod chat;
mod config;
mod downloads;
mod http;
mod logging;
mod registry;
mod sdk;
mod serve;
mod state;
mod versions;

pub use args::ServeArgs;
pub use config::Config;
pub use serve::run as serve;

/// The OpenAPI 3.1 document `/openapi.json` serves.
pub fn openapi_json() -> serde_json::Value {
    http::openapi::document_json(&http::openapi::document())
}
