//! A Prometheus gauge held up while something lives: sequences waiting for
//! an engine slot, and sequences running; and the slot itself.

use std::sync::Arc;

use ferrite_openapi::{ApiError, ApiResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Adds one to the gauge `name` until dropped.
pub struct GaugeGuard(&'static str);

impl GaugeGuard {
    pub fn new(name: &'static str) -> Self {
        metrics::gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// One of a model's `max_seqs` sequence slots, held while the sequence runs.
pub struct SequencePermit {
    _permit: OwnedSemaphorePermit,
    _running: GaugeGuard,
}

impl SequencePermit {
    /// Waits (counted in `ferrite:requests_waiting`) for a free slot.
    pub async fn acquire(slots: &Arc<Semaphore>) -> ApiResult<Self> {
        let waiting = GaugeGuard::new("ferrite:requests_waiting");
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("The engine has stopped."))?;
        drop(waiting);
        Ok(Self {
            _permit: permit,
            _running: GaugeGuard::new("ferrite:requests_running"),
        })
    }
}
