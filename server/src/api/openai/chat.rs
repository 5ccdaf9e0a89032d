//! `POST /v1/chat/completions`.

use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_middleware::ChatResponse;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{ChatCompletion, ChatCompletionChunk, ChatRequest};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::ApiError;

use crate::chat::generate::generate;
use crate::http::accept::accept;
use crate::http::extract::{Caller, JsonBody};
use crate::http::headers::append_headers;
use crate::http::{sse, telemetry};
use crate::state::AppState;

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
        let chunks = match crate::chat::stream::peek(metered).await {
            Ok(chunks) => chunks,
            Err(e) => return Err(e.with_headers(headers)),
        };
        let mut response = if self.streaming {
            let include_usage = self.include_usage;
            sse::sse(chunks, move |c: &ChatCompletionChunk| {
                include_usage || c.usage.is_none()
            })
        } else {
            let acc = crate::chat::stream::collect(
                chunks,
                ChatAccumulator::default(),
                ChatAccumulator::push,
            )
            .await?;
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
