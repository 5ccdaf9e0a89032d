//! The typed seam between HTTP handlers and the engine.

use std::sync::Arc;
use std::task::{Context, Poll};

use ferrite_engine::{ChatStream, Engine};
use ferrite_openapi::chat::{ChatRequest, ResponseExtension};
use ferrite_openapi::ApiError;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use tower::util::BoxCloneSyncService;
use tower::Service;

/// A chat answer on its way out: the chunk stream, what the layers it
/// passed through did, and the body's `ferrite` field.
pub struct ChatResponse {
    pub stream: ChatStream,
    pub outcome: Outcome,
    pub extension: ResponseExtension,
}

/// What the layers did, as typed fields; they become response headers only
/// at the HTTP edge (`ChatResponse::into_parts`).
#[derive(Debug, Default)]
pub struct Outcome {
    pub cache: Option<CacheOutcome>,
    pub memory: Option<MemoryUse>,
    /// OpenAI's `x-ratelimit-*` headers from the tenant's budgets.
    pub rate_limits: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit(HitSource),
    Miss,
    /// Not cacheable (sampling) or not to be stored.
    Bypass,
}

/// Where a cache hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitSource {
    Cache,
    Precomputed,
    /// A share in an identical generation in flight.
    Coalesced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryUse {
    /// Past exchanges recalled into the prompt (maybe none).
    Used(usize),
    /// Memory is on but its store cannot be reached.
    Unavailable,
}

impl CacheOutcome {
    fn name(self) -> &'static str {
        match self {
            Self::Hit(_) => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

impl HitSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cache => "cache",
            Self::Precomputed => "precomputed",
            Self::Coalesced => "coalesced",
        }
    }
}

impl ChatResponse {
    pub fn new(stream: ChatStream) -> Self {
        Self {
            stream,
            outcome: Outcome::default(),
            extension: ResponseExtension::default(),
        }
    }

    pub fn with_cache(mut self, cache: CacheOutcome) -> Self {
        self.outcome.cache = Some(cache);
        self
    }

    /// Keeps `guard` (a model lease, an admission slot) until the answer
    /// has been read to its end or dropped.
    pub fn hold<G: Send + 'static>(mut self, guard: G) -> Self {
        self.stream = hold(self.stream, guard);
        self
    }

    /// The response headers the outcome and extension make, and the chunks
    /// with the `ferrite` extension riding on the first chunk that is not a
    /// comment.
    pub fn into_parts(self) -> (Vec<(String, String)>, ChatStream) {
        let headers = self.headers();
        let mut extension = (!self.extension.is_empty()).then_some(self.extension);
        let chunks = self
            .stream
            .map(move |item| {
                item.map(|mut c| {
                    if let Some(ext) = extension.take_if(|_| c.comment.is_none()) {
                        c.ferrite.get_or_insert_with(Default::default).merge(ext);
                    }
                    c
                })
            })
            .boxed();
        (headers, chunks)
    }

    fn headers(&self) -> Vec<(String, String)> {
        let o = &self.outcome;
        let mut h = o.rate_limits.clone();
        let mut put = |name: &str, value: String| h.push((name.into(), value));
        if let Some(cache) = o.cache {
            put("x-ferrite-cache", cache.name().into());
            if let CacheOutcome::Hit(source) = cache {
                put("x-ferrite-cache-source", source.name().into());
            }
        }
        match o.memory {
            Some(MemoryUse::Used(n)) => put("x-ferrite-memory-used", n.to_string()),
            Some(MemoryUse::Unavailable) => put("x-ferrite-memory", "unavailable".into()),
            None => {}
        }
        if let Some(c) = &self.extension.context {
            put(
                "x-ferrite-context",
                format!("{}; dropped_tokens={}", c.policy, c.dropped_tokens),
            );
        }
        if let Some(route) = &self.extension.route {
            put("x-ferrite-routed-model", route.model.clone());
            put("x-ferrite-route", route.route.clone());
        }
        h
    }
}

/// Keeps `guard` alive until `stream` has been read to its end or dropped.
pub fn hold<T: Send + 'static, G: Send + 'static>(
    stream: BoxStream<'static, T>,
    guard: G,
) -> BoxStream<'static, T> {
    stream
        .map(move |item| {
            let _guard = &guard;
            item
        })
        .boxed()
}

/// Takes the inner service that `poll_ready` readied, leaving a fresh clone
/// in its place (the tower idiom for services called from async blocks).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let fresh = inner.clone();
    std::mem::replace(inner, fresh)
}

/// The whole pipeline, type-erased so the server can hold any stack of layers.
pub type ChatService = BoxCloneSyncService<ChatRequest, ChatResponse, ApiError>;

/// The innermost service: hands the request to the engine.
#[derive(Clone)]
pub struct EngineService {
    engine: Arc<dyn Engine>,
}

impl EngineService {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self { engine }
    }
}

impl Service<ChatRequest> for EngineService {
    type Response = ChatResponse;
    type Error = ApiError;
    type Future = BoxFuture<'static, Result<ChatResponse, ApiError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        // Admission is the engine's scheduler's job; it queues beyond max_seqs.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        let engine = self.engine.clone();
        metrics::counter!("ferrite:engine_generations_total").increment(1);
        Box::pin(async move { Ok(ChatResponse::new(engine.chat(request).await?)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_engine::scripted::ScriptedEngine;
    use ferrite_openapi::aggregate::ChatAccumulator;
    use ferrite_openapi::chat::{ChatMessage, Role};
    use futures::StreamExt;
    use tower::{ServiceBuilder, ServiceExt};

    #[tokio::test]
    async fn a_layered_stack_reaches_the_engine() {
        let engine = Arc::new(ScriptedEngine::new("hello there"));
        let svc = ChatService::new(
            ServiceBuilder::new()
                .map_request(|mut r: ChatRequest| {
                    r.temperature = Some(0.0);
                    r
                })
                .service(EngineService::new(engine.clone())),
        );
        let req = ChatRequest {
            messages: vec![ChatMessage::text(Role::User, "hi")],
            ..ChatRequest::default()
        };
        let resp = svc.oneshot(req).await.unwrap();
        let mut acc = ChatAccumulator::default();
        let mut stream = resp.stream;
        while let Some(chunk) = stream.next().await {
            acc.push(&chunk.unwrap());
        }
        let out = acc.finish();
        assert_eq!(
            out.choices[0].message.content.as_deref(),
            Some("hello there")
        );
        assert_eq!(engine.calls(), 1);
        assert_eq!(engine.seen()[0].temperature, Some(0.0));
    }
}
