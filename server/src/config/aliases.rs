//! `[[aliases]]`: a versioned alias, its base model and how candidates are
//! promoted.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasConfig {
    pub name: String,
    /// Version 1: the base model, never removed.
    pub model: String,
    /// How much a candidate's mean score (0 to 1) must exceed the current
    /// version's to be promoted.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Versions kept besides the first and the current one.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_threshold() -> f64 {
    0.05
}

fn default_keep() -> usize {
    5
}
