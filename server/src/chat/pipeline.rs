//! One model's chat pipeline, read top to bottom in `build` (outermost
//! first). Each layer is there only when its config section turns it on. What must outlive a model (the response cache, the tenants'
//! budgets, the memory store) is shared by every model's pipeline.

use std::sync::{Arc, OnceLock};

use ferrite_engine::Engine;
use ferrite_middleware::budget::{BudgetLayer, Budgets};
use ferrite_middleware::budget_store::SharedLedger;
use ferrite_middleware::cache::{CacheLayer, ResponseCache};
use ferrite_middleware::context::ContextLayer;
use ferrite_middleware::embedder::Embedder;
use ferrite_middleware::memory::MemoryLayer;
use ferrite_middleware::memory_store::MemoryStore;
use ferrite_middleware::thinking::ThinkingLayer;
use ferrite_middleware::{ChatService, EngineService};
use tower::ServiceBuilder;

use crate::chat::embedder::{ModelEmbedder, RegistrySlot};
use crate::config::Config;
use crate::registry::{Pipeline, Registry};

pub struct SharedLayers {
    config: Arc<Config>,
    pub cache: Option<Arc<ResponseCache>>,
    memory: Option<Arc<dyn MemoryStore>>,
    /// Memory's embedding model, when it ranks by meaning too.
    memory_embedder: Option<Arc<dyn Embedder>>,
    /// Set once the registry exists (see `bind`).
    registry: RegistrySlot,
    /// Created with the first model: it counts tokens with a model's tokenizer.
    budgets: OnceLock<Arc<Budgets>>,
    /// Budgets kept in PostgreSQL (`budgets.url`), shared by replicas.
    ledger: Option<Arc<SharedLedger>>,
}

impl SharedLayers {
    pub fn new(
        config: Arc<Config>,
        memory: Option<Arc<dyn MemoryStore>>,
        ledger: Option<Arc<SharedLedger>>,
    ) -> Self {
        let cache = config
            .cache
            .enabled
            .then(|| ResponseCache::new(&config.cache));
        let registry = RegistrySlot::default();
        let memory_embedder = config.memory.embedding_model.clone().map(|model| {
            Arc::new(ModelEmbedder {
                registry: registry.clone(),
                model,
            }) as Arc<dyn Embedder>
        });
        Self {
            config,
            cache,
            memory,
            memory_embedder,
            registry,
            budgets: OnceLock::new(),
            ledger,
        }
    }

    /// Points the layers that embed at the registry, once it is made.
    pub fn bind(&self, registry: &Arc<Registry>) {
        let _ = self.registry.set(Arc::downgrade(registry));
    }

    fn budgets(&self, engine: &Arc<dyn Engine>) -> Option<Arc<Budgets>> {
        let config = &self.config.budgets;
        config.enabled().then(|| {
            let root = self
                .budgets
                .get_or_init(|| Budgets::new(config.clone(), self.ledger.clone(), engine.clone()));
            root.share(engine.clone())
        })
    }
}

pub fn build(engine: Arc<dyn Engine>, shared: &SharedLayers) -> Pipeline {
    let config = &shared.config;
    let core = ChatService::new(
        ServiceBuilder::new()
            .option_layer(shared.cache.clone().map(CacheLayer::new))
            .layer(ContextLayer::new(
                engine.clone(),
                config.long_context.clone(),
                config.limits.max_tokenize_bytes,
            ))
            .layer(ThinkingLayer::new(config.thinking.clone()))
            .service(EngineService::new(engine.clone())),
    );
    let memory = config.memory.enabled.then(|| {
        MemoryLayer::new(
            config.memory.clone(),
            shared.memory.clone(),
            engine.clone(),
            shared.memory_embedder.clone(),
        )
    });
    let budgets = shared.budgets(&engine);
    let service = ChatService::new(
        ServiceBuilder::new()
            .option_layer(budgets.clone().map(BudgetLayer::new))
            .option_layer(memory)
            .service(core.clone()),
    );
    Pipeline {
        service,
        core,
        budgets,
    }
}
