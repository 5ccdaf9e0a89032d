//! The configured expert routers (`[[routers]]`), by name: each one's
//! classifier and its examples' embeddings once made. How a router answers
//! is `chat::experts`.

use ferrite_middleware::route_classifier::{Classifier, RouterConfig};

pub struct ExpertRouter {
    pub config: RouterConfig,
    pub classifier: Classifier,
    /// The examples' embeddings, made on first use (with `embedding_model`).
    pub examples: tokio::sync::OnceCell<Vec<Vec<f32>>>,
}

/// Every configured router, by name.
pub struct Experts {
    routers: Vec<ExpertRouter>,
}

impl Experts {
    pub fn new(configs: &[RouterConfig]) -> anyhow::Result<Self> {
        let routers = configs
            .iter()
            .map(|c| {
                Classifier::new(c)
                    .map(|classifier| ExpertRouter {
                        config: c.clone(),
                        classifier,
                        examples: tokio::sync::OnceCell::new(),
                    })
                    .map_err(|e| anyhow::anyhow!("router `{}`: {e}", c.name))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { routers })
    }

    pub fn get(&self, name: Option<&str>) -> Option<&ExpertRouter> {
        let name = name?.trim();
        self.routers
            .iter()
            .find(|r| r.config.name.eq_ignore_ascii_case(name))
    }

    pub fn all(&self) -> &[ExpertRouter] {
        &self.routers
    }
}
