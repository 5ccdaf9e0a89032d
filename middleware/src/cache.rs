//! Response cache: deterministic requests (temperature 0, or a `seed`) are
//! answered from memory when the same canonical request was answered before,
//! and identical requests in flight together share one generation.
//!
//! Entries and coalescing are per tenant: one tenant's answers never serve
//! another (whose hit timing would tell that the prompt was sent), unless
//! `share_across_tenants` says so. The server's own precomputed answers are
//! shared. Every response gets its own id, hit or not.
//!
//! The outcome (`Outcome::cache`) becomes `x-ferrite-cache: hit|miss|bypass`
//! and, on hits, `x-ferrite-cache-source: cache|precomputed|coalesced`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferrite_engine::ChatStream;
use ferrite_openapi::chat::{CallContext, ChatCompletionChunk, ChatRequest};
use ferrite_openapi::common::unix_now;
use ferrite_openapi::ApiError;
use futures::future::BoxFuture;
use futures::StreamExt;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower::{Layer, Service, ServiceExt};

use crate::replay::Recording;
use crate::service::{take_ready, CacheOutcome, ChatResponse, HitSource};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Bound on the cached answers' size, in MiB.
    pub max_mib: u64,
    /// How long an answer stays cached.
    pub ttl_secs: u64,
    /// Chat requests answered at startup and kept fresh while idle, so that
    /// the first client asking gets a hit. Temperature 0 unless set.
    pub precompute: Vec<ChatRequest>,
    /// Also keep fresh any cached answer hit this many times (0: off).
    pub refresh_popular_after_hits: u64,
    /// Let one tenant's cached (or in-flight) answer serve another's
    /// identical request. Faster for shared prompts, but a tenant can then
    /// tell from a hit that someone sent the same prompt.
    pub share_across_tenants: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_mib: 256,
            ttl_secs: 3600,
            precompute: Vec::new(),
            refresh_popular_after_hits: 0,
            share_across_tenants: false,
        }
    }
}

pub type Key = [u8; 32];

/// Whose requests an entry may answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Scope {
    Tenant(String),
    /// Any tenant's: the server's precomputed answers, or every answer with
    /// `share_across_tenants`.
    Shared,
}

/// A finished generation, as its chunks.
pub struct Entry {
    pub chunks: Arc<Vec<ChatCompletionChunk>>,
    /// The canonical request, to compute it again.
    pub request: Arc<ChatRequest>,
    pub scope: Scope,
    pub created: Instant,
    pub precomputed: bool,
    pub hits: AtomicU64,
}

/// The cache and the generations in flight, shared by the layer and the
/// precompute worker.
pub struct ResponseCache {
    entries: Cache<Key, Arc<Entry>>,
    in_flight: Mutex<HashMap<Key, Arc<Recording>>>,
    pub ttl: Duration,
    share: bool,
}

impl ResponseCache {
    pub fn new(config: &CacheConfig) -> Arc<Self> {
        let ttl = Duration::from_secs(config.ttl_secs.max(1));
        let entries = Cache::builder()
            .max_capacity(config.max_mib.saturating_mul(1024 * 1024))
            .weigher(|_, e: &Arc<Entry>| weight(&e.chunks))
            .time_to_live(ttl)
            .build();
        Arc::new(Self {
            entries,
            in_flight: Mutex::new(HashMap::new()),
            ttl,
            share: config.share_across_tenants,
        })
    }

    /// The scope a request's answer is looked up and stored in.
    pub fn scope(&self, context: &CallContext) -> Scope {
        if self.share || context.shared_cache {
            Scope::Shared
        } else {
            Scope::Tenant(context.tenant.clone())
        }
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    /// Entries older than `age`, for refreshing.
    pub fn older_than(&self, age: Duration) -> Vec<(Key, Arc<Entry>)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.created.elapsed() >= age)
            .map(|(k, e)| (*k, e))
            .collect()
    }
}

/// Rough bytes an answer takes, for the size bound.
fn weight(chunks: &[ChatCompletionChunk]) -> u32 {
    let text: usize = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .map(|c| {
            c.delta.content.as_ref().map_or(0, String::len)
                + c.logprobs
                    .as_ref()
                    .map_or(0, |l| l.content.as_ref().map_or(0, |v| v.len() * 64))
        })
        .sum();
    u32::try_from(text + chunks.len() * 256).unwrap_or(u32::MAX)
}

/// Whether a request always gets the same answer.
pub fn deterministic(req: &ChatRequest) -> bool {
    req.temperature == Some(0.0) || req.seed.is_some()
}

/// The request with everything that cannot change the answer cleared.
pub fn canonical(req: &ChatRequest) -> ChatRequest {
    ChatRequest {
        stream: None,
        stream_options: None,
        user: None,
        cache: None,
        memory: None,
        ttl: None,
        context: Default::default(),
        ..req.clone()
    }
}

/// A hash of the scope and the canonical request's JSON.
pub fn key(req: &ChatRequest, scope: &Scope) -> Key {
    let json = serde_json::to_vec(&(scope, canonical(req))).unwrap_or_default();
    Sha256::digest(json).into()
}

/// Every choice finished and usage came: nothing was cut short.
fn complete(chunks: &[ChatCompletionChunk]) -> bool {
    let usage = chunks.iter().any(|c| c.usage.is_some());
    let mut open = std::collections::BTreeSet::new();
    for choice in chunks.iter().flat_map(|c| &c.choices) {
        if choice.finish_reason.is_some() {
            open.remove(&choice.index);
        } else {
            open.insert(choice.index);
        }
    }
    usage && open.is_empty()
}

fn replay(chunks: Arc<Vec<ChatCompletionChunk>>) -> ChatStream {
    futures::stream::iter((0..chunks.len()).map(move |i| Ok(chunks[i].clone()))).boxed()
}

/// Another response's chunks under an id and time of this response's own.
fn renamed(stream: ChatStream) -> ChatStream {
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();
    stream
        .map(move |item| {
            item.map(|mut chunk| {
                chunk.id.clone_from(&id);
                chunk.created = created;
                chunk
            })
        })
        .boxed()
}

fn count(result: &'static str, source: &'static str) {
    metrics::counter!("ferrite:cache_requests_total", "result" => result, "source" => source)
        .increment(1);
}

#[derive(Clone)]
pub struct CacheLayer {
    cache: Arc<ResponseCache>,
}

impl CacheLayer {
    pub fn new(cache: Arc<ResponseCache>) -> Self {
        Self { cache }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService {
            inner,
            cache: self.cache.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    cache: Arc<ResponseCache>,
}

impl<S> Service<ChatRequest> for CacheService<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = ApiError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = ApiError;
    type Future = BoxFuture<'static, Result<ChatResponse, ApiError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        let cache = self.cache.clone();
        let bypass = !deterministic(&req) || req.cache == Some(false) || req.context.no_store;
        if bypass {
            return Box::pin(async move {
                count("bypass", "none");
                Ok(inner.oneshot(req).await?.with_cache(CacheOutcome::Bypass))
            });
        }
        Box::pin(async move { Ok(lookup(cache, req, move |r| inner.oneshot(r))) })
    }
}

/// A hit, a share in an identical generation in flight, or a new generation.
fn lookup<F, Fut>(cache: Arc<ResponseCache>, req: ChatRequest, run: F) -> ChatResponse
where
    F: FnOnce(ChatRequest) -> Fut + Send + 'static,
    Fut: Future<Output = Result<ChatResponse, ApiError>> + Send + 'static,
{
    let scope = cache.scope(&req.context);
    let own = key(&req, &scope);
    // Looking in both places under one lock: a generation that finishes
    // meanwhile moves from one to the other atomically.
    let mut in_flight = cache.in_flight.lock();
    let fresh = req.context.no_cache || req.context.precompute;
    if !fresh {
        // The server's precomputed answers serve every tenant.
        let found = cache.entries.get(&own).or_else(|| {
            (scope != Scope::Shared)
                .then(|| key(&req, &Scope::Shared))
                .and_then(|k| cache.entries.get(&k))
        });
        if let Some(entry) = found {
            drop(in_flight);
            entry.hits.fetch_add(1, Ordering::Relaxed);
            let source = if entry.precomputed {
                HitSource::Precomputed
            } else {
                HitSource::Cache
            };
            count("hit", source.name());
            return ChatResponse::new(renamed(replay(entry.chunks.clone())))
                .with_cache(CacheOutcome::Hit(source));
        }
    }
    if let Some(stream) = in_flight.get(&own).and_then(|rec| rec.join()) {
        drop(in_flight);
        count("hit", "coalesced");
        return ChatResponse::new(renamed(stream))
            .with_cache(CacheOutcome::Hit(HitSource::Coalesced));
    }
    let rec = Recording::new();
    let stream = rec.reader();
    in_flight.insert(own, rec.clone());
    drop(in_flight);
    count("miss", "none");
    tokio::spawn(generate(cache, own, scope, req, rec, run));
    ChatResponse::new(stream).with_cache(CacheOutcome::Miss)
}

/// Runs the generation into `rec`; a complete answer is cached.
async fn generate<F, Fut>(
    cache: Arc<ResponseCache>,
    key: Key,
    scope: Scope,
    req: ChatRequest,
    rec: Arc<Recording>,
    run: F,
) where
    F: FnOnce(ChatRequest) -> Fut + Send + 'static,
    Fut: Future<Output = Result<ChatResponse, ApiError>> + Send + 'static,
{
    let precomputed = req.context.precompute;
    let request = Arc::new(canonical(&req));
    rec.record(async move { run(req).await.map(|r| r.stream) })
        .await;
    let mut in_flight = cache.in_flight.lock();
    if let Some(chunks) = rec.finished().filter(|c| complete(c)) {
        let entry = Entry {
            chunks: Arc::new(chunks),
            request,
            scope,
            created: Instant::now(),
            precomputed,
            hits: AtomicU64::new(0),
        };
        cache.entries.insert(key, Arc::new(entry));
    }
    if in_flight.get(&key).is_some_and(|r| Arc::ptr_eq(r, &rec)) {
        in_flight.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::EngineService;
    use ferrite_engine::scripted::ScriptedEngine;
    use ferrite_openapi::chat::{ChatMessage, Role};

    fn request(temperature: f64) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::text(Role::User, "hi")],
            temperature: Some(temperature),
            ..ChatRequest::default()
        }
    }

    fn from(tenant: &str) -> ChatRequest {
        let mut r = request(0.0);
        r.context.tenant = tenant.into();
        r
    }

    /// The chunks without what each response has of its own.
    fn text(chunks: &[ChatCompletionChunk]) -> Vec<ChatCompletionChunk> {
        chunks
            .iter()
            .map(|c| ChatCompletionChunk {
                id: String::new(),
                created: 0,
                ..c.clone()
            })
            .collect()
    }

    async fn ask(
        svc: &CacheService<EngineService>,
        req: ChatRequest,
    ) -> (Vec<ChatCompletionChunk>, Option<CacheOutcome>) {
        let resp = svc.clone().oneshot(req).await.unwrap();
        let chunks = resp.stream.map(|c| c.unwrap()).collect().await;
        (chunks, resp.outcome.cache)
    }

    fn hit(outcome: Option<CacheOutcome>) -> bool {
        matches!(outcome, Some(CacheOutcome::Hit(_)))
    }

    fn service(engine: &Arc<ScriptedEngine>) -> CacheService<EngineService> {
        shared_service(engine, false)
    }

    fn shared_service(engine: &Arc<ScriptedEngine>, share: bool) -> CacheService<EngineService> {
        let cache = ResponseCache::new(&CacheConfig {
            share_across_tenants: share,
            ..CacheConfig::default()
        });
        CacheLayer::new(cache).layer(EngineService::new(engine.clone()))
    }

    #[tokio::test]
    async fn deterministic_requests_hit_and_others_bypass() {
        let engine = Arc::new(ScriptedEngine::new("a b c"));
        let svc = service(&engine);
        let (first, h1) = ask(&svc, request(0.0)).await;
        // The entry lands when the generation task finishes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let streamed = ChatRequest {
            stream: Some(true),
            ..request(0.0)
        };
        let (second, h2) = ask(&svc, streamed).await;
        assert_eq!(h1, Some(CacheOutcome::Miss));
        assert!(hit(h2));
        assert_eq!(text(&first), text(&second));
        assert_ne!(first[0].id, second[0].id, "a response of its own");
        assert!(second.iter().all(|c| c.id == second[0].id));
        let (_, h3) = ask(&svc, request(0.7)).await;
        assert_eq!(h3, Some(CacheOutcome::Bypass));
        let off = ChatRequest {
            cache: Some(false),
            ..request(0.0)
        };
        let (_, h4) = ask(&svc, off).await;
        assert_eq!(h4, Some(CacheOutcome::Bypass));
        assert_eq!(engine.calls(), 3);
    }

    #[tokio::test]
    async fn concurrent_identical_requests_share_one_generation() {
        let engine = Arc::new(ScriptedEngine::new("a b c d e f"));
        let svc = service(&engine);
        let answers = futures::future::join_all((0..5).map(|_| ask(&svc, request(0.0)))).await;
        assert_eq!(engine.calls(), 1);
        let ids: std::collections::HashSet<_> = answers.iter().map(|(c, _)| &c[0].id).collect();
        assert_eq!(ids.len(), 5, "each response has its own id");
        for (chunks, _) in &answers {
            assert_eq!(text(chunks), text(&answers[0].0));
        }
    }

    #[tokio::test]
    async fn tenants_never_share_entries_or_generations_unless_configured() {
        let engine = Arc::new(ScriptedEngine::new("a b c d e f"));
        let svc = service(&engine);
        // Together: one generation per tenant, not one for both.
        let both = futures::future::join_all([ask(&svc, from("alice")), ask(&svc, from("bob"))]);
        for (_, headers) in both.await {
            assert_eq!(headers, Some(CacheOutcome::Miss));
        }
        assert_eq!(engine.calls(), 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, h) = ask(&svc, from("carol")).await;
        assert_eq!(h, Some(CacheOutcome::Miss));
        let (_, h) = ask(&svc, from("alice")).await;
        assert!(hit(h));
        assert_eq!(engine.calls(), 3);

        // Shared on purpose: another tenant's answer serves, under a new id.
        let engine = Arc::new(ScriptedEngine::new("a b c"));
        let svc = shared_service(&engine, true);
        let (first, _) = ask(&svc, from("alice")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (second, h) = ask(&svc, from("bob")).await;
        assert!(hit(h));
        assert_eq!(engine.calls(), 1);
        assert_eq!(text(&first), text(&second));
        assert_ne!(first[0].id, second[0].id);
    }

    #[tokio::test]
    async fn precomputed_answers_serve_every_tenant() {
        let engine = Arc::new(ScriptedEngine::new("open nine to five"));
        let svc = service(&engine);
        let mut pre = crate::precompute::Precompute::prepare(request(0.0), "m");
        pre.context.precompute = true;
        pre.model = None;
        let (_, h) = ask(&svc, pre).await;
        assert_eq!(h, Some(CacheOutcome::Miss));
        tokio::time::sleep(Duration::from_millis(50)).await;
        for tenant in ["alice", "bob"] {
            let (_, h) = ask(&svc, from(tenant)).await;
            assert_eq!(h, Some(CacheOutcome::Hit(HitSource::Precomputed)));
        }
        assert_eq!(engine.calls(), 1);
    }
}
