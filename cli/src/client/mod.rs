//! Commands that talk to a running server over HTTP, and local tools.

pub mod bench;
pub mod bench_cache;
pub mod bench_soak;
pub mod chat;
pub mod convert;
pub mod daemon;
pub mod eval;
pub mod export;
pub mod get;
pub mod models;
pub mod quantize;
pub mod remote;
pub mod sse_read;
