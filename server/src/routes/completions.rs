//! `POST /v1/completions` (legacy text completions).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::aggregate::CompletionAccumulator;
use ferrite_openapi::completions::{Completion, CompletionRequest};
use ferrite_openapi::ApiError;

use crate::extract::JsonBody;
use crate::sse;
use crate::state::AppState;

pub async fn completions(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    request.validate()?;
    let ready = state.ready()?;
    state.check_model(ready, request.model.as_deref())?;
    let slot = state.admit()?;
    let streaming = request.is_stream();
    let include_usage = request.include_usage();

    let chunks = sse::peek(ready.engine.complete(request).await?).await?;
    if streaming {
        let keep = move |c: &Completion| include_usage || c.usage.is_none();
        return Ok(sse::sse(chunks, keep, slot));
    }
    let acc = sse::collect(
        chunks,
        CompletionAccumulator::default(),
        CompletionAccumulator::push,
    )
    .await?;
    Ok(Json(acc.finish()).into_response())
}
