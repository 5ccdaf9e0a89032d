//! `POST /v1/completions` (legacy text completions).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::aggregate::CompletionAccumulator;
use ferrite_openapi::completions::{Completion, CompletionRequest};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::ApiError;

use crate::chat::generate::{complete, Valid};
use crate::http::extract::{Caller, JsonBody};
use crate::http::headers::append_headers;
use crate::http::{sse, telemetry};
use crate::state::AppState;

/// Creates a text completion (the legacy API); `stream: true` answers with
/// server-sent events.
#[utoipa::path(
    post,
    path = "/v1/completions", operation_id = "createCompletion",
    tag = "openai",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The completion, or (with `stream: true`) `data:` events of completion chunks ending with `data: [DONE]`.",
            content(
                (Completion = "application/json"),
                (Completion = "text/event-stream"),
            )
        ),
        ApiErrors,
    )
)]
pub async fn completions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(request): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    tracing::Span::current().record("tenant", caller.tenant.as_str());
    let request = Valid::new(request, &state.config.limits)?;
    let streaming = request.get().is_stream();
    let include_usage = request.get().include_usage();
    let (headers, stream) = complete(&state, &caller, request).await?;
    let stream = telemetry::meter("completions", started, state.config.log.content, stream);
    let chunks = match crate::chat::stream::peek(stream).await {
        Ok(c) => c,
        Err(e) => return Err(e.with_headers(headers)),
    };
    let mut response = if streaming {
        sse::sse(chunks, move |c: &Completion| {
            include_usage || c.usage.is_none()
        })
    } else {
        let acc = crate::chat::stream::collect(
            chunks,
            CompletionAccumulator::default(),
            CompletionAccumulator::push,
        )
        .await?;
        Json(acc.finish()).into_response()
    };
    append_headers(&mut response, headers);
    Ok(response)
}
