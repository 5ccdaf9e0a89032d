//! Liveness (`/health`) and readiness (`/ready`) for probes and scripts.

use axum::extract::State;
use axum::Json;
use ferrite_openapi::ApiError;
use serde_json::{json, Value};

use crate::state::AppState;

/// The process is up and serving HTTP, model loaded or not.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 once the model can answer, 503 with an OpenAI error before.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let ready = state.ready()?;
    Ok(Json(
        json!({"status": "ready", "model": ready.engine.info().id}),
    ))
}
