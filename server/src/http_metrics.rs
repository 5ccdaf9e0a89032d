//! Requests by route and status, and how long each took to answer.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Counts every request under its route pattern (`/v1/memory/{id}`, not
/// the id), so label sets stay few.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("ferrite:http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    // To the response head: a stream's length is in e2e_request_latency.
    metrics::histogram!("ferrite:http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}
