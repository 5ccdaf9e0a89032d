//! LM Studio's SDK protocol, so that `import lmstudio`, `@lmstudio/sdk`
//! and `lms` drive ferrite as they drive LM Studio.
//!
//! # Layout
//! - `mod.rs`: the routes: `GET /lmstudio-greeting` and one WebSocket per
//!   namespace (`/llm`, `/embedding`, `/system`, ...).
//! - `session.rs`: one socket: the auth handshake, RPC calls and channels
//!   (each its own task, a bounded number at once), cancellation,
//!   keep-alives; `outbox.rs`: what waits for the client, bounded in bytes.
//! - `models.rs`: listing, describing, loading and unloading models;
//!   tokens; embeddings.
//! - `predict.rs`: `llm.predict` on the one chat road, so memory, cache,
//!   budgets, thinking and routers apply as on HTTP.
//! - `repository.rs`: searching the Hub and downloading models.
//! - `error.rs`: ferrite's errors as LM Studio's serialized errors.

mod error;
mod models;
mod outbox;
mod predict;
mod repository;
mod session;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// The namespaces the SDKs open, one socket each.
const NAMESPACES: &[&str] = &[
    "llm",
    "embedding",
    "system",
    "diagnostics",
    "files",
    "repository",
    "plugins",
    "runtime",
    "retrieval",
];

/// The LM Studio version ferrite answers as: the SDKs check features
/// against it.
pub const LMSTUDIO_VERSION: &str = "0.3.30";
pub const LMSTUDIO_BUILD: u32 = 1;

/// The routes, waiting for their state.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new().route("/lmstudio-greeting", get(greeting));
    for ns in NAMESPACES {
        router = router.route(&format!("/{ns}"), get(socket));
    }
    router
}

/// What the SDKs probe to find a server.
async fn greeting() -> Json<serde_json::Value> {
    Json(json!({
        "lmstudio": true,
        "version": LMSTUDIO_VERSION,
        "build": LMSTUDIO_BUILD,
        "server": "ferrite",
        "ferriteVersion": env!("CARGO_PKG_VERSION"),
    }))
}

async fn socket(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let namespace = uri.path().trim_start_matches('/').to_string();
    // A socket counts against the server's open connections for as long as
    // it lives (its HTTP connection stops counting once it is upgraded).
    let Some(connection) = state.connection() else {
        return ferrite_openapi::ApiError::unavailable(
            "The server has as many open connections as it takes; retry shortly.",
        )
        .with_code(ferrite_openapi::ErrorCode::ServerOverloaded)
        .into_response();
    };
    match upgrade {
        Ok(upgrade) => upgrade
            .max_message_size(state.config.http.max_body_bytes.max(1 << 20))
            .on_upgrade(move |ws| session::run(ws, state, namespace, headers, connection)),
        Err(e) => ferrite_openapi::ApiError::new(
            400,
            "invalid_request_error",
            format!(
                "`/{namespace}` is LM Studio's SDK WebSocket; connect with an LM Studio SDK ({e})."
            ),
        )
        .into_response(),
    }
}
