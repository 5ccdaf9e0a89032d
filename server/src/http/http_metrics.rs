//! Requests by route and status, and how long each took to answer.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// A label for the method: a client may send any token as a method, and
/// every label value is a series kept for the life of the process.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts every request under its route pattern (`/v1/memory/{id}`, not
/// the id), so label sets stay few: no label takes raw client input.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(req.method());
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
