//! Versioned aliases (`[[aliases]]`): a name, such as `assistant`, whose
//! current version (a model) answers the requests that name it; an ordered
//! history of versions kept in the store (the first, the base model, is
//! never removed; the newest `keep` are); evaluations (`eval.rs`) that make
//! a candidate current only when it wins by `threshold`; rollback. Every
//! replica reads the current versions again every few seconds, so a
//! promotion made on one is followed by all.

use std::sync::Arc;
use std::time::Duration;

use ferrite_middleware::alias_store::{AliasState, AliasStore, Decision};
use ferrite_middleware::memory_store::StoreError;
use ferrite_openapi::{ApiError, ApiResult};
use tracing::{info, warn};

use crate::config::aliases::AliasConfig;
use crate::registry::Registry;

/// How often the current versions are read again from the store.
const SYNC_EVERY: Duration = Duration::from_secs(5);

pub struct Versions {
    configs: Vec<AliasConfig>,
    store: Option<Arc<dyn AliasStore>>,
    registry: Arc<Registry>,
}

fn failed(e: StoreError) -> ApiError {
    warn!(error = %e, "alias store request failed");
    ApiError::unavailable(format!("The alias store is unavailable: {e}."))
}

impl Versions {
    pub fn new(
        configs: Vec<AliasConfig>,
        store: Option<Arc<dyn AliasStore>>,
        registry: Arc<Registry>,
    ) -> Arc<Self> {
        Arc::new(Self {
            configs,
            store,
            registry,
        })
    }

    pub fn configs(&self) -> &[AliasConfig] {
        &self.configs
    }

    pub fn config(&self, name: &str) -> ApiResult<&AliasConfig> {
        self.configs
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ApiError::not_found(format!("No alias named `{name}` is configured.")))
    }

    fn store(&self) -> ApiResult<&Arc<dyn AliasStore>> {
        self.store.as_ref().ok_or_else(|| {
            ApiError::unavailable("The alias store could not be opened; see the server log.")
        })
    }

    /// The alias's versions, the registry told which model is current.
    pub async fn state(&self, name: &str) -> ApiResult<AliasState> {
        let config = self.config(name)?;
        let state = self
            .store()?
            .alias(name, &config.model)
            .await
            .map_err(failed)?;
        self.follow(name, &state);
        Ok(state)
    }

    fn follow(&self, name: &str, state: &AliasState) {
        if let Some(current) = state.current() {
            self.registry.set_alias(name, &current.model);
        }
    }

    /// Reads every alias's current version now, then every few seconds.
    pub fn spawn_sync(self: &Arc<Self>) {
        if self.configs.is_empty() {
            return;
        }
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_EVERY);
            loop {
                tick.tick().await;
                let Some(this) = this.upgrade() else { return };
                for c in &this.configs {
                    // The store being down leaves the last known version.
                    let _ = this.state(&c.name).await;
                }
            }
        });
    }

    pub async fn promote(&self, name: &str, model: &str) -> ApiResult<AliasState> {
        let keep = self.config(name)?.keep;
        let state = self
            .store()?
            .promote(name, model, keep)
            .await
            .map_err(failed)?;
        self.follow(name, &state);
        Ok(state)
    }

    /// The version before the current one becomes current; 409 when the
    /// current one is the first.
    pub async fn rollback(&self, name: &str) -> ApiResult<AliasState> {
        let before = self.state(name).await?;
        let Some(state) = self.store()?.rollback(name).await.map_err(failed)? else {
            return Err(ApiError::new(
                409,
                "invalid_request_error",
                format!("`{name}` is at its first version; there is nothing to roll back to."),
            ));
        };
        self.follow(name, &state);
        let model = |s: &AliasState| s.current().map(|v| v.model.clone()).unwrap_or_default();
        self.record(Decision {
            alias: name.into(),
            action: "rollback".into(),
            candidate: model(&state),
            current: model(&before),
            candidate_score: None,
            current_score: None,
            report: String::new(),
            created_at: ferrite_openapi::common::unix_now() as i64,
        })
        .await;
        Ok(state)
    }

    /// Logs, counts and keeps a decision (a store failure is logged only:
    /// the decision itself has been made).
    pub async fn record(&self, decision: Decision) {
        info!(
            alias = %decision.alias,
            action = %decision.action,
            candidate = %decision.candidate,
            current = %decision.current,
            candidate_score = decision.candidate_score,
            current_score = decision.current_score,
            "alias decision"
        );
        metrics::counter!("ferrite:alias_decisions_total",
            "alias" => decision.alias.clone(), "action" => decision.action.clone())
        .increment(1);
        if let Ok(store) = self.store() {
            if let Err(e) = store.record(decision).await {
                warn!(error = %e, "alias decision not stored");
            }
        }
    }

    pub async fn decisions(&self, name: &str) -> ApiResult<Vec<Decision>> {
        self.store()?.decisions(name, 20).await.map_err(failed)
    }
}
