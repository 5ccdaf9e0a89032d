//! Predictive precompute: configured prompts (and, optionally, popular cached
//! answers) are generated while the server is idle and regenerated before
//! their cache entries expire, so clients asking them get hits.

use std::sync::Arc;
use std::time::Duration;

use ferrite_openapi::chat::ChatRequest;
use ferrite_openapi::ErrorCode;
use futures::StreamExt;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::cache::{key, ResponseCache, Scope};
use crate::service::ChatService;

/// Whether live traffic leaves the engine free.
pub type Idle = Arc<dyn Fn() -> bool + Send + Sync>;

pub struct Precompute {
    /// The cache layer over the engine, without the per-tenant layers.
    pub service: ChatService,
    pub cache: Arc<ResponseCache>,
    /// Requests as the server would see them (model resolved).
    pub requests: Vec<ChatRequest>,
    pub popular_after_hits: u64,
    pub idle: Idle,
}

impl Precompute {
    /// Prepares a configured request: deterministic, its answer for every
    /// tenant (the operator wrote it; no tenant's prompt is revealed).
    pub fn prepare(mut req: ChatRequest, model: &str) -> ChatRequest {
        if req.temperature.is_none() && req.seed.is_none() {
            req.temperature = Some(0.0);
        }
        req.model = Some(model.to_string());
        req.context.shared_cache = true;
        req
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        // Refresh once an entry has lived 80% of its time.
        let stale_after = self.cache.ttl.mul_f64(0.8);
        let tick = (self.cache.ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            for req in &self.requests {
                let fresh = self
                    .cache
                    .get(&key(req, &Scope::Shared))
                    .is_some_and(|e| e.created.elapsed() < stale_after);
                if !fresh {
                    self.compute(req.clone()).await;
                }
            }
            if self.popular_after_hits > 0 {
                for (_, entry) in self.cache.older_than(stale_after) {
                    let hits = entry.hits.load(std::sync::atomic::Ordering::Relaxed);
                    if hits >= self.popular_after_hits {
                        // Refreshed in the scope it was answered in.
                        let mut req = (*entry.request).clone();
                        match &entry.scope {
                            Scope::Shared => req.context.shared_cache = true,
                            Scope::Tenant(t) => req.context.tenant.clone_from(t),
                        }
                        self.compute(req).await;
                    }
                }
            }
            tokio::time::sleep(tick).await;
        }
    }

    /// Generates `req` into the cache once nothing live is running.
    async fn compute(&self, mut req: ChatRequest) {
        while !(self.idle)() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        req.context.precompute = true;
        let started = std::time::Instant::now();
        let result = match self.service.clone().oneshot(req).await {
            Ok(resp) => {
                let mut stream = resp.stream;
                let mut failed = None;
                while let Some(item) = stream.next().await {
                    if let Err(e) = item {
                        failed = Some(e);
                    }
                }
                failed.map_or(Ok(()), Err)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                metrics::counter!("ferrite:cache_precomputed_total").increment(1);
                info!(
                    secs = started.elapsed().as_secs_f32(),
                    "precomputed a cached answer"
                );
            }
            // Its model is not resident: precompute waits rather than load it.
            Err(e) if e.code == Some(ErrorCode::ModelNotLoaded) => {
                debug!("precompute skipped: its model is not loaded")
            }
            // A configured prompt the model refuses stays a config problem.
            Err(e) => warn!(error = %e.message, "precompute failed"),
        }
    }
}
