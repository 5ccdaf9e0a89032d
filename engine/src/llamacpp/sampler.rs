//! Choosing one sequence's next token from llama.cpp's logits: logit bias,
//! penalties, the grammar, temperature and the filters (with a per-request
//! seed), thinking budgets, and the logprobs the client asked for.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use ferrite_openapi::common::{TokenLogprob, TopLogprob};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::pick::Pick;
use crate::prep::Sampling;
use crate::thinking::Control;
use crate::vocab::Vocab;

/// How far back the repeat penalty looks, as llama.cpp's `--repeat-last-n`.
const REPEAT_WINDOW: usize = 64;

pub struct Sampler {
    pick: Pick,
    knobs: Sampling,
    bias: Option<Arc<HashMap<u32, f32>>>,
    grammar: Option<LlamaSampler>,
    control: Option<Control>,
    /// How often each generated token appeared (presence/frequency penalties).
    counts: HashMap<u32, u32>,
    vocab: Arc<Vocab>,
}

/// A chosen token and, when asked for, its logprob entry.
pub struct Choice {
    pub token: u32,
    pub logprob: Option<TokenLogprob>,
}

impl Sampler {
    pub fn new(
        seed: u64,
        knobs: Sampling,
        bias: Option<Arc<HashMap<u32, f32>>>,
        grammar: Option<LlamaSampler>,
        control: Option<Control>,
        vocab: Arc<Vocab>,
    ) -> Self {
        // As on mistral.rs: greedy unless asked, but a seed or logprobs
        // alone mean sampling at temperature 1 (ferrite's own sampler there).
        let own = knobs.seed.is_some() || knobs.top_logprobs.is_some();
        let default_t = if own && control.is_none() { 1.0 } else { 0.0 };
        Self {
            pick: Pick::new(
                seed,
                knobs.temperature.unwrap_or(default_t),
                knobs.top_k.filter(|&k| k > 0).map(|k| k as usize),
                knobs.top_p,
                knobs.min_p,
            ),
            knobs,
            bias,
            grammar,
            control,
            counts: HashMap::new(),
            vocab,
        }
    }

    pub fn has_grammar(&self) -> bool {
        self.grammar.is_some()
    }

    /// Picks the next token; `context` is the sequence so far.
    pub fn choose(&mut self, logits: &[f32], context: &[u32]) -> Choice {
        let adjusted = self.bias.is_some()
            || self.grammar.is_some()
            || self.knobs.repeat_penalty.is_some_and(|p| p != 1.0)
            || self.knobs.presence_penalty.is_some_and(|p| p != 0.0)
            || self.knobs.frequency_penalty.is_some_and(|p| p != 0.0);
        let mut v = if adjusted {
            Cow::Owned(logits.to_vec())
        } else {
            Cow::Borrowed(logits)
        };
        if adjusted {
            self.adjust(v.to_mut(), context);
        }
        let mut token = self.pick.pick(&v) as u32;
        if let Some(c) = &mut self.control {
            let steered = c.steer(token);
            if (steered as usize) < v.len() {
                token = steered;
            }
        }
        if let Some(g) = &mut self.grammar {
            // Only a steered token could be refused, and thinking budgets are
            // refused with grammars before a request gets here.
            let _ = g.try_accept(LlamaToken(token as i32));
        }
        *self.counts.entry(token).or_default() += 1;
        let logprob = self
            .knobs
            .top_logprobs
            .map(|top| self.logprob(&v, token, top as usize));
        Choice { token, logprob }
    }

    /// Logit bias, penalties and the grammar, in place.
    fn adjust(&mut self, v: &mut [f32], context: &[u32]) {
        if let Some(bias) = &self.bias {
            for (&id, &b) in bias.iter() {
                if let Some(x) = v.get_mut(id as usize) {
                    *x += b;
                }
            }
        }
        self.penalize(v, context);
        if let Some(g) = &mut self.grammar {
            let mut arr = LlamaTokenDataArray::from_iter(
                v.iter()
                    .enumerate()
                    .map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0)),
                false,
            );
            arr.apply_sampler(g);
            for d in &arr.data {
                if let Some(x) = v.get_mut(d.id().0 as usize) {
                    *x = d.logit();
                }
            }
        }
    }

    /// Whether the grammar is complete: an end-of-generation token is the
    /// only way it may go on.
    pub fn grammar_done(&mut self, eog: u32) -> bool {
        let Some(g) = &mut self.grammar else {
            return false;
        };
        let mut arr = LlamaTokenDataArray::new(
            vec![LlamaTokenData::new(LlamaToken(eog as i32), 0.0, 0.0)],
            false,
        );
        arr.apply_sampler(g);
        arr.data.first().is_some_and(|d| d.logit().is_finite())
    }

    fn penalize(&self, v: &mut [f32], context: &[u32]) {
        if let Some(p) = self.knobs.repeat_penalty.filter(|&p| p != 1.0 && p > 0.0) {
            let start = context.len().saturating_sub(REPEAT_WINDOW);
            let mut seen = std::collections::HashSet::new();
            for &t in &context[start..] {
                if seen.insert(t) {
                    if let Some(x) = v.get_mut(t as usize) {
                        *x = if *x > 0.0 { *x / p } else { *x * p };
                    }
                }
            }
        }
        let presence = self.knobs.presence_penalty.unwrap_or(0.0);
        let frequency = self.knobs.frequency_penalty.unwrap_or(0.0);
        if presence != 0.0 || frequency != 0.0 {
            for (&t, &n) in &self.counts {
                if let Some(x) = v.get_mut(t as usize) {
                    *x -= presence + frequency * n as f32;
                }
            }
        }
    }

    fn text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.vocab.bytes(id)).into_owned()
    }

    /// The chosen token's natural-log probability under the model's
    /// (biased) distribution, and the `top` most likely alternatives.
    fn logprob(&self, v: &[f32], chosen: u32, top: usize) -> TokenLogprob {
        let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = max + v.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
        let lp = |id: u32| {
            v.get(id as usize)
                .map_or(f32::NEG_INFINITY, |&l| l - log_sum)
        };
        let mut ids: Vec<u32> = (0..v.len() as u32).collect();
        let top_logprobs = if top == 0 {
            vec![]
        } else {
            let k = top.min(ids.len());
            ids.select_nth_unstable_by(k - 1, |&a, &b| v[b as usize].total_cmp(&v[a as usize]));
            ids.truncate(k);
            ids.sort_by(|&a, &b| v[b as usize].total_cmp(&v[a as usize]));
            ids.iter()
                .map(|&id| {
                    let token = self.text(id);
                    TopLogprob {
                        bytes: Some(self.vocab.bytes(id).to_vec()),
                        token,
                        logprob: lp(id),
                    }
                })
                .collect()
        };
        TokenLogprob {
            token: self.text(chosen),
            bytes: Some(self.vocab.bytes(chosen).to_vec()),
            logprob: lp(chosen),
            top_logprobs,
        }
    }
}
