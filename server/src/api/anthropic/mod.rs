//! Anthropic's Messages API: `POST /v1/messages` and
//! `POST /v1/messages/count_tokens`, with Anthropic's error shape.

pub mod convert;

use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::anthropic::{
    AnthropicError, AnthropicErrors, CountTokensRequest, CountTokensResponse, MessageObject,
    MessagesRequest, Prompt, StreamEvent,
};
use ferrite_openapi::ApiError;

use ferrite_openapi::models::ModelKind;

use crate::chat::generate::{generate, model, Valid};
use crate::http::accept;
use crate::http::extract::{Caller, JsonBody};
use crate::http::headers::append_headers;
use crate::http::telemetry;
use crate::state::AppState;
use convert::{chat_request, message, prompt_request, stream};

/// Creates a message; `stream: true` answers with Anthropic's named events.
#[utoipa::path(post, path = "/v1/messages", operation_id = "createMessage", tag = "anthropic",
    request_body = MessagesRequest,
    params(("x-api-key" = Option<String>, Header, description = "The API key, as Anthropic's SDKs send it (a Bearer token works too).")),
    responses(
        (status = 200, description = "The message, or (with `stream: true`) its events.",
            content((MessageObject = "application/json"), (StreamEvent = "text/event-stream"))),
        AnthropicErrors,
    ))]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<JsonBody<MessagesRequest>, ApiError>,
) -> Result<Response, AnthropicError> {
    let started = Instant::now();
    let JsonBody(request) = body?;
    let limits = &state.config.limits;
    limits.check_shape(&request.prompt.shape(), &Prompt::NAMES)?;
    let streaming = request.stream == Some(true);
    let request = accept::accept(&state, caller, &headers, chat_request(request)?)?;
    let (headers, chunks) = generate(&state, request).await?.into_parts();
    let chunks = telemetry::meter("messages", started, state.config.log.content, chunks);
    let chunks = crate::chat::stream::peek(chunks)
        .await
        .map_err(|e| e.with_headers(headers.clone()))?;
    let mut response = if streaming {
        stream(chunks)
    } else {
        let acc =
            crate::chat::stream::collect(chunks, ChatAccumulator::default(), ChatAccumulator::push)
                .await?;
        Json(message(acc.finish())).into_response()
    };
    append_headers(&mut response, headers);
    Ok(response)
}

/// Counts the input tokens a messages request would use.
#[utoipa::path(post, path = "/v1/messages/count_tokens", operation_id = "countMessageTokens",
    tag = "anthropic", request_body = CountTokensRequest,
    responses((status = 200, body = CountTokensResponse), AnthropicErrors))]
pub async fn count_tokens(
    State(state): State<AppState>,
    body: Result<JsonBody<CountTokensRequest>, ApiError>,
) -> Result<Json<CountTokensResponse>, AnthropicError> {
    let JsonBody(request) = body?;
    let limits = &state.config.limits;
    limits.check_shape(&request.prompt.shape(), &Prompt::NAMES)?;
    let request = Valid::new(prompt_request(request.prompt)?, limits)?;
    let lease = model(
        &state,
        request.get().model.as_deref(),
        None,
        Some(ModelKind::Llm),
    )
    .await?;
    let prompt = lease.engine.render_prompt(request.get()).await?;
    limits.check_tokenize("messages", prompt.len())?;
    let tokens = lease.engine.encode(&prompt, true).await?;
    Ok(Json(CountTokensResponse {
        input_tokens: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
    }))
}
