//! Thinking controls: the `thinking` request extension, OpenAI's
//! `reasoning_effort`, and what a multi-round response reports.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::Usage;
use crate::error::{ApiError, ApiResult};

/// Most `Wait` insertions one answer may ask for.
pub const MAX_WAITS: u32 = 64;
/// Longest wait string accepted, in bytes.
const MAX_WAIT_LEN: usize = 64;

/// ferrite extension: budget forcing (s1, Muennighoff et al. 2025) and
/// multi-round thinking (Think Twice). Thinking text is returned in
/// `reasoning_content`; the answer in `content`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThinkingOptions {
    /// At most this many thinking tokens; then the end-of-thinking delimiter
    /// is forced and the answer follows. 0 gives an empty thinking block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// At least this many thinking tokens: an attempt to end thinking
    /// earlier is replaced by `wait`, at most `max_waits` times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tokens: Option<u32>,
    /// Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 64)]
    pub max_waits: Option<u32>,
    /// Default `Wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64)]
    pub wait: Option<String>,
    /// Answer this many times, each round re-answering with the previous
    /// round's answer (without its reasoning); 1 = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub rounds: Option<u32>,
    /// List each round's answer in the response's `ferrite.rounds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_rounds: Option<bool>,
}

impl ThinkingOptions {
    /// Whether the answer gets a thinking block (a budget is set).
    pub fn thinks(&self) -> bool {
        self.max_tokens.is_some() || self.min_tokens.is_some()
    }

    pub fn rounds(&self) -> u32 {
        self.rounds.unwrap_or(1)
    }

    pub fn max_waits(&self) -> u32 {
        self.max_waits.unwrap_or(8)
    }

    pub fn wait(&self) -> &str {
        self.wait.as_deref().unwrap_or("Wait")
    }

    pub fn validate(&self) -> ApiResult<()> {
        if let (Some(min), Some(max)) = (self.min_tokens, self.max_tokens) {
            if min > max {
                return Err(ApiError::invalid(
                    "thinking.min_tokens",
                    format!(
                        "`thinking.min_tokens` ({min}) is above `thinking.max_tokens` ({max})."
                    ),
                ));
            }
        }
        if self.max_waits.is_some_and(|k| k > MAX_WAITS) {
            return Err(ApiError::invalid(
                "thinking.max_waits",
                format!("`thinking.max_waits` must be at most {MAX_WAITS}."),
            ));
        }
        if let Some(w) = &self.wait {
            if w.trim().is_empty() || w.len() > MAX_WAIT_LEN {
                return Err(ApiError::invalid(
                    "thinking.wait",
                    format!("`thinking.wait` must be 1 to {MAX_WAIT_LEN} bytes of text."),
                ));
            }
        }
        if self.rounds == Some(0) {
            return Err(ApiError::invalid(
                "thinking.rounds",
                "`thinking.rounds` must be at least 1.",
            ));
        }
        Ok(())
    }
}

/// OpenAI's `reasoning_effort`, mapped to thinking budgets by configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    None,
    Minimal,
    Low,
    Medium,
    High,
}

/// One round of a multi-round answer (`thinking.return_rounds`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoundReport {
    pub answer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    pub usage: Usage,
}
