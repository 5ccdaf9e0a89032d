//! Liveness (`/health`) and readiness (`/ready`) for probes and scripts.

use axum::extract::State;
use axum::Json;
use ferrite_openapi::health::{Health, Readiness};
use ferrite_openapi::{ApiError, ErrorBody};

use crate::state::AppState;

/// The process is up and serving HTTP, model loaded or not.
#[utoipa::path(get, path = "/health", operation_id = "getHealth", tag = "operations", security(()),
    responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// 200 once the model can answer, 503 with an OpenAI error before.
#[utoipa::path(get, path = "/ready", operation_id = "getReadiness", tag = "operations", security(()),
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "The model is still loading, or the server is draining.", body = ErrorBody),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    state.ready()?;
    Ok(Json(Readiness {
        status: "ready".into(),
        model: state.registry.resolve(None).await?.id.clone(),
    }))
}
