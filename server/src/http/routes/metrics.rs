//! `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use std::sync::LazyLock;

use metrics_exporter_prometheus::PrometheusHandle;

/// The process's own figures (`process_resident_memory_bytes`, CPU, threads,
/// open files), as Prometheus client libraries report them.
static PROCESS: LazyLock<metrics_process::Collector> = LazyLock::new(|| {
    let collector = metrics_process::Collector::default();
    collector.describe();
    collector
});

/// Prometheus metrics: requests, latencies, tokens, queue and engine state.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.",
        content_type = "text/plain", body = String)))]
pub async fn render(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    PROCESS.collect();
    // The engine keeps these itself; they are read as they are now.
    let (entries, bytes) = ferrite_engine::prefix_cache_usage();
    metrics::gauge!("ferrite:prefix_cache_entries").set(entries as f64);
    metrics::gauge!("ferrite:prefix_cache_bytes").set(bytes as f64);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
}
