//! `keep_alive`: how long the model a request loads stays, or that it
//! unloads once answered (`0`), or never does (negative), as in Ollama.

use std::sync::Arc;

use ferrite_openapi::ollama::{keep_alive_secs, KeepAlive};
use ferrite_openapi::{ApiError, ApiResult};

use crate::http::extract::Caller;
use crate::registry::{Registry, MANAGE_MODELS};

/// What `keep_alive` asks of the registry.
pub struct Keep {
    /// The TTL of a model this request loads; `Some(0)` is none at all.
    pub ttl: Option<u64>,
    pub unload: bool,
}

impl Keep {
    /// Reads `keep_alive`; unloading needs `models:manage`.
    pub fn of(keep_alive: Option<&KeepAlive>, caller: &Caller) -> ApiResult<Self> {
        let Some(keep_alive) = keep_alive else {
            return Ok(Self {
                ttl: None,
                unload: false,
            });
        };
        let secs = keep_alive_secs(keep_alive).map_err(|e| ApiError::invalid("keep_alive", e))?;
        let keep = match secs {
            // Negative: the registry's TTL 0, never unloaded.
            None => Self {
                ttl: Some(0),
                unload: false,
            },
            Some(0) => Self {
                ttl: None,
                unload: true,
            },
            Some(secs) => Self {
                ttl: Some(secs),
                unload: false,
            },
        };
        if keep.unload {
            caller.0.require(MANAGE_MODELS)?;
        }
        Ok(keep)
    }

    /// Unloads `model` when the returned guard drops, if asked to.
    pub fn unload_after(
        &self,
        registry: &Arc<Registry>,
        model: Option<String>,
    ) -> Option<UnloadAfter> {
        self.unload
            .then_some(model)
            .flatten()
            .map(|id| UnloadAfter {
                registry: registry.clone(),
                id,
            })
    }
}

/// `keep_alive: 0`: unloads the model when dropped, so also when the
/// client leaves mid-answer. The unload waits for the leases still held,
/// this request's included.
pub struct UnloadAfter {
    registry: Arc<Registry>,
    id: String,
}

impl Drop for UnloadAfter {
    fn drop(&mut self) {
        let (registry, id) = (self.registry.clone(), std::mem::take(&mut self.id));
        tokio::spawn(async move {
            let _ = registry.unload(&id).await;
        });
    }
}
