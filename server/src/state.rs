//! Shared server state: the config, the model once loaded, admission control.

use std::sync::{Arc, OnceLock};

use ferrite_engine::{Engine, GaugeGuard};
use ferrite_middleware::budget::Budgets;
use ferrite_middleware::memory_store::MemoryStore;
use ferrite_middleware::ChatService;
use ferrite_openapi::{ApiError, ApiResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

/// What exists once the model has loaded.
pub struct Ready {
    pub engine: Arc<dyn Engine>,
    pub pipeline: ChatService,
    /// Budgets for what does not go through the chat pipeline.
    pub budgets: Option<Arc<Budgets>>,
}

/// A request's place among those in flight, held until its answer is sent.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _in_flight: GaugeGuard,
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    ready: Arc<OnceLock<Ready>>,
    slots: Arc<Semaphore>,
    /// The conversation memory store, when memory is on and it opened.
    pub memory: Option<Arc<dyn MemoryStore>>,
}

impl AppState {
    pub fn new(config: Config, memory: Option<Arc<dyn MemoryStore>>) -> Self {
        let slots = Arc::new(Semaphore::new(config.http.max_in_flight.max(1)));
        Self {
            config: Arc::new(config),
            ready: Arc::new(OnceLock::new()),
            slots,
            memory,
        }
    }

    /// Whether no client request is running (background work may).
    pub fn idle(&self) -> bool {
        self.slots.available_permits() == self.config.http.max_in_flight.max(1)
    }

    pub fn set_ready(&self, ready: Ready) {
        // Loaded once per process; a second call would be a bug, not input.
        let _ = self.ready.set(ready);
    }

    /// The loaded model, or 503 while it is still loading.
    pub fn ready(&self) -> ApiResult<&Ready> {
        self.ready
            .get()
            .ok_or_else(|| ApiError::unavailable("The model is still loading; retry shortly."))
    }

    /// A slot for one generating request, or 503 when the server is full.
    pub fn admit(&self) -> ApiResult<Slot> {
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("ferrite:requests_rejected_total", "reason" => "overloaded")
                .increment(1);
            ApiError::unavailable("The server is overloaded; retry shortly.")
                .with_code("server_overloaded")
        })?;
        Ok(Slot {
            _permit: permit,
            _in_flight: GaugeGuard::new("ferrite:requests_in_flight"),
        })
    }

    /// Resolves the request's `model`: absent or empty selects the loaded one.
    pub fn check_model(&self, ready: &Ready, model: Option<&str>) -> ApiResult<()> {
        match model.map(str::trim).filter(|m| !m.is_empty()) {
            None => Ok(()),
            Some(m) if ready.engine.info().answers_to(m) => Ok(()),
            Some(m) => Err(ApiError::model_not_found(m)),
        }
    }
}
