//! Memory-augmented prompts: before generation, the tenant's most relevant
//! past exchanges are injected into the system message (within a token
//! budget); after a completed answer, the exchange is stored. A store that
//! fails or is slow is skipped, never an error for the client.
//!
//! The outcome (`Outcome::memory`) becomes `x-ferrite-memory-used: N` (or
//! `x-ferrite-memory: unavailable`); the body carries `ferrite.memory`.

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferrite_engine::{ChatStream, Engine};
use ferrite_openapi::chat::{
    last_user_text, ChatMessage, ChatRequest, ContentPart, MemoryReport, MessageContent, Role,
};
use ferrite_openapi::memory::Memory;
use ferrite_openapi::ApiError;
use futures::future::BoxFuture;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service, ServiceExt};
use tracing::warn;

use crate::embedder::Embedder;
use crate::memory_store::{MemoryStore, NewMemory};
use crate::service::{take_ready, ChatResponse, MemoryUse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    pub enabled: bool,
    /// The SQLite file (default: `memory.db` in the data directory).
    pub path: Option<PathBuf>,
    /// A PostgreSQL URL (`postgres://user:password@host/db`): memory lives
    /// there instead of the SQLite file, shared by every replica.
    pub url: Option<String>,
    /// Most tokens of past exchanges injected into one prompt.
    pub max_context_tokens: usize,
    /// Candidates fetched from the store before the token budget applies.
    pub max_results: usize,
    /// A store slower than this is skipped for the request.
    pub timeout_ms: u64,
    /// An embedding model (a registry id): past exchanges are then ranked
    /// by meaning as well as by words.
    pub embedding_model: Option<String>,
    /// Cosine similarity a past prompt needs to count as about the query.
    pub min_similarity: f32,
    /// How much feedback scores reorder recalled exchanges, 0 to 1: a
    /// relevance is multiplied by `1 - w + 2w * score` (unscored: 0.5), so
    /// at 1 an exchange scored 0 is never injected before another.
    pub feedback_weight: f64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            path: None,
            url: None,
            max_context_tokens: 512,
            max_results: 8,
            timeout_ms: 1000,
            embedding_model: None,
            min_similarity: 0.4,
            feedback_weight: 0.5,
        }
    }
}

const PREAMBLE: &str = "Relevant memory from earlier conversations with this user \
(most relevant first; use it only if it helps):";

pub struct MemoryShared {
    config: MemoryConfig,
    /// `None` when the store could not be opened: memory is off, loudly.
    store: Option<Arc<dyn MemoryStore>>,
    engine: Arc<dyn Engine>,
    embedder: Option<Arc<dyn Embedder>>,
}

#[derive(Clone)]
pub struct MemoryLayer {
    shared: Arc<MemoryShared>,
}

impl MemoryLayer {
    pub fn new(
        config: MemoryConfig,
        store: Option<Arc<dyn MemoryStore>>,
        engine: Arc<dyn Engine>,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Self {
        Self {
            shared: Arc::new(MemoryShared {
                config,
                store,
                engine,
                embedder,
            }),
        }
    }
}

impl<S> Layer<S> for MemoryLayer {
    type Service = MemoryService<S>;

    fn layer(&self, inner: S) -> MemoryService<S> {
        MemoryService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MemoryService<S> {
    inner: S,
    shared: Arc<MemoryShared>,
}

/// Whether the conversation already carries this exchange (clients resend
/// their history; injecting it again would only repeat it).
fn already_present(messages: &[ChatMessage], memory: &Memory) -> bool {
    messages.iter().any(|m| match &m.content {
        Some(MessageContent::Text(t)) => t == &memory.prompt,
        _ => false,
    })
}

fn entry(m: &Memory) -> String {
    format!(
        "- User: {}\n  Assistant: {}\n",
        m.prompt.trim(),
        m.answer.trim()
    )
}

/// Puts the memory block into the system message, creating one if needed.
fn inject(messages: &mut Vec<ChatMessage>, block: &str) {
    match messages.first_mut() {
        Some(m) if matches!(m.role, Role::System | Role::Developer) => match &mut m.content {
            Some(MessageContent::Text(t)) => *t = format!("{t}\n\n{block}"),
            Some(MessageContent::Parts(parts)) => parts.push(ContentPart::Text {
                text: block.to_string(),
            }),
            None => m.content = Some(MessageContent::Text(block.to_string())),
        },
        _ => messages.insert(0, ChatMessage::text(Role::System, block)),
    }
}

impl MemoryShared {
    /// The query's embedding, when memory compares by meaning; without one
    /// (the model failed or took too long) words alone rank.
    async fn meaning(&self, query: &str) -> Option<Vec<f32>> {
        let embedder = self.embedder.as_ref()?;
        let timeout = Duration::from_millis(self.config.timeout_ms.max(1000) * 5);
        match tokio::time::timeout(timeout, embedder.embed(vec![query.to_string()])).await {
            Ok(Ok(mut v)) => v.pop(),
            Ok(Err(e)) => {
                warn!(error = %e.message, "memory: embedding failed; ranking by words");
                None
            }
            Err(_) => {
                warn!("memory: embedding timed out; ranking by words");
                None
            }
        }
    }

    /// The memories to inject, within the token budget, and their block.
    async fn recall(
        &self,
        store: &dyn MemoryStore,
        req: &ChatRequest,
        query: &str,
        meaning: Option<&[f32]>,
    ) -> Result<(Vec<i64>, String), String> {
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let started = std::time::Instant::now();
        let meaning = meaning.map(|m| (m, self.config.min_similarity));
        let mut found = tokio::time::timeout(
            timeout,
            store.search(&req.context.tenant, query, meaning, self.config.max_results),
        )
        .await
        .map_err(|_| format!("search took over {}ms", self.config.timeout_ms))?
        .map_err(|e| e.to_string())?;
        metrics::histogram!("ferrite:memory_store_seconds", "op" => "search")
            .record(started.elapsed().as_secs_f64());
        weigh_by_feedback(&mut found, self.config.feedback_weight);
        let mut ids = Vec::new();
        let mut body = String::new();
        let mut used = self
            .engine
            .count_tokens(PREAMBLE)
            .await
            .map_err(|e| e.message)?;
        let mut seen = std::collections::HashSet::new();
        for m in found.iter().filter(|m| !already_present(&req.messages, m)) {
            let text = entry(m);
            // The same exchange asked again (and answered from the cache) is
            // stored again; injecting it twice would only spend the budget.
            if !seen.insert(text.clone()) {
                continue;
            }
            let tokens = self
                .engine
                .count_tokens(&text)
                .await
                .map_err(|e| e.message)?;
            if used + tokens > self.config.max_context_tokens {
                continue;
            }
            used += tokens;
            ids.push(m.id);
            body.push_str(&text);
        }
        Ok((ids, format!("{PREAMBLE}\n<memory>\n{body}</memory>")))
    }
}

/// Reorders recalled exchanges by relevance times their feedback factor.
fn weigh_by_feedback(found: &mut [Memory], weight: f64) {
    let w = weight.clamp(0.0, 1.0);
    if w == 0.0 {
        return;
    }
    let weighted = |m: &Memory| {
        let score = m.feedback.as_ref().map_or(0.5, |f| f.score);
        m.score.unwrap_or(0.0) * (1.0 - w + 2.0 * w * score)
    };
    found.sort_by(|a, b| weighted(b).total_cmp(&weighted(a)));
}

/// Stores the exchange once the answer is complete, before the last chunk
/// goes out: a client that asks again right after sees it remembered.
fn remember(
    stream: ChatStream,
    store: Arc<dyn MemoryStore>,
    mut memory: NewMemory,
    timeout: Duration,
) -> ChatStream {
    let mut finished = false;
    stream
        .then(move |item| {
            let mut save = None;
            if let Ok(chunk) = &item {
                for c in chunk.choices.iter().filter(|c| c.index == 0) {
                    if let Some(t) = &c.delta.content {
                        memory.answer.push_str(t);
                    }
                    finished |= c.finish_reason.is_some();
                }
                if let (Some(u), true) = (chunk.usage, finished) {
                    memory.prompt_tokens = u.prompt_tokens;
                    memory.completion_tokens = u.completion_tokens;
                    save = Some((store.clone(), memory.clone()));
                }
            }
            async move {
                if let Some((store, memory)) = save {
                    let started = std::time::Instant::now();
                    match tokio::time::timeout(timeout, store.insert(memory)).await {
                        Ok(Ok(_)) => {
                            metrics::histogram!("ferrite:memory_store_seconds", "op" => "insert")
                                .record(started.elapsed().as_secs_f64())
                        }
                        Ok(Err(e)) => warn!(error = %e, "could not store the exchange in memory"),
                        Err(_) => warn!("storing the exchange in memory timed out"),
                    }
                }
                item
            }
        })
        .boxed()
}

impl<S> Service<ChatRequest> for MemoryService<S>
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

    fn call(&mut self, mut req: ChatRequest) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        let shared = self.shared.clone();
        Box::pin(async move {
            let wanted = shared.config.enabled
                && req.memory != Some(false)
                && !req.context.no_memory
                && !req.context.precompute;
            let query = last_user_text(&req.messages);
            let (Some(store), Some(query), true) = (shared.store.clone(), query, wanted) else {
                let mut resp = inner.oneshot(req).await?;
                resp.outcome.memory = match (shared.config.enabled, &shared.store) {
                    (true, None) => Some(MemoryUse::Unavailable),
                    (true, Some(_)) => Some(MemoryUse::Used(0)),
                    (false, _) => None,
                };
                return Ok(resp);
            };
            let meaning = shared.meaning(&query).await;
            let recalled = shared
                .recall(store.as_ref(), &req, &query, meaning.as_deref())
                .await;
            let (ids, block, available) = match recalled {
                Ok((ids, block)) => (ids, block, true),
                Err(e) => {
                    warn!(error = %e, "memory unavailable; answering without it");
                    (Vec::new(), String::new(), false)
                }
            };
            if !ids.is_empty() {
                inject(&mut req.messages, &block);
            }
            let memory = NewMemory {
                tenant: req.context.tenant.clone(),
                conversation: req.context.conversation.clone(),
                model: req.model.clone().unwrap_or_default(),
                prompt: query,
                answer: String::new(),
                prompt_tokens: 0,
                completion_tokens: 0,
                embedding: meaning,
            };
            let report = MemoryReport {
                used: ids.len(),
                context: (req.context.debug && !ids.is_empty()).then_some(block),
                ids,
            };
            let mut resp = inner.oneshot(req).await?;
            // Every completed exchange is the tenant's own, cache hit or not.
            // Past the store's own busy timeout, so a lock shows as such.
            let timeout = Duration::from_millis(shared.config.timeout_ms.max(500) * 2);
            resp.stream = remember(resp.stream, store, memory, timeout);
            resp.outcome.memory = Some(if available {
                MemoryUse::Used(report.used)
            } else {
                MemoryUse::Unavailable
            });
            resp.extension.memory = Some(report);
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_store::SqliteStore;
    use crate::service::EngineService;
    use ferrite_engine::scripted::ScriptedEngine;

    fn ask(text: &str, tenant: &str) -> ChatRequest {
        let mut r = ChatRequest {
            messages: vec![ChatMessage::text(Role::User, text)],
            ..ChatRequest::default()
        };
        r.context.tenant = tenant.into();
        r.context.debug = true;
        r
    }

    #[tokio::test]
    async fn remembers_and_recalls_per_tenant() {
        let dir = std::env::temp_dir().join(format!("ferrite-memlayer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn MemoryStore> =
            Arc::new(SqliteStore::open(&dir.join("m.db"), Duration::from_secs(1)).unwrap());
        let engine = Arc::new(ScriptedEngine::new("Noted, Whiskers it is."));
        let config = MemoryConfig {
            enabled: true,
            ..MemoryConfig::default()
        };
        let layer = MemoryLayer::new(config, Some(store.clone()), engine.clone(), None);
        let svc = layer.layer(EngineService::new(engine.clone()));

        let first = svc
            .clone()
            .oneshot(ask("My cat is called Whiskers.", "a"))
            .await;
        let first = first.unwrap();
        assert_eq!(first.outcome.memory, Some(MemoryUse::Used(0)));
        let _ = first.stream.collect::<Vec<_>>().await;

        let later = svc
            .clone()
            .oneshot(ask("What is my cat called?", "a"))
            .await;
        let later = later.unwrap();
        assert_eq!(later.outcome.memory, Some(MemoryUse::Used(1)));
        let context = later.extension.memory.and_then(|m| m.context).unwrap();
        assert!(context.contains("Whiskers"), "{context}");
        let seen = engine.seen();
        let system = &seen[1].messages[0];
        assert_eq!(system.role, Role::System);

        let other = svc
            .clone()
            .oneshot(ask("What is my cat called?", "b"))
            .await;
        assert_eq!(other.unwrap().outcome.memory, Some(MemoryUse::Used(0)));

        let mut off = ask("What is my cat called?", "a");
        off.memory = Some(false);
        let off = svc.clone().oneshot(off).await.unwrap();
        assert_eq!(off.outcome.memory, Some(MemoryUse::Used(0)));
        assert_eq!(engine.seen()[3].messages.len(), 1);
    }
}
