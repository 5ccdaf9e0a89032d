//! The registry's embedding models, for what compares texts by meaning:
//! memory retrieval (through the middleware's [`Embedder`]) and the expert
//! routers' examples. The model loads just in time, like any other.

use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use ferrite_engine::EmbedInput;
use ferrite_middleware::embedder::Embedder;
use ferrite_openapi::models::ModelKind;
use ferrite_openapi::{ApiError, ApiResult};

use crate::registry::{Manage, Origin, Registry};

/// Embeds `texts` with the registry's embedding model `model`.
pub async fn embed_with(
    registry: &Arc<Registry>,
    model: &str,
    texts: Vec<String>,
) -> ApiResult<Vec<Vec<f32>>> {
    let spec = registry
        .resolve_for(Some(model), ModelKind::Embeddings)
        .await?;
    let lease = registry
        .acquire_spec(spec, Origin::Request { ttl: None }, Manage::Denied)
        .await?;
    let inputs = texts.into_iter().map(EmbedInput::Text).collect();
    Ok(lease.engine.embed(inputs).await?.vectors)
}

/// The registry, once it exists: pipelines are built by the registry, so
/// what they hold can only point back at it after it is made.
pub type RegistrySlot = Arc<OnceLock<Weak<Registry>>>;

/// One embedding model as the middleware's [`Embedder`].
pub struct ModelEmbedder {
    pub registry: RegistrySlot,
    pub model: String,
}

#[async_trait]
impl Embedder for ModelEmbedder {
    async fn embed(&self, texts: Vec<String>) -> ApiResult<Vec<Vec<f32>>> {
        let registry = self
            .registry
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| ApiError::unavailable("The server is starting or stopping."))?;
        embed_with(&registry, &self.model, texts).await
    }
}
