//! The chat pipeline: a `tower::Service<ChatRequest>` whose innermost service
//! is the engine. Features are layers added around it with `ServiceBuilder`;
//! handlers only ever call the stack. Outermost first: budgets, memory,
//! cache, thinking, engine (auth is an HTTP layer: it runs before the body is read).

pub mod auth;
pub mod budget;
pub mod cache;
pub mod memory;
pub mod memory_postgres;
pub mod memory_store;
mod pipeline;
pub mod precompute;
mod replay;
pub mod route_classifier;
pub mod thinking;
mod token_budget;

pub use pipeline::{ChatResponse, ChatService, EngineService};
