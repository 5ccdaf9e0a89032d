//! The chat pipeline stack, outermost first: budgets, memory, cache,
//! thinking, engine.
//! Each layer is there only when its config section turns it on.

use std::sync::Arc;

use ferrite_engine::Engine;
use ferrite_middleware::budget::{BudgetLayer, Budgets};
use ferrite_middleware::cache::{CacheLayer, ResponseCache};
use ferrite_middleware::memory::MemoryLayer;
use ferrite_middleware::memory_store::MemoryStore;
use ferrite_middleware::precompute::{Idle, Precompute};
use ferrite_middleware::thinking::ThinkingLayer;
use ferrite_middleware::{ChatService, EngineService};
use tower::{Layer, ServiceBuilder};
use tracing::warn;

use crate::config::Config;

pub struct Pipeline {
    pub service: ChatService,
    /// The cache's background worker, when it has anything to do.
    pub precompute: Option<Precompute>,
    /// The tenants' budgets, also charged by text completions.
    pub budgets: Option<Arc<Budgets>>,
}

pub fn build(
    engine: Arc<dyn Engine>,
    config: &Config,
    memory: Option<Arc<dyn MemoryStore>>,
    idle: Idle,
) -> Pipeline {
    let model = engine.info().id.clone();
    let generate =
        ThinkingLayer::new(config.thinking.clone()).layer(EngineService::new(engine.clone()));
    let mut precompute = None;
    let core = if config.cache.enabled {
        let cache = ResponseCache::new(&config.cache);
        let layer = CacheLayer::new(cache.clone());
        let requests: Vec<_> = config
            .cache
            .precompute
            .iter()
            .map(|r| Precompute::prepare(r.clone(), &model))
            .filter(|r| match r.validate() {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e.message, "skipping an invalid cache.precompute request");
                    false
                }
            })
            .collect();
        let popular_after_hits = config.cache.refresh_popular_after_hits;
        if !requests.is_empty() || popular_after_hits > 0 {
            precompute = Some(Precompute {
                service: ChatService::new(layer.layer(generate.clone())),
                cache,
                requests,
                popular_after_hits,
                idle,
            });
        }
        ChatService::new(layer.layer(generate))
    } else {
        ChatService::new(generate)
    };
    let memory = config
        .memory
        .enabled
        .then(|| MemoryLayer::new(config.memory.clone(), memory, engine.clone()));
    let budgets = config
        .budgets
        .enabled()
        .then(|| Budgets::new(config.budgets.clone(), engine.clone()));
    let service = ChatService::new(
        ServiceBuilder::new()
            .option_layer(budgets.clone().map(BudgetLayer::new))
            .option_layer(memory)
            .service(core),
    );
    Pipeline {
        service,
        precompute,
        budgets,
    }
}
