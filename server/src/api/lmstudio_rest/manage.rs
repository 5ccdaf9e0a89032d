//! LM Studio's REST API v1 for model management: `GET /api/v1/models`,
//! `POST /api/v1/models/load` (with `stream: true`, server-sent
//! `model_load.*` progress events) and `POST /api/v1/models/unload`. Under
//! auth, loading and unloading need the `models:manage` scope.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::manage::{
    InstanceConfig, LoadEvent, LoadProgress, LoadRequest, LoadResponse, LoadedInstance,
    Quantization, UnloadRequest, UnloadResponse, V1Adapter, V1Capabilities, V1Model, V1ModelList,
};
use ferrite_openapi::models::ModelKind;
use ferrite_openapi::{ApiError, ApiResult};

use crate::http::extract::{Caller, JsonBody};
use crate::registry::catalog::Spec;
use crate::registry::{Lease, Manage, Origin, MANAGE_MODELS};
use crate::state::AppState;

/// The v1 API's word for a model's type (v0 says `embeddings`).
fn v1_kind(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Llm => "llm",
        ModelKind::Embeddings => "embedding",
    }
}

fn v1_model(state: &AppState, spec: &Spec) -> V1Model {
    let meta = state.registry.meta(spec);
    let context = meta.as_ref().map_or(0, |m| m.context_length);
    let size = meta.as_ref().map_or(0, |m| m.size_bytes);
    let instances = |id: &str| -> Vec<LoadedInstance> {
        state
            .registry
            .instance(id)
            .into_iter()
            .map(|i| LoadedInstance {
                id: id.to_string(),
                config: InstanceConfig {
                    context_length: context,
                },
                status: i.status.into(),
                idle_seconds: i.idle.as_secs_f64(),
                ttl_seconds: i.ttl.map(|t| t.as_secs()),
                expires_in_seconds: i.ttl.map(|t| t.saturating_sub(i.idle).as_secs_f64()),
                in_flight: i.in_flight,
                memory_bytes: size,
                load_time_seconds: i.load_seconds,
            })
            .collect()
    };
    let merged = spec.merges_adapters();
    V1Model {
        kind: v1_kind(meta.as_ref().map(|m| m.kind).unwrap_or_default()).into(),
        key: spec.id.clone(),
        display_name: spec.id.clone(),
        publisher: spec.publisher(),
        architecture: meta.as_ref().and_then(|m| m.architecture.clone()),
        quantization: meta
            .as_ref()
            .and_then(|m| m.quantization.clone().or_else(|| m.isq.clone()))
            .map(|name| Quantization { name }),
        size_bytes: size,
        format: meta.as_ref().map_or_else(String::new, |m| m.format.clone()),
        max_context_length: meta.as_ref().map_or(0, |m| m.max_context_length),
        runtime: meta
            .as_ref()
            .map_or_else(String::new, |m| m.runtime.clone()),
        loaded_instances: instances(&spec.id),
        aliases: spec.aliases.clone(),
        path: spec.options.path.display().to_string(),
        adapters: spec
            .options
            .adapters
            .iter()
            .map(|a| {
                let key = format!("{}@{}", spec.id, a.id);
                V1Adapter {
                    loaded_instances: if merged { instances(&key) } else { vec![] },
                    mode: if merged { "merged" } else { "per_request" }.into(),
                    path: a.path.display().to_string(),
                    scale: a.scale,
                    key,
                }
            })
            .collect(),
        capabilities: meta
            .as_ref()
            .filter(|m| m.kind == ModelKind::Llm)
            .map(|m| V1Capabilities { vision: m.vision }),
    }
}

/// Every model on disk or in config, with its loaded instance if any.
#[utoipa::path(get, path = "/api/v1/models", tag = "lmstudio", operation_id = "listModelsV1",
    responses((status = 200, body = V1ModelList), ApiErrors))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<V1ModelList>> {
    let models = state
        .registry
        .specs()
        .await
        .iter()
        .map(|s| v1_model(&state, s))
        .collect();
    Ok(Json(V1ModelList { models }))
}

fn loaded(lease: &Lease, started: Instant, echo: bool) -> LoadResponse {
    LoadResponse {
        kind: v1_kind(lease.meta().kind).into(),
        instance_id: lease.id().to_string(),
        // Zero-ish when it was already loaded, as in LM Studio.
        load_time_seconds: started.elapsed().as_secs_f64(),
        status: "loaded".into(),
        load_config: echo.then(|| InstanceConfig {
            context_length: lease.meta().context_length,
        }),
    }
}

fn event(kind: &str, value: &impl serde::Serialize) -> Event {
    Event::default()
        .event(kind)
        .json_data(value)
        .unwrap_or_else(|_| Event::default().event(kind))
}

/// Loads a model (waiting for room when every resident model is busy).
/// With `stream: true` the answer is server-sent events:
/// `model_load.start`, `model_load.progress` (every 250 ms), then
/// `model_load.end` with the load response, or `error`.
#[utoipa::path(post, path = "/api/v1/models/load", tag = "lmstudio", operation_id = "loadModel",
    request_body = LoadRequest,
    responses(
        (status = 200, description = "Loaded, or (with `stream: true`) progress events.",
            content((LoadResponse = "application/json"), (LoadEvent = "text/event-stream"))),
        ApiErrors,
    ))]
pub async fn load(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(request): JsonBody<LoadRequest>,
) -> ApiResult<Response> {
    caller.require(MANAGE_MODELS)?;
    state.ready()?;
    if request.model.trim().is_empty() {
        return Err(ApiError::invalid("model", "Name the model to load."));
    }
    let spec = state.registry.resolve_loadable(&request.model).await?;
    let (context, manage) = (request.context_length, Manage::Granted);
    // Refusals (a context past the trained one) before any stream starts.
    state
        .registry
        .admissible(&spec, context, manage, "context_length")
        .await?;
    let started = Instant::now();
    let origin = Origin::Explicit { ttl: request.ttl };
    if !request.stream {
        let lease = state
            .registry
            .acquire_with(spec, origin, context, manage)
            .await?;
        return Ok(Json(loaded(&lease, started, request.echo_load_config)).into_response());
    }
    let registry = state.registry.clone();
    let id = spec.id.clone();
    let events = async_stream::stream! {
        let progress = |kind: &str, p: crate::registry::Progress| LoadProgress {
            kind: kind.into(),
            model_instance_id: id.clone(),
            progress: p.fraction,
            phase: p.phase.into(),
        };
        yield Ok::<_, Infallible>(event("model_load.start", &progress("model_load.start", registry.progress(&id))));
        let acquire = registry.acquire_with(spec, origin, context, manage);
        tokio::pin!(acquire);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let result = loop {
            tokio::select! {
                result = &mut acquire => break result,
                _ = tick.tick() => {
                    yield Ok(event("model_load.progress", &progress("model_load.progress", registry.progress(&id))));
                }
            }
        };
        match result {
            Ok(lease) => yield Ok(event("model_load.end", &loaded(&lease, started, request.echo_load_config))),
            Err(e) => yield Ok(event("error", &e.body())),
        }
    };
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Unloads a model (LM Studio's `instance_id`, or `model`), or `all`.
/// Requests running on it finish first.
#[utoipa::path(post, path = "/api/v1/models/unload", tag = "lmstudio", operation_id = "unloadModel",
    request_body = UnloadRequest,
    responses((status = 200, body = UnloadResponse), ApiErrors))]
pub async fn unload(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(request): JsonBody<UnloadRequest>,
) -> ApiResult<Json<UnloadResponse>> {
    caller.require(MANAGE_MODELS)?;
    let unloaded = match (&request.instance_id, request.all) {
        (Some(_), true) => {
            return Err(ApiError::invalid(
                "all",
                "Give either `instance_id` or `all`, not both.",
            ))
        }
        (Some(id), false) => vec![state.registry.unload(id).await?],
        (None, true) => state.registry.unload_all(),
        (None, false) => {
            return Err(ApiError::invalid(
                "instance_id",
                "Name the model to unload in `instance_id`, or set `all: true`.",
            ))
        }
    };
    Ok(Json(UnloadResponse {
        instance_id: unloaded.first().cloned(),
        unloaded,
    }))
}
