//! `POST /v1/chat/completions`.

use std::time::Instant;

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_middleware::auth::Identity;
use ferrite_middleware::ChatResponse;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{CallContext, ChatCompletion, ChatCompletionChunk, ChatRequest};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::{ApiError, ApiResult};

use crate::chat::generate::{generate, Valid};
use crate::http::extract::{Caller, JsonBody};
use crate::http::routes::append_headers;
use crate::http::{sse, telemetry};
use crate::registry::MANAGE_MODELS;
use crate::state::AppState;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A header flag that is on: `1`, `true`, `yes` or `on`.
fn flag_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// What the request's headers and credentials say about it.
fn context(caller: Identity, request: &ChatRequest, headers: &HeaderMap) -> CallContext {
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
        manage_models: caller.holds(MANAGE_MODELS),
        tenant: caller.tenant,
        conversation,
        no_cache: directive("no-cache"),
        no_store: directive("no-store"),
        no_memory: matches!(memory.as_deref(), Some("off" | "false" | "0" | "no")),
        debug: flag_on(header(headers, "x-ferrite-debug")),
        precompute: false,
        shared_cache: false,
        // Set by the API the request came through (Anthropic, Responses).
        max_tokens_is_cap: request.context.max_tokens_is_cap,
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
                ("x-ferrite-routed-model" = String, description = "With a router model (e.g. `auto`): the model that answered."),
                ("x-ferrite-route" = String, description = "With a router model: the route chosen, or `default`."),
                ("server-timing" = String, description = "Time to the response head."),
            )
        ),
        ApiErrors,
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request = accept(&state, caller, &headers, request)?;
    let reply = Reply {
        started,
        streaming: request.get().is_stream(),
        include_usage: request.get().include_usage(),
        log_content: state.config.log.content,
    };
    reply.send(generate(&state, request).await?).await
}

/// A chat request as the pipeline takes it: validated, with what its
/// headers and credentials say (shared with LM Studio's v0 route).
pub fn accept(
    state: &AppState,
    Caller(caller): Caller,
    headers: &HeaderMap,
    mut request: ChatRequest,
) -> ApiResult<Valid<ChatRequest>> {
    request.context = context(caller, &request, headers);
    tracing::Span::current().record("tenant", request.context.tenant.as_str());
    let request = Valid::new(request, &state.config.limits)?;
    if state.config.log.content {
        let messages = serde_json::to_string(&request.get().messages).unwrap_or_default();
        tracing::info!(%messages, "chat request");
    }
    Ok(request)
}

/// How the answer goes back to the client.
struct Reply {
    started: Instant,
    streaming: bool,
    include_usage: bool,
    log_content: bool,
}

impl Reply {
    async fn send(self, answer: ChatResponse) -> Result<Response, ApiError> {
        let (headers, chunks) = answer.into_parts();
        let metered = telemetry::meter("chat", self.started, self.log_content, chunks);
        let chunks = match sse::peek(metered).await {
            Ok(chunks) => chunks,
            Err(e) => return Err(e.with_headers(headers)),
        };
        let mut response = if self.streaming {
            let include_usage = self.include_usage;
            sse::sse(chunks, move |c: &ChatCompletionChunk| {
                include_usage || c.usage.is_none()
            })
        } else {
            let acc =
                sse::collect(chunks, ChatAccumulator::default(), ChatAccumulator::push).await?;
            Json(acc.finish()).into_response()
        };
        // Time to the response head (the whole answer, unless streaming).
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        let timing = format!("handler;dur={ms:.3}");
        let headers = headers
            .into_iter()
            .chain([("server-timing".into(), timing)]);
        append_headers(&mut response, headers);
        Ok(response)
    }
}
