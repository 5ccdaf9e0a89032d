//! Shared server state: the config, the model registry, the expert
//! routers, admission control.

pub mod experts;
pub mod files;

use std::sync::Arc;

use ferrite_engine::GaugeGuard;
use ferrite_middleware::alias_store::AliasStore;
use ferrite_middleware::auth::Authenticator;
use ferrite_middleware::conversation_store::ConversationStore;
use ferrite_middleware::memory_store::MemoryStore;
use ferrite_middleware::response_store::ResponseStore;
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::downloads::{Downloads, KeyOf};
use crate::registry::Registry;
use crate::versions::Versions;
use experts::Experts;
use files::FileStore;

/// A request's place among those in flight, held until its answer is sent.
pub struct Place {
    _permit: OwnedSemaphorePermit,
    _in_flight: GaugeGuard,
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub experts: Arc<Experts>,
    places: Arc<Semaphore>,
    /// Open connections (HTTP and SDK sockets), up to `http.max_connections`.
    pub connections: Arc<Semaphore>,
    /// The conversation memory store, when memory is on and it opened.
    pub memory: Option<Arc<dyn MemoryStore>>,
    /// Stored Responses API responses, in the same database (whether or not
    /// memory is on), when it opened.
    pub responses: Option<Arc<dyn ResponseStore>>,
    /// The same store as `memory`, whether or not memory is on: the
    /// orchestrator API keeps its conversations there.
    pub exchanges: Option<Arc<dyn MemoryStore>>,
    /// Versioned aliases, their evaluations and rollbacks.
    pub versions: Arc<Versions>,
    /// API keys and JWTs, when authentication is on: the SDK sockets
    /// check their auth packet against it.
    pub auth: Option<Arc<Authenticator>>,
    /// Models being fetched from the Hub.
    pub downloads: Arc<Downloads>,
    /// The web app's conversations, in the same database, when it opened.
    pub conversations: Option<Arc<dyn ConversationStore>>,
    /// Files LM Studio's SDK clients prepared (images for their chats).
    pub sdk_files: Arc<FileStore>,
}

/// The databases the server keeps: one file or server, two uses.
#[derive(Clone, Default)]
pub struct Stores {
    pub memory: Option<Arc<dyn MemoryStore>>,
    pub responses: Option<Arc<dyn ResponseStore>>,
    pub exchanges: Option<Arc<dyn MemoryStore>>,
    pub aliases: Option<Arc<dyn AliasStore>>,
    pub conversations: Option<Arc<dyn ConversationStore>>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        registry: Arc<Registry>,
        experts: Arc<Experts>,
        stores: Stores,
        auth: Option<Arc<Authenticator>>,
        downloads: Arc<Downloads>,
    ) -> Self {
        let places = Arc::new(Semaphore::new(config.http.max_in_flight.max(1)));
        let connections = Arc::new(Semaphore::new(config.http.max_connections.max(1)));
        let versions = Versions::new(config.aliases.clone(), stores.aliases, registry.clone());
        Self {
            versions,
            config,
            registry,
            experts,
            places,
            connections,
            memory: stores.memory,
            exchanges: stores.exchanges,
            responses: stores.responses,
            conversations: stores.conversations,
            auth,
            downloads,
            sdk_files: Arc::default(),
        }
    }

    /// The key the registry lists a downloaded model file under.
    pub fn key_of(&self) -> KeyOf {
        let registry = self.registry.clone();
        Arc::new(move |path| {
            let registry = registry.clone();
            Box::pin(async move { registry.key_for(&path).await })
        })
    }

    /// Whether no client request is running (background work may).
    pub fn idle(&self) -> bool {
        self.places.available_permits() == self.config.http.max_in_flight.max(1)
    }

    /// 503 until the startup model has loaded.
    pub fn ready(&self) -> ApiResult<()> {
        if self.registry.is_ready() {
            Ok(())
        } else {
            Err(ApiError::unavailable(
                "The model is still loading; retry shortly.",
            ))
        }
    }

    /// A place for one more open connection, if the server has one.
    pub fn connection(&self) -> Option<OwnedSemaphorePermit> {
        self.connections.clone().try_acquire_owned().ok()
    }

    /// A slot for one generating request, or 503 when the server is full.
    pub fn admit(&self) -> ApiResult<Place> {
        let permit = self.places.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("ferrite:requests_rejected_total", "reason" => "overloaded")
                .increment(1);
            ApiError::unavailable("The server is overloaded; retry shortly.")
                .with_code(ErrorCode::ServerOverloaded)
        })?;
        Ok(Place {
            _permit: permit,
            _in_flight: GaugeGuard::new("ferrite:requests_in_flight"),
        })
    }
}
