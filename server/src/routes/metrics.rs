//! `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;

/// Prometheus metrics: requests, latencies, tokens, queue and engine state.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.",
        content_type = "text/plain", body = String)))]
pub async fn render(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
}
