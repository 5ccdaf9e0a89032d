//! The chat pipeline's parts: a `tower::Service<ChatRequest>` whose innermost
//! service is the engine (`service.rs`), and one Layer and Service per
//! feature, each with its tests beside it. The server stacks them with one
//! `ServiceBuilder` per model (auth is an HTTP layer: it runs before the
//! body is read).
//!
//! # Layout
//! - `service.rs`: `ChatResponse`, `ChatService`, `EngineService`.
//! - Layers: `budget.rs` (with `token_budget.rs`; `budget_store.rs` keeps
//!   the windows in PostgreSQL for replicas), `memory.rs` (stores in
//!   `memory_store.rs` and `memory_postgres.rs`; `memory_export.rs` writes
//!   them out as training data), `cache.rs` (with `replay.rs` and
//!   `precompute.rs`), `context/` (inputs and answers longer than the
//!   context: truncation, MemAgent, context shifts), `thinking.rs`,
//!   `auth.rs`.
//! - `response_store.rs`: stored Responses API responses,
//!   `alias_store.rs`: versioned aliases and their evaluations, and
//!   `conversation_store.rs`: the web app's conversations, all in the
//!   memory stores' databases.
//! - `route_classifier.rs`: the expert routers' classifier.
//! - `embedder.rs`: comparing by meaning (memory, routers), with the
//!   server's embedding model behind a trait.

pub mod alias_store;
pub mod auth;
pub mod budget;
pub mod budget_store;
pub mod cache;
pub mod context;
pub mod conversation_store;
pub mod embedder;
pub mod memory;
pub mod memory_export;
pub mod memory_postgres;
pub mod memory_store;
pub mod precompute;
mod replay;
pub mod response_store;
pub mod route_classifier;
mod service;
pub mod thinking;
mod token_budget;

pub use service::{
    hold, CacheOutcome, ChatResponse, ChatService, EngineService, HitSource, MemoryUse, Outcome,
};
