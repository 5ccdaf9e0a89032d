//! The HTTP edge: the axum app, its routes and what they share.

pub mod anthropic;
pub mod app;
pub mod extract;
pub mod http_metrics;
pub mod listen;
pub mod openapi;
pub mod responses;
pub mod routes;
pub mod sse;
pub mod telemetry;
pub mod unread_body;
