//! The chat pipeline stack. Feature layers are added here, outermost first.

use std::sync::Arc;

use ferrite_engine::Engine;
use ferrite_middleware::{ChatService, EngineService};
use tower::ServiceBuilder;

use crate::config::Config;

pub fn build(engine: Arc<dyn Engine>, _config: &Config) -> ChatService {
    ChatService::new(ServiceBuilder::new().service(EngineService::new(engine)))
}
