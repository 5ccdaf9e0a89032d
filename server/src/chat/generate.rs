//! The one road every request takes to a model, after TGI's
//! `Infer::generate_stream`: a validated request in, typed chunks out. It
//! resolves the router or the model, loads the model just in time, runs the
//! model's pipeline and holds the model and the client's place until the
//! answer has been read. Handlers (v1, v0, streaming or not) only render
//! what comes back; routers and cache precompute come this way too.

use std::sync::Arc;
use std::time::Duration;

use ferrite_engine::{CompletionStream, EmbedInput};
use ferrite_middleware::auth::Identity;
use ferrite_middleware::{hold, ChatResponse};
use ferrite_openapi::adapters::AdapterChoice;
use ferrite_openapi::chat::{ChatCompletionChunk, ChatRequest};
use ferrite_openapi::common::Usage;
use ferrite_openapi::completions::CompletionRequest;
use ferrite_openapi::embeddings::{
    Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, InputRef, Vector,
};
use ferrite_openapi::models::ModelKind;
use ferrite_openapi::validate::RequestLimits;
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};
use futures::StreamExt;
use tower::ServiceExt;

use crate::registry::catalog::Spec;
use crate::registry::{Lease, Manage, Origin, Registry, MANAGE_MODELS};
use crate::state::AppState;

/// A request checked against the API's rules and the server's limits: the
/// only kind the functions here take.
pub struct Valid<T>(T);

/// What a request must pass before it may reach a model.
pub trait Check {
    fn check(&self, limits: &RequestLimits) -> ApiResult<()>;
}

impl Check for ChatRequest {
    fn check(&self, limits: &RequestLimits) -> ApiResult<()> {
        // The shape first: it bounds the work the rest does.
        self.check_limits(limits)?;
        self.validate()
    }
}

impl Check for CompletionRequest {
    fn check(&self, limits: &RequestLimits) -> ApiResult<()> {
        self.validate()?;
        self.check_limits(limits)
    }
}

impl Check for EmbeddingRequest {
    fn check(&self, _limits: &RequestLimits) -> ApiResult<()> {
        self.validate()
    }
}

impl<T: Check> Valid<T> {
    pub fn new(request: T, limits: &RequestLimits) -> ApiResult<Self> {
        request.check(limits)?;
        Ok(Self(request))
    }

    pub fn get(&self) -> &T {
        &self.0
    }
}

/// How the model is had.
#[derive(Clone, Copy)]
pub enum Load {
    /// Loaded if need be; the caller waits.
    Wait,
    /// Loaded if need be; meanwhile the stream carries progress comments
    /// (clients and proxies see a live connection).
    Report,
    /// Only a model resident now: background work never loads one.
    Resident,
}

/// Which of the model's layers run.
#[derive(Clone, Copy)]
pub enum Stages {
    /// The whole pipeline: budgets, memory, cache, thinking, engine.
    All,
    /// Cache, thinking and engine: what cache precompute runs.
    Core,
}

/// Answers a client's chat request through its router or its model.
pub async fn generate(state: &AppState, request: Valid<ChatRequest>) -> ApiResult<ChatResponse> {
    state.ready()?;
    let mut request = request.0;
    let max_bytes = state.config.limits.max_image_bytes;
    super::images::fetch_urls(&state.config.images, max_bytes, &mut request).await?;
    let span = tracing::Span::current();
    if let Some(router) = state.experts.get(request.model.as_deref()) {
        span.record("model", router.config.name.as_str());
        let slot = state.admit()?;
        return Ok(super::experts::answer(router, state, request)
            .await?
            .hold(slot));
    }
    let spec = state
        .registry
        .resolve_for(request.model.as_deref(), ModelKind::Llm)
        .await?;
    span.record("model", spec.id.as_str());
    let slot = state.admit()?;
    let load = if request.is_stream() {
        Load::Report
    } else {
        Load::Wait
    };
    let answer = on_model(&state.registry, spec, request, load, Stages::All).await?;
    Ok(answer.hold(slot))
}

/// The model a request names, loaded just in time, outside the chat
/// pipeline (text completions, embeddings, tokenizing, rendering a
/// prompt), of `kind` when the use needs one; routers route chat only.
pub async fn model(
    state: &AppState,
    name: Option<&str>,
    ttl: Option<u64>,
    kind: Option<ModelKind>,
) -> ApiResult<Lease> {
    model_with(state, name, ttl, kind, &mut None, Manage::Denied).await
}

/// The same, for a request that chose `adapters` (see [`Spec::serving`]),
/// by a caller who may or may not build a merged model of its own.
pub async fn model_with(
    state: &AppState,
    name: Option<&str>,
    ttl: Option<u64>,
    kind: Option<ModelKind>,
    adapters: &mut Option<Vec<AdapterChoice>>,
    manage: Manage,
) -> ApiResult<Lease> {
    state.ready()?;
    if let Some(router) = state.experts.get(name) {
        return Err(ApiError::invalid(
            "model",
            format!(
                "`{}` routes chat completions only; name a model.",
                router.config.name
            ),
        ));
    }
    let spec = match kind {
        Some(kind) => state.registry.resolve_for(name, kind).await?,
        None => state.registry.resolve(name).await?,
    }
    .serving(adapters)?;
    state
        .registry
        .acquire_spec(spec, Origin::Request { ttl }, manage)
        .await
}

/// Background work (cache precompute) on a resident model's core layers.
pub async fn background(registry: &Arc<Registry>, request: ChatRequest) -> ApiResult<ChatResponse> {
    let spec = registry.resolve(request.model.as_deref()).await?;
    on_model(registry, spec, request, Load::Resident, Stages::Core).await
}

/// Runs `request` on one model, held until its answer has been read.
pub async fn on_model(
    registry: &Arc<Registry>,
    spec: Arc<Spec>,
    mut request: ChatRequest,
    load: Load,
    stages: Stages,
) -> ApiResult<ChatResponse> {
    // The adapters a name gives go to the field; an adapter the model
    // lacks is refused before anything loads.
    request.adapters = registry.adapters(request.model.as_deref(), request.adapters.take());
    let spec = spec.serving(&mut request.adapters)?;
    // One name per model, so that the cache sees one request.
    request.model = Some(spec.id.clone());
    let origin = Origin::Request { ttl: request.ttl };
    let manage = Manage::from_grant(request.context.manage_models);
    let lease = match load {
        Load::Resident => registry.loaded(&spec.id).ok_or_else(|| {
            ApiError::unavailable("The model is not loaded.").with_code(ErrorCode::ModelNotLoaded)
        })?,
        Load::Report if !registry.is_loaded_with(&spec.id, request.context_length) => {
            // Refusals as the HTTP status, before the stream starts.
            registry
                .admissible(&spec, request.context_length, manage, "context_length")
                .await?;
            let chunks = while_loading(registry.clone(), spec, origin, request, manage);
            return Ok(ChatResponse::new(chunks));
        }
        Load::Report | Load::Wait => {
            registry
                .acquire_with(spec, origin, request.context_length, manage)
                .await?
        }
    };
    let service = match stages {
        Stages::All => lease.pipeline.service.clone(),
        Stages::Core => lease.pipeline.core.clone(),
    };
    Ok(service.oneshot(request).await?.hold(lease))
}

/// Load progress as SSE comments every second, then the answer, with the
/// model held to its end.
fn while_loading(
    registry: Arc<Registry>,
    spec: Arc<Spec>,
    origin: Origin,
    request: ChatRequest,
    manage: Manage,
) -> ferrite_engine::ChatStream {
    let id = spec.id.clone();
    async_stream::stream! {
        let acquire = registry.acquire_with(spec, origin, request.context_length, manage);
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
            Ok(lease) => match lease.pipeline.service.clone().oneshot(request).await {
                Ok(answer) => Ok(answer.hold(lease)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match answer {
            Ok(answer) => {
                let (_, mut chunks) = answer.into_parts();
                while let Some(item) = chunks.next().await {
                    yield item;
                }
            }
            Err(e) => yield Err(e),
        }
    }
    .boxed()
}

/// A text completion (the legacy API): the same road, with the tenant's
/// budgets charged as in the chat pipeline. Routers route chat only.
pub async fn complete(
    state: &AppState,
    caller: &Identity,
    request: Valid<CompletionRequest>,
) -> ApiResult<(Vec<(String, String)>, CompletionStream)> {
    let tenant = caller.tenant.as_str();
    let mut request = request.0;
    request.adapters = state
        .registry
        .adapters(request.model.as_deref(), request.adapters.take());
    let lease = model_with(
        state,
        request.model.as_deref(),
        request.ttl,
        Some(ModelKind::Llm),
        &mut request.adapters,
        Manage::from_grant(caller.holds(MANAGE_MODELS)),
    )
    .await?;
    tracing::Span::current().record("model", lease.id());
    let mut admission = match &lease.pipeline.budgets {
        Some(budgets) => {
            let (prompt, completion) = budgets.completion_reservation(&request).await;
            Some(budgets.admit(tenant, prompt, completion).await?)
        }
        None => None,
    };
    let headers = admission
        .as_mut()
        .map(|a| std::mem::take(&mut a.headers))
        .unwrap_or_default();
    let slot = state.admit().map_err(|e| e.with_headers(headers.clone()))?;
    let stream = match lease.engine.complete(request).await {
        Ok(stream) => stream,
        Err(e) => return Err(e.with_headers(headers)),
    };
    let stream = stream
        .map(move |item| {
            if let (Ok(c), Some(a)) = (&item, admission.as_mut()) {
                a.observe(c.usage, c.choices.len());
            }
            item
        })
        .boxed();
    Ok((headers, hold(stream, (lease, slot))))
}

/// Embeddings: the same road, with the tenant's budgets charged for the
/// input tokens. Answers with the budget headers and OpenAI's list.
pub async fn embed(
    state: &AppState,
    tenant: &str,
    request: Valid<EmbeddingRequest>,
) -> ApiResult<(Vec<(String, String)>, EmbeddingResponse)> {
    let request = request.0;
    let lease = model(
        state,
        request.model.as_deref(),
        request.ttl,
        Some(ModelKind::Embeddings),
    )
    .await?;
    tracing::Span::current().record("model", lease.id());
    let items = request.input.items();
    // About four bytes a token until the model has counted.
    let estimate: usize = items
        .iter()
        .map(|i| match i {
            InputRef::Text(t) => t.len() / 4 + 2,
            InputRef::Tokens(ids) => ids.len(),
        })
        .sum();
    let inputs: Vec<EmbedInput> = items
        .into_iter()
        .map(|i| match i {
            InputRef::Text(t) => EmbedInput::Text(t.to_owned()),
            InputRef::Tokens(ids) => EmbedInput::Tokens(ids.to_vec()),
        })
        .collect();
    let mut admission = match &lease.pipeline.budgets {
        Some(budgets) => Some(budgets.admit(tenant, estimate as u64, 0).await?),
        None => None,
    };
    let headers = admission
        .as_mut()
        .map(|a| std::mem::take(&mut a.headers))
        .unwrap_or_default();
    let _slot = state.admit().map_err(|e| e.with_headers(headers.clone()))?;
    let embedded = match lease.engine.embed(inputs).await {
        Ok(e) => e,
        Err(e) => return Err(e.with_headers(headers)),
    };
    let tokens = u32::try_from(embedded.prompt_tokens).unwrap_or(u32::MAX);
    if let Some(a) = admission.as_mut() {
        a.observe(
            Some(Usage {
                prompt_tokens: tokens,
                completion_tokens: 0,
                total_tokens: tokens,
                ..Default::default()
            }),
            1,
        );
    }
    let size = embedded.vectors.first().map_or(0, Vec::len);
    if let Some(wanted) = request.dimensions.filter(|&d| d as usize != size) {
        return Err(ApiError::invalid(
            "dimensions",
            format!(
                "`{}` makes {size}-dimensional embeddings and cannot shorten them to {wanted}.",
                lease.id()
            ),
        )
        .with_headers(headers));
    }
    let data = embedded
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| Embedding {
            object: "embedding".into(),
            embedding: Vector::encode(v, request.encoding_format),
            index,
        })
        .collect();
    let response = EmbeddingResponse {
        object: "list".into(),
        data,
        model: lease.id().to_string(),
        usage: EmbeddingUsage {
            prompt_tokens: embedded.prompt_tokens,
            total_tokens: embedded.prompt_tokens,
        },
    };
    Ok((headers, response))
}
