//! Turning mistral.rs logprob entries into OpenAI ones, with the exact
//! values ferrite's sampler recorded (see `logits::Sampler`).

use std::f32::consts::LN_10;

use ferrite_openapi::common::{TokenLogprob, TopLogprob};
use mistralrs::core::ResponseLogprob;

use super::logits::Choices;

/// How one sequence reports logprobs: the sampler's record and how many
/// alternatives the client asked for.
#[derive(Clone)]
pub struct LogprobReport {
    pub record: Choices,
    pub top: usize,
}

/// A token's own text. The engine trims the first token's leading space from
/// `token`; `bytes` holds the untrimmed decode.
pub fn token_text(lp: &ResponseLogprob) -> String {
    lp.bytes
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_else(|| lp.token.clone())
}

impl LogprobReport {
    /// The recorded log-probability of `id`, skipping steps the engine sent
    /// no chunk for (a token that ended mid UTF-8 character).
    fn take(&self, id: Option<u32>) -> Option<f32> {
        let mut record = self.record.lock().ok()?;
        while let Some((tid, lp)) = record.pop_front() {
            if Some(tid) == id {
                return Some(lp);
            }
        }
        None
    }

    pub fn token(&self, lp: &ResponseLogprob) -> TokenLogprob {
        // The sampler lifted the chosen token to the top of the engine's list.
        let chosen = lp.top_logprobs.first().map(|t| t.token);
        let chosen_lp = self.take(chosen).unwrap_or(lp.logprob * LN_10);
        let mut top: Vec<TopLogprob> = lp
            .top_logprobs
            .iter()
            .map(|t| {
                let token = t.bytes.clone().unwrap_or_else(|| t.token.to_string());
                TopLogprob {
                    bytes: Some(token.as_bytes().to_vec()),
                    token,
                    // The engine reports log10 of the probabilities it was given.
                    logprob: if Some(t.token) == chosen {
                        chosen_lp
                    } else {
                        t.logprob * LN_10
                    },
                }
            })
            .collect();
        top.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
        top.truncate(self.top);
        let text = token_text(lp);
        TokenLogprob {
            bytes: Some(text.as_bytes().to_vec()),
            token: text,
            logprob: chosen_lp,
            top_logprobs: top,
        }
    }
}
