//! LM Studio's REST API v0. Chat and text completions run through the /v1
//! handlers as streams, so that `stats` times the first token as it leaves
//! the pipeline; the answer is then sent whole, with `stats`, `model_info`
//! and `runtime` added. Streaming requests get the /v1 stream unchanged.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::aggregate::{ChatAccumulator, CompletionAccumulator};
use ferrite_openapi::chat::{ChatCompletionChunk, ChatRequest};
use ferrite_openapi::common::{StreamOptions, Usage};
use ferrite_openapi::completions::{Completion, CompletionRequest};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::lmstudio::{
    stop_reason, ModelInfo, Runtime, Stats, V0ChatCompletion, V0Completion, V0Extras, V0Model,
    V0ModelList,
};
use ferrite_openapi::models::ModelMeta;
use ferrite_openapi::{ApiError, ApiResult};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::extract::{Caller, JsonBody};
use crate::registry::catalog::Spec;
use crate::routes::{chat, completions};
use crate::sse_read;
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
        kind: "llm".into(),
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
        max_context_length: meta.map_or(0, |m| m.context_length),
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
    let spec = state.registry.resolve(Some(&id))?;
    Ok(Json(model(&spec, state.registry.meta(&spec).as_ref())))
}

/// A /v1 stream read back: its chunks, and when the first output arrived.
struct Read<T> {
    chunks: Vec<T>,
    first_output: Option<Instant>,
}

/// Reads the `data:` events of a /v1 SSE body; an error event becomes the
/// error of the whole call, as in a non-streaming /v1 request.
async fn read_stream<T: DeserializeOwned>(
    body: Body,
    has_output: impl Fn(&T) -> bool,
) -> ApiResult<Read<T>> {
    let mut read = Read {
        chunks: Vec::new(),
        first_output: None,
    };
    let mut events = std::pin::pin!(sse_read::events(body.into_data_stream()));
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| ApiError::internal(format!("stream failed: {e}")))?;
        let data = event.data.as_str();
        if data == "[DONE]" {
            return Ok(read);
        }
        let value: Value = serde_json::from_str(data)
            .map_err(|e| ApiError::internal(format!("bad stream event: {e}")))?;
        if let Some(error) = value.get("error") {
            // The stream's error event, with the status /v1 would have sent.
            let kind = error["type"].as_str().unwrap_or("server_error");
            let status = match kind {
                "invalid_request_error" => 400,
                _ => 500,
            };
            let mut e = ApiError::new(status, kind, error["message"].as_str().unwrap_or("failed"));
            e.param = error["param"].as_str().map(String::from);
            e.code = error["code"].as_str().map(String::from);
            return Err(e);
        }
        let chunk: T = serde_json::from_value(value)
            .map_err(|e| ApiError::internal(format!("bad stream chunk: {e}")))?;
        if read.first_output.is_none() && has_output(&chunk) {
            read.first_output = Some(Instant::now());
        }
        read.chunks.push(chunk);
    }
    Ok(read)
}

/// `stats`, `model_info` and `runtime` for the answer `model` gave.
fn extras(
    state: &AppState,
    model: &str,
    usage: Option<Usage>,
    finish: Option<&str>,
    started: Instant,
    first: Option<Instant>,
) -> V0Extras {
    let now = Instant::now();
    let meta = state
        .registry
        .resolve(Some(model))
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

/// The /v1 response's own headers (rate limits, cache, memory) carry over.
fn with_headers(mut response: Response, from: &HeaderMap) -> Response {
    for (name, value) in from {
        if ![
            CONTENT_TYPE,
            CONTENT_LENGTH,
            CACHE_CONTROL,
            TRANSFER_ENCODING,
        ]
        .contains(name)
        {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
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
    JsonBody(mut request): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    if request.is_stream() {
        return chat::chat_completions(State(state), caller, headers, JsonBody(request)).await;
    }
    request.stream = Some(true);
    request.stream_options = Some(StreamOptions {
        include_usage: Some(true),
    });
    let response =
        chat::chat_completions(State(state.clone()), caller, headers, JsonBody(request)).await?;
    let (parts, body) = response.into_parts();
    let read = read_stream(body, |c: &ChatCompletionChunk| {
        c.choices.iter().any(|ch| {
            ch.delta.content.as_deref().is_some_and(|t| !t.is_empty())
                || ch
                    .delta
                    .reasoning_content
                    .as_deref()
                    .is_some_and(|t| !t.is_empty())
                || ch.delta.tool_calls.is_some()
        })
    })
    .await?;
    // The accumulator keeps the `ferrite` extension of every chunk.
    let mut acc = ChatAccumulator::default();
    for chunk in &read.chunks {
        acc.push(chunk);
    }
    let completion = acc.finish();
    let finish = completion
        .choices
        .first()
        .and_then(|c| c.finish_reason.as_deref());
    let extras = extras(
        &state,
        &completion.model,
        completion.usage,
        finish,
        started,
        read.first_output,
    );
    let body = V0ChatCompletion { completion, extras };
    Ok(with_headers(Json(body).into_response(), &parts.headers))
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
    caller: Caller,
    JsonBody(mut request): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    if request.is_stream() {
        return completions::completions(State(state), caller, JsonBody(request)).await;
    }
    request.stream = Some(true);
    request.stream_options = Some(StreamOptions {
        include_usage: Some(true),
    });
    let response =
        completions::completions(State(state.clone()), caller, JsonBody(request)).await?;
    let (parts, body) = response.into_parts();
    let read = read_stream(body, |c: &Completion| {
        c.choices.iter().any(|ch| !ch.text.is_empty())
    })
    .await?;
    let mut acc = CompletionAccumulator::default();
    for chunk in &read.chunks {
        acc.push(chunk);
    }
    let completion = acc.finish();
    let finish = completion
        .choices
        .first()
        .and_then(|c| c.finish_reason.as_deref());
    let extras = extras(
        &state,
        &completion.model,
        completion.usage,
        finish,
        started,
        read.first_output,
    );
    let body = V0Completion { completion, extras };
    Ok(with_headers(Json(body).into_response(), &parts.headers))
}
