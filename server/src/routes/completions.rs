//! `POST /v1/completions` (legacy text completions).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::aggregate::CompletionAccumulator;
use ferrite_openapi::completions::{Completion, CompletionRequest};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::ApiError;
use futures::StreamExt;

use crate::extract::{Caller, JsonBody};
use crate::routes::append_headers;
use crate::state::AppState;
use crate::{sse, telemetry};

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
    request.validate()?;
    request.check_limits(&state.config.limits)?;
    state.ready()?;
    if let Some(router) = state.experts.get(request.model.as_deref()) {
        return Err(ApiError::invalid(
            "model",
            format!(
                "`{}` routes chat completions only; name a model for text completions.",
                router.config.name
            ),
        ));
    }
    let lease = state.model(request.model.as_deref(), request.ttl).await?;
    // The tenant's budgets apply here as in the chat pipeline.
    let mut admission = match &lease.pipeline.budgets {
        Some(budgets) => {
            let (prompt, completion) = budgets.completion_reservation(&request).await;
            Some(budgets.admit(&caller.tenant, prompt, completion)?)
        }
        None => None,
    };
    let headers = admission
        .as_mut()
        .map(|a| std::mem::take(&mut a.headers))
        .unwrap_or_default();
    let span = tracing::Span::current();
    span.record("tenant", caller.tenant.as_str());
    span.record("model", lease.id());
    let slot = state.admit()?;
    let streaming = request.is_stream();
    let include_usage = request.include_usage();

    let stream = match lease.engine.complete(request).await {
        Ok(s) => lease.hold(s),
        Err(e) => return Err(e.with_headers(headers)),
    };
    let stream = stream
        .map(move |item| {
            if let (Ok(c), Some(a)) = (&item, admission.as_mut()) {
                a.observe(c.usage, c.choices.len());
            }
            item
        })
        .boxed();
    let log_content = state.config.log.content;
    let stream = telemetry::meter("completions", started, log_content, stream);
    let chunks = match sse::peek(stream).await {
        Ok(c) => c,
        Err(e) => return Err(e.with_headers(headers)),
    };
    let mut response = if streaming {
        let keep = move |c: &Completion| include_usage || c.usage.is_none();
        sse::sse(chunks, keep, slot)
    } else {
        let acc = sse::collect(
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
