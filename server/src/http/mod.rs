//! The shared HTTP plumbing below every API room: extractors, what a chat
//! request carries besides its body, SSE, telemetry, listeners, and the
//! server's own routes (health, metrics, docs, memory, aliases, tokens).

pub mod accept;
pub mod extract;
pub mod headers;
pub mod http_metrics;
pub mod listen;
pub mod routes;
pub mod sse;
pub mod telemetry;
pub mod unread_body;
