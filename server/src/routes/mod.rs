//! HTTP handlers, one file per route group.

pub mod chat;
pub mod completions;
pub mod fallback;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod models;
