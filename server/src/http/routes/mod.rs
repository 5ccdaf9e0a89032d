//! The server's own routes, which no API room owns: health, metrics, the
//! OpenAPI document and its page, memory, the web app's conversations, versioned aliases, llama-server's
//! token routes, the web app at `/` and the fallbacks.

pub mod aliases;
pub mod conversations;
pub mod docs;
pub mod fallback;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod tokens;
pub mod ui;
