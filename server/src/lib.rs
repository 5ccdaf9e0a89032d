//! ferrite's HTTP server: the OpenAI, Anthropic, LM Studio, Ollama and management APIs over
//! the model registry and each model's chat pipeline. The `ferrite` binary
//! (crate `ferrite-cli`) runs it as `ferrite serve`.
//!
//! # Layout
//! From the top down; a room imports only from rooms below it
//! (`layers.rs` checks every `crate::` import against this order).
//! - `serve.rs`: start-up, background loading, graceful drain; `args.rs`:
//!   the flags.
//! - `app/`: the app: every room's routes and the OpenAPI document built
//!   from the same handlers (`routes.rs`), under one `ServiceBuilder`.
//! - `api/`: a room per API, each translating its wire format to and from
//!   the one chat road: `orchestrator/`, `ollama/`, `lmstudio_sdk/`
//!   (WebSockets per namespace), `lmstudio_rest/` (whose v0 chat streams as
//!   `openai/` does), `responses/`, `anthropic/`, `openai/`.
//! - `http/`: the shared plumbing: extractors, what a chat request carries
//!   besides its body (`accept.rs`), SSE framing, telemetry, listeners,
//!   and the server's own routes (health, metrics, docs, memory, aliases,
//!   tokens).
//! - `chat/`: the one road every chat request takes to a model
//!   (`generate.rs`), waiting on and folding its chunks (`stream.rs`), the
//!   per-model middleware pipeline (`pipeline.rs`), how an expert router
//!   answers (`experts.rs`), evaluating an alias's candidate
//!   (`evaluate.rs`), the context documents the orchestrator puts in its
//!   prompts and image URLs fetched for clients where allowed (`images.rs`).
//! - `state/`: what handlers share (`mod.rs`), the configured expert
//!   routers (`experts.rs`) and the files SDK clients prepare (`files.rs`).
//! - `versions/`: versioned aliases: their versions, promotion, rollback.
//! - `registry/`: which models exist, loading just in time, leases, TTLs
//!   and eviction.
//! - `downloads/`: models from the Hugging Face Hub into the models
//!   directory: the Hub's API, quantization picks, resumable verified
//!   fetches, the jobs.
//! - `logging.rs`: tracing set-up.
//! - `config/`: the config file, every section's type that is not the
//!   middleware's (`models.rs`, `downloads.rs`, `aliases.rs`, `images.rs`);
//!   it imports no room.

mod api;
mod app;
mod args;
mod chat;
mod config;
mod downloads;
mod http;
#[cfg(test)]
mod layers;
mod logging;
mod registry;
mod serve;
mod state;
mod versions;

pub use args::ServeArgs;
pub use config::Config;
pub use serve::run as serve;

/// The OpenAPI 3.1 document `/openapi.json` serves.
pub fn openapi_json() -> serde_json::Value {
    app::routes::document_json(&app::routes::document())
}
