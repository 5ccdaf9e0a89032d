//! Versioned aliases (`/api/v1/aliases`): a name whose current version
//! (a model) answers requests, evaluations that promote a candidate only
//! when it wins by a threshold, and rollback.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AliasList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<AliasInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AliasInfo {
    pub name: String,
    /// The model answering requests for the alias.
    pub model: String,
    pub current: i64,
    /// Oldest first; version 1 is never removed.
    pub versions: Vec<VersionInfo>,
    /// How much a candidate's score must exceed the current one's.
    pub threshold: f64,
    /// Versions kept besides the first and the current.
    pub keep: usize,
    /// The latest decisions, newest first.
    pub decisions: Vec<DecisionInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    pub version: i64,
    pub model: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionInfo {
    /// `promote`, `keep`, `evaluate` or `rollback`.
    pub action: String,
    pub candidate: String,
    pub current: String,
    pub candidate_score: Option<f64>,
    pub current_score: Option<f64>,
    pub created_at: i64,
}

/// `POST /api/v1/aliases/{name}/evaluate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The model to compare with the current version.
    pub candidate: String,
    /// The evaluation set (`ferrite eval` reads it from a JSONL file).
    pub items: Vec<EvalItem>,
    /// Make the candidate current if it beats the current version by the
    /// alias's threshold.
    #[serde(default)]
    pub promote: bool,
}

/// One evaluation item: a prompt, and a reference answer or a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalItem {
    pub prompt: String,
    /// The exact answer expected (whitespace at the ends aside), when no
    /// `check` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// The answer's limit (default 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The answer equals `value` (else the item's `reference`).
    ExactMatch {
        #[serde(default)]
        value: Option<String>,
    },
    /// The answer matches the regular expression.
    Regex { pattern: String },
    /// The answer is valid JSON.
    Json,
    /// A judge model scores the answer from 0 to 10 against a rubric.
    Judge { model: String, rubric: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvalReport {
    pub alias: String,
    pub candidate: ModelScore,
    pub current: ModelScore,
    pub threshold: f64,
    /// `promote`, `keep` (it did not win by the threshold) or `evaluate`
    /// (no promotion was asked for).
    pub decision: String,
    /// The alias's current version after the decision.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelScore {
    pub model: String,
    /// The items' mean score, 0 to 1.
    pub score: f64,
    pub items: Vec<ItemScore>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemScore {
    pub answer: String,
    pub score: f64,
}
