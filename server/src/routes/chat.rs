//! `POST /v1/chat/completions`.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{ChatCompletionChunk, ChatRequest};
use ferrite_openapi::ApiError;
use tower::ServiceExt;

use crate::extract::JsonBody;
use crate::sse;
use crate::state::AppState;

pub async fn chat_completions(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    request.validate()?;
    let ready = state.ready()?;
    state.check_model(ready, request.model.as_deref())?;
    let slot = state.admit()?;
    let streaming = request.is_stream();
    let include_usage = request.include_usage();

    let answer = ready.pipeline.clone().oneshot(request).await?;
    let chunks = sse::peek(answer.stream).await?;
    let mut response = if streaming {
        let keep = move |c: &ChatCompletionChunk| include_usage || c.usage.is_none();
        sse::sse(chunks, keep, slot)
    } else {
        let acc = sse::collect(chunks, ChatAccumulator::default(), ChatAccumulator::push).await?;
        drop(slot);
        Json(acc.finish()).into_response()
    };
    for (name, value) in answer.annotations {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(format!("x-ferrite-{name}")),
            HeaderValue::try_from(value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    Ok(response)
}
