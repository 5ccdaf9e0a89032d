//! `POST /v1/chat/completions`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_engine::ChatStream;
use ferrite_middleware::ChatResponse;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{
    CallContext, ChatCompletion, ChatCompletionChunk, ChatRequest, ResponseExtension,
};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::ApiError;
use futures::StreamExt;
use tower::ServiceExt;

use crate::extract::{Caller, JsonBody};
use crate::registry::catalog::Spec;
use crate::registry::Origin;
use crate::routes::append_headers;
use crate::state::{AppState, Slot};
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
        shared_cache: false,
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
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(mut request): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    request.validate()?;
    request.check_limits(&state.config.limits)?;
    state.ready()?;
    request.context = context(caller.tenant, &request, &headers);
    let span = tracing::Span::current();
    span.record("tenant", request.context.tenant.as_str());
    if state.config.log.content {
        let messages = serde_json::to_string(&request.messages).unwrap_or_default();
        tracing::info!(%messages, "chat request");
    }
    let reply = Reply {
        started,
        streaming: request.is_stream(),
        include_usage: request.include_usage(),
        log_content: state.config.log.content,
    };

    if let Some(router) = state.experts.get(request.model.as_deref()) {
        span.record("model", router.config.name.as_str());
        let slot = state.admit()?;
        let answer = router.answer(&state, request).await?;
        return reply.send(answer, slot).await;
    }
    let spec = state.registry.resolve(request.model.as_deref())?;
    // One name per model, so that the cache sees one request.
    request.model = Some(spec.id.clone());
    span.record("model", spec.id.as_str());
    let slot = state.admit()?;
    let origin = Origin::Request { ttl: request.ttl };
    if reply.streaming && !state.registry.is_loaded(&spec.id) {
        return Ok(reply.while_loading(&state, spec, origin, request, slot));
    }
    let lease = state.registry.acquire_spec(spec, origin).await?;
    let mut answer = lease.pipeline.service.clone().oneshot(request).await?;
    answer.stream = lease.hold(answer.stream);
    reply.send(answer, slot).await
}

/// The extension rides on the first chunk that is not a comment.
fn with_extension(stream: ChatStream, extension: ResponseExtension) -> ChatStream {
    let mut extension = (!extension.is_empty()).then_some(extension);
    stream
        .map(move |item| {
            item.map(|mut c| {
                if let Some(ext) = extension.take_if(|_| c.comment.is_none()) {
                    c.ferrite.get_or_insert_with(Default::default).merge(ext);
                }
                c
            })
        })
        .boxed()
}

/// How the answer goes back to the client.
struct Reply {
    started: Instant,
    streaming: bool,
    include_usage: bool,
    log_content: bool,
}

impl Reply {
    fn keep(&self) -> impl Fn(&ChatCompletionChunk) -> bool + Send + 'static {
        let include_usage = self.include_usage;
        move |c| include_usage || c.usage.is_none()
    }

    async fn send(self, answer: ChatResponse, slot: Slot) -> Result<Response, ApiError> {
        let metered = telemetry::meter("chat", self.started, self.log_content, answer.stream);
        let chunks = match sse::peek(metered).await {
            Ok(chunks) => chunks,
            Err(e) => return Err(e.with_headers(answer.headers)),
        };
        let chunks = with_extension(chunks, answer.extension);
        let mut response = if self.streaming {
            sse::sse(chunks, self.keep(), slot)
        } else {
            let acc =
                sse::collect(chunks, ChatAccumulator::default(), ChatAccumulator::push).await?;
            drop(slot);
            Json(acc.finish()).into_response()
        };
        // Time to the response head (the whole answer, unless streaming).
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        let timing = format!("handler;dur={ms:.3}");
        let headers = answer
            .headers
            .into_iter()
            .chain([("server-timing".into(), timing)]);
        append_headers(&mut response, headers);
        Ok(response)
    }

    /// A stream for a model that is not loaded yet: SSE comments report the
    /// load every second (so clients and proxies see a live connection),
    /// then the answer streams as usual.
    fn while_loading(
        self,
        state: &AppState,
        spec: Arc<Spec>,
        origin: Origin,
        request: ChatRequest,
        slot: Slot,
    ) -> Response {
        let registry = state.registry.clone();
        let id = spec.id.clone();
        let chunks = async_stream::stream! {
            let acquire = registry.acquire_spec(spec, origin);
            tokio::pin!(acquire);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let lease = loop {
                tokio::select! {
                    lease = &mut acquire => break lease,
                    _ = tick.tick() => {
                        let p = registry.progress(&id);
                        let note = format!("ferrite: loading model {id}: {} {:.0}%", p.phase, p.fraction * 100.0);
                        yield Ok(ChatCompletionChunk::note(&id, note));
                    }
                }
            };
            let answer = match lease {
                Ok(lease) => lease.pipeline.service.clone().oneshot(request).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(answer) => {
                    let mut chunks = with_extension(answer.stream, answer.extension);
                    while let Some(item) = chunks.next().await {
                        yield item;
                    }
                }
                Err(e) => yield Err(e),
            }
        };
        let metered = telemetry::meter("chat", self.started, self.log_content, chunks.boxed());
        sse::sse(metered, self.keep(), slot)
    }
}
