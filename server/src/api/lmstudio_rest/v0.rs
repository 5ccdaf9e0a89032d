//! LM Studio's REST API v0. Chat and text completions take the same road as
//! /v1 and read its chunks as they come, so that `stats` times the first
//! token as it leaves the pipeline; the answer is then sent whole, with
//! `stats`, `model_info` and `runtime` added. Streaming requests get the
//! /v1 stream unchanged.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::aggregate::{ChatAccumulator, CompletionAccumulator};
use ferrite_openapi::chat::{ChatCompletion, ChatCompletionChunk, ChatRequest};
use ferrite_openapi::common::Usage;
use ferrite_openapi::completions::{Completion, CompletionRequest};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::lmstudio::{
    stop_reason, ModelInfo, Runtime, Stats, V0ChatCompletion, V0Completion, V0Extras, V0Model,
    V0ModelList,
};
use ferrite_openapi::models::ModelMeta;
use ferrite_openapi::{ApiError, ApiResult};
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::api::openai::{chat, completions};
use crate::chat::generate::{complete, generate, Valid};
use crate::http::accept;
use crate::http::extract::{Caller, JsonBody};
use crate::http::headers::append_headers;
use crate::http::telemetry::{self, Metered};
use crate::registry::catalog::Spec;
use crate::state::AppState;

fn unknown(meta: Option<&ModelMeta>, f: impl Fn(&ModelMeta) -> Option<String>) -> String {
    meta.and_then(f).unwrap_or_else(|| "unknown".into())
}

fn model(spec: &Spec, meta: Option<&ModelMeta>) -> V0Model {
    // LM Studio's layout: models/<publisher>/<repo>/<file>.
    let path = spec.options.path.as_path();
    let publisher = path
        .ancestors()
        .nth(2)
        .filter(|p| p.parent().and_then(|m| m.file_name()) == Some("models".as_ref()))
        .and_then(|p| p.file_name())
        .map_or_else(|| "local".to_string(), |p| p.to_string_lossy().into_owned());
    V0Model {
        id: spec.id.clone(),
        object: "model".into(),
        // LM Studio's word for a model that takes images.
        kind: match meta {
            Some(m) if m.vision => "vlm",
            Some(m) => m.kind.as_str(),
            None => "llm",
        }
        .into(),
        publisher,
        arch: unknown(meta, |m| m.architecture.clone()),
        compatibility_type: unknown(meta, |m| Some(m.format.clone())),
        quantization: unknown(meta, quantization),
        // LM Studio knows two states; a model still loading is not loaded.
        state: match meta.map(|m| m.state.as_str()) {
            Some("loaded") => "loaded",
            _ => "not-loaded",
        }
        .into(),
        max_context_length: meta.map_or(0, |m| m.max_context_length),
        runtime: unknown(meta, |m| Some(m.runtime.clone())),
    }
}

fn quantization(meta: &ModelMeta) -> Option<String> {
    meta.quantization
        .clone()
        .or_else(|| meta.isq.clone())
        .or_else(|| meta.activation_dtype.clone())
}

/// Models available to this server, with their state.
#[utoipa::path(get, path = "/api/v0/models", tag = "lmstudio", operation_id = "listModelsV0",
    responses((status = 200, body = V0ModelList), ApiErrors))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<V0ModelList>> {
    let data = state
        .registry
        .specs()
        .await
        .iter()
        .map(|s| model(s, state.registry.meta(s).as_ref()))
        .collect();
    Ok(Json(V0ModelList {
        object: "list".into(),
        data,
    }))
}

/// One model, by id or alias (the id may contain `/`).
#[utoipa::path(get, path = "/api/v0/models/{model}", tag = "lmstudio", operation_id = "retrieveModelV0",
    params(("model" = String, Path, description = "Model id or alias")),
    responses((status = 200, body = V0Model), ApiErrors))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<V0Model>> {
    let spec = state.registry.resolve(Some(&id)).await?;
    Ok(Json(model(&spec, state.registry.meta(&spec).as_ref())))
}

/// What LM Studio's `stats` read off a finished answer.
trait Finished {
    fn model(&self) -> &str;
    fn usage(&self) -> Option<Usage>;
    fn finish_reason(&self) -> Option<&str>;
}

/// Both answer types name these alike.
macro_rules! finished {
    ($($answer:ty),*) => {$(
        impl Finished for $answer {
            fn model(&self) -> &str {
                &self.model
            }
            fn usage(&self) -> Option<Usage> {
                self.usage
            }
            fn finish_reason(&self) -> Option<&str> {
                self.choices.first()?.finish_reason.as_deref()
            }
        }
    )*};
}

finished!(ChatCompletion, Completion);

/// Folds one kind of answer's chunks.
trait Accumulate: Default {
    type Chunk: Metered;
    type Answer: Finished;
    fn add(&mut self, chunk: &Self::Chunk);
    fn done(self) -> Self::Answer;
}

impl Accumulate for ChatAccumulator {
    type Chunk = ChatCompletionChunk;
    type Answer = ChatCompletion;
    fn add(&mut self, chunk: &ChatCompletionChunk) {
        self.push(chunk);
    }
    fn done(self) -> ChatCompletion {
        self.finish()
    }
}

impl Accumulate for CompletionAccumulator {
    type Chunk = Completion;
    type Answer = Completion;
    fn add(&mut self, chunk: &Completion) {
        self.push(chunk);
    }
    fn done(self) -> Completion {
        self.finish()
    }
}

/// Reads an answer whole (timing its first output) and sends it as `body`
/// makes it, with LM Studio's extras.
async fn whole<A: Accumulate>(
    state: &AppState,
    started: Instant,
    headers: Vec<(String, String)>,
    mut chunks: BoxStream<'static, ApiResult<A::Chunk>>,
    body: fn(A::Answer, V0Extras) -> Response,
) -> ApiResult<Response> {
    let mut acc = A::default();
    let mut first = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| e.with_headers(headers.clone()))?;
        if first.is_none() && chunk.has_text() {
            first = Some(Instant::now());
        }
        acc.add(&chunk);
    }
    let answer = acc.done();
    let extras = extras(state, &answer, started, first).await;
    let mut response = body(answer, extras);
    append_headers(&mut response, headers);
    Ok(response)
}

/// `stats`, `model_info` and `runtime` for the answer `model` gave.
async fn extras(
    state: &AppState,
    answer: &impl Finished,
    started: Instant,
    first: Option<Instant>,
) -> V0Extras {
    let (model, usage, finish) = (answer.model(), answer.usage(), answer.finish_reason());
    let now = Instant::now();
    let meta = state
        .registry
        .resolve(Some(model))
        .await
        .ok()
        .and_then(|spec| state.registry.meta(&spec));
    let meta = meta.as_ref();
    let tokens = usage.map_or(0, |u| u.completion_tokens);
    let first = first.unwrap_or(now);
    let generation = now.duration_since(first).as_secs_f64();
    V0Extras {
        stats: Stats {
            tokens_per_second: if generation > 0.0 {
                f64::from(tokens) / generation
            } else {
                0.0
            },
            time_to_first_token: first.duration_since(started).as_secs_f64(),
            generation_time: generation,
            stop_reason: stop_reason(finish),
        },
        model_info: ModelInfo {
            arch: unknown(meta, |m| m.architecture.clone()),
            quant: unknown(meta, quantization),
            format: unknown(meta, |m| Some(m.format.clone())),
            context_length: meta.map_or(0, |m| m.context_length),
        },
        runtime: Runtime {
            name: format!(
                "ferrite-{}-{}",
                unknown(meta, |m| Some(m.runtime.clone())),
                unknown(meta, |m| m.device.clone())
            ),
            version: env!("CARGO_PKG_VERSION").into(),
            supported_formats: match meta.map(|m| m.runtime.as_str()) {
                Some("llama.cpp") => vec!["gguf".into()],
                _ => vec!["gguf".into(), "safetensors".into()],
            },
        },
    }
}

/// A chat completion with LM Studio's `stats`, `model_info` and `runtime`.
#[utoipa::path(post, path = "/api/v0/chat/completions", tag = "lmstudio",
    operation_id = "createChatCompletionV0", request_body = ChatRequest,
    responses(
        (status = 200, description = "The completion with `stats`, or (with `stream: true`) the /v1 stream.",
            content((V0ChatCompletion = "application/json"), (ChatCompletionChunk = "text/event-stream"))),
        ApiErrors,
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    if request.is_stream() {
        return chat::chat_completions(State(state), caller, headers, JsonBody(request)).await;
    }
    let started = Instant::now();
    let request = accept::accept(&state, caller, &headers, request)?;
    let (headers, chunks) = generate(&state, request).await?.into_parts();
    let chunks = telemetry::meter("chat", started, state.config.log.content, chunks);
    whole::<ChatAccumulator>(&state, started, headers, chunks, |completion, extras| {
        Json(V0ChatCompletion { completion, extras }).into_response()
    })
    .await
}

/// A text completion with LM Studio's `stats`, `model_info` and `runtime`.
#[utoipa::path(post, path = "/api/v0/completions", tag = "lmstudio",
    operation_id = "createCompletionV0", request_body = CompletionRequest,
    responses(
        (status = 200, description = "The completion with `stats`, or (with `stream: true`) the /v1 stream.",
            content((V0Completion = "application/json"), (Completion = "text/event-stream"))),
        ApiErrors,
    ))]
pub async fn completions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(request): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    if request.is_stream() {
        return completions::completions(State(state), Caller(caller), JsonBody(request)).await;
    }
    let started = Instant::now();
    let request = Valid::new(request, &state.config.limits)?;
    let (headers, chunks) = complete(&state, &caller, request).await?;
    let chunks = telemetry::meter("completions", started, state.config.log.content, chunks);
    whole::<CompletionAccumulator>(&state, started, headers, chunks, |completion, extras| {
        Json(V0Completion { completion, extras }).into_response()
    })
    .await
}
