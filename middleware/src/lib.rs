//! The chat pipeline: a `tower::Service<ChatRequest>` whose innermost service
//! is the engine. Features (memory, cache, budgets, thinking) are layers added
//! around it with `ServiceBuilder`; handlers only ever call the stack.

pub mod auth;
mod pipeline;

pub use pipeline::{ChatResponse, ChatService, EngineService};
