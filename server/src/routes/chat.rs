//! `POST /v1/chat/completions`.

use std::time::Instant;

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{CallContext, ChatCompletion, ChatCompletionChunk, ChatRequest};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::ApiError;
use futures::StreamExt;
use tower::ServiceExt;

use crate::extract::{Caller, JsonBody};
use crate::routes::append_headers;
use crate::state::AppState;
use crate::{sse, telemetry};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn yes(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// What the request's headers and credentials say about it.
fn context(tenant: String, request: &ChatRequest, headers: &HeaderMap) -> CallContext {
    let cache_control = header(headers, CACHE_CONTROL.as_str()).unwrap_or_default();
    let directive = |d: &str| {
        cache_control
            .split(',')
            .any(|x| x.trim().eq_ignore_ascii_case(d))
    };
    let conversation = header(headers, "x-ferrite-conversation")
        .filter(|c| !c.is_empty())
        .map(String::from)
        .or_else(|| request.user.clone().filter(|u| !u.is_empty()));
    let memory = header(headers, "x-ferrite-memory").map(str::to_ascii_lowercase);
    CallContext {
        tenant,
        conversation,
        no_cache: directive("no-cache"),
        no_store: directive("no-store"),
        no_memory: matches!(memory.as_deref(), Some("off" | "false" | "0" | "no")),
        debug: yes(header(headers, "x-ferrite-debug")),
        precompute: false,
    }
}

/// Creates a chat completion; `stream: true` answers with server-sent events.
#[utoipa::path(
    post,
    path = "/v1/chat/completions", operation_id = "createChatCompletion",
    tag = "openai",
    request_body = ChatRequest,
    params(
        ("x-ferrite-conversation" = Option<String>, Header, description = "ferrite extension: the conversation this call belongs to, for memory (defaults to `user`)."),
        ("x-ferrite-memory" = Option<String>, Header, description = "ferrite extension: `off` skips conversation memory for this call."),
        ("x-ferrite-debug" = Option<String>, Header, description = "ferrite extension: `1` adds what the middleware did to the `ferrite` field."),
        ("cache-control" = Option<String>, Header, description = "`no-cache` skips the response cache lookup, `no-store` keeps the answer out of it."),
    ),
    responses(
        (status = 200, description = "The completion, or (with `stream: true`) `data:` events of chunks ending with `data: [DONE]`.",
            content(
                (ChatCompletion = "application/json"),
                (ChatCompletionChunk = "text/event-stream"),
            ),
            headers(
                ("x-ferrite-cache" = String, description = "`hit`, `miss` or `bypass` when the response cache is on."),
                ("server-timing" = String, description = "Time to the response head."),
            )
        ),
        ApiErrors,
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(mut request): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    request.validate()?;
    let ready = state.ready()?;
    state.check_model(ready, request.model.as_deref())?;
    // One name per model, so that the cache sees one request.
    request.model = Some(ready.engine.info().id.clone());
    request.context = context(caller.tenant, &request, &headers);
    let span = tracing::Span::current();
    span.record("tenant", request.context.tenant.as_str());
    span.record("model", request.model.as_deref());
    let log_content = state.config.log.content;
    if log_content {
        let messages = serde_json::to_string(&request.messages).unwrap_or_default();
        tracing::info!(%messages, "chat request");
    }
    let slot = state.admit()?;
    let streaming = request.is_stream();
    let include_usage = request.include_usage();

    let answer = ready.pipeline.clone().oneshot(request).await?;
    let extension = (!answer.extension.is_empty()).then_some(answer.extension);
    let metered = telemetry::meter("chat", started, log_content, answer.stream);
    let chunks = match sse::peek(metered).await {
        Ok(chunks) => chunks,
        Err(e) => return Err(e.with_headers(answer.headers)),
    };
    let mut response = if streaming {
        let keep = move |c: &ChatCompletionChunk| include_usage || c.usage.is_none();
        // The extension rides on the first chunk.
        let mut extension = extension;
        let chunks = chunks
            .map(move |item| {
                item.map(|mut c| {
                    // Not on a comment: those carry no JSON.
                    if let Some(ext) = extension.take_if(|_| c.comment.is_none()) {
                        c.ferrite.get_or_insert_with(Default::default).merge(ext);
                    }
                    c
                })
            })
            .boxed();
        sse::sse(chunks, keep, slot)
    } else {
        let acc = sse::collect(chunks, ChatAccumulator::default(), ChatAccumulator::push).await?;
        drop(slot);
        let mut body = acc.finish();
        if let Some(ext) = extension {
            body.ferrite.get_or_insert_with(Default::default).merge(ext);
        }
        Json(body).into_response()
    };
    // Time to the response head (the whole answer, unless streaming).
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let timing = format!("handler;dur={ms:.3}");
    let headers = answer
        .headers
        .into_iter()
        .chain([("server-timing".into(), timing)]);
    append_headers(&mut response, headers);
    Ok(response)
}
