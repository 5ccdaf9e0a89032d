//! `/health` and `/ready`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The process is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// The model is loaded and answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: String,
    /// The loaded model's id.
    pub model: String,
}
