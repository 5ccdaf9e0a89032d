//! The app: every room's routes (`routes.rs`, with the OpenAPI document
//! built from the same handlers) under the tower-http layers.

pub mod routes;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::{BoxError, Router};
use ferrite_middleware::auth::AuthLayer;
use ferrite_openapi::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::http::{http_metrics, unread_body};
use crate::state::AppState;

const REQUEST_ID: &str = "x-request-id";

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(Any);
    Some(if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    })
}

pub fn router(state: AppState, auth: AuthLayer, prometheus: PrometheusHandle) -> Router {
    let http = &state.config.http;
    let timeout = Duration::from_secs(http.request_timeout_secs.max(1));
    let cors = cors(&http.cors_origins);
    let request_id = HeaderName::from_static(REQUEST_ID);

    // Outermost first. CORS sits outside auth, so preflights pass and 401s
    // carry CORS headers; the timeout covers the time to the response head
    // (streams run on).
    routes::routes(state, prometheus).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        let id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!(
                            "request",
                            method = %req.method(),
                            path = %req.uri().path(),
                            request_id = %id,
                            tenant = tracing::field::Empty,
                            model = tracing::field::Empty,
                        )
                    })
                    .on_response(DefaultOnResponse::new().level(Level::INFO))
                    // The response line already carries the status; a 503
                    // while the model loads is not worth an error line.
                    .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
            )
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(axum::middleware::from_fn(unread_body::close_if_unread))
            .option_layer(cors)
            .layer(auth)
            .layer(HandleErrorLayer::new(move |_: BoxError| async move {
                ApiError::timeout(format!(
                    "The request did not start answering within {} seconds.",
                    timeout.as_secs()
                ))
            }))
            .timeout(timeout)
            .layer(axum::middleware::from_fn(http_metrics::track)),
    )
}
