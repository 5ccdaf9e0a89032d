//! Per-request logits processors. mistral.rs 0.8.1 neither applies
//! `logit_bias` nor takes a per-request seed, so both are done here; a counter
//! also gives exact completion-token usage for every choice.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use mistralrs::{CustomLogitsProcessor, DType, Result, Tensor};

use crate::pick::{softmax, Pick};
use crate::thinking::Control;

/// Counts sampled tokens (the engine runs processors once per sampled
/// token), up to `max_len`: mistral.rs samples one token past a `max_len` of
/// 1 and then drops it.
pub struct TokenCounter {
    pub count: Arc<AtomicU32>,
    pub max_len: usize,
}

impl CustomLogitsProcessor for TokenCounter {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> Result<Tensor> {
        let max = self.max_len;
        let _ = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                ((n as usize) < max).then_some(n + 1)
            });
        Ok(logits.clone())
    }
}

fn to_f32_vec(logits: &Tensor) -> Result<Vec<f32>> {
    logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

fn from_f32_vec(values: Vec<f32>, like: &Tensor) -> Result<Tensor> {
    let n = values.len();
    Tensor::from_vec(values, n, like.device())?
        .reshape(like.shape())?
        .to_dtype(like.dtype())
}

/// OpenAI `logit_bias`: added to the raw logits of the given token ids.
pub struct LogitBias(pub HashMap<u32, f32>);

impl CustomLogitsProcessor for LogitBias {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> Result<Tensor> {
        let mut v = to_f32_vec(logits)?;
        for (&id, &bias) in &self.0 {
            if let Some(x) = v.get_mut(id as usize) {
                *x += bias;
            }
        }
        from_f32_vec(v, logits)
    }
}

/// Per sequence: the token ferrite's sampler chose at each step and its
/// natural-log probability, for the stream to report as `logprobs`.
pub type Choices = Arc<Mutex<VecDeque<(u32, f32)>>>;

/// Ferrite's own sampler, used when a request has a `seed`, wants
/// `logprobs` (mistral.rs 0.8.1 has no per-request seed and reports log10 of
/// unnormalised values) or has a thinking budget (which may replace the
/// token picked). The engine is then run greedily on its output:
/// - without logprobs, only the chosen token stays finite;
/// - with logprobs, the output is the probability of every token, with the
///   chosen one lifted above 1 so that it is the argmax; the engine's top-k
///   list then names the real alternatives, and the chosen token's exact
///   log-probability is kept in `record`.
pub struct Sampler {
    pick: Mutex<Pick>,
    record: Option<Choices>,
    /// Thinking budgets: may replace the token picked.
    steer: Option<Mutex<Control>>,
}

impl Sampler {
    pub fn new(pick: Pick, record: Option<Choices>) -> Self {
        Self {
            pick: Mutex::new(pick),
            record,
            steer: None,
        }
    }

    pub fn steered(mut self, control: Control) -> Self {
        self.steer = Some(Mutex::new(control));
        self
    }
}

impl CustomLogitsProcessor for Sampler {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> Result<Tensor> {
        let v = to_f32_vec(logits)?;
        let mut chosen = self.pick.lock().map_or(0, |mut p| p.pick(&v));
        if let Some(control) = &self.steer {
            if let Ok(mut c) = control.lock() {
                let steered = c.steer(chosen as u32) as usize;
                // A token table that disagrees with the model is ignored.
                if steered < v.len() {
                    chosen = steered;
                }
            }
        }
        let out = match &self.record {
            None => {
                let mut out = vec![f32::NEG_INFINITY; v.len()];
                out[chosen] = 0.0;
                out
            }
            Some(record) => {
                let (probs, log_sum) = softmax(&v);
                // log-softmax directly: exact even where the probability underflows.
                let logprob = v[chosen] - log_sum;
                if let Ok(mut r) = record.lock() {
                    r.push_back((chosen as u32, logprob));
                }
                let mut probs = probs;
                probs[chosen] += 1.0;
                probs
            }
        };
        from_f32_vec(out, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, logits: &[f32], steps: usize, top_p: Option<f64>) -> Vec<usize> {
        let mut s = Pick::new(seed, 1.0, None, top_p, None);
        (0..steps).map(|_| s.pick(logits)).collect()
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits = [1.0, 2.0, 0.5, 1.5, 0.0];
        assert_eq!(run(7, &logits, 50, None), run(7, &logits, 50, None));
        assert_ne!(run(7, &logits, 50, None), run(8, &logits, 50, None));
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let logits = [10.0, 0.0, 0.0, 0.0];
        assert!(run(1, &logits, 100, Some(0.5)).iter().all(|&i| i == 0));
    }

    #[test]
    fn records_natural_log_probabilities() {
        let record: Choices = Default::default();
        let s = Sampler::new(Pick::new(0, 0.0, None, None, None), Some(record.clone()));
        let t = Tensor::new(&[0.0f32, 2.0_f32.ln(), 0.0], &mistralrs::Device::Cpu).unwrap();
        let out = s.apply(&t, &[1]).unwrap().to_vec1::<f32>().unwrap();
        // Greedy picks token 1 (p = 0.5); it becomes the argmax, others keep p.
        assert!((out[1] - 1.5).abs() < 1e-6 && (out[0] - 0.25).abs() < 1e-6);
        let (id, lp) = record.lock().unwrap()[0];
        assert_eq!(id, 1);
        assert!((lp - 0.5f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn bias_is_added() {
        let t = Tensor::new(&[0.0f32, 1.0, 2.0], &mistralrs::Device::Cpu).unwrap();
        let out = LogitBias(HashMap::from([(0, 5.0), (99, 1.0)]))
            .apply(&t, &[1])
            .unwrap();
        assert_eq!(out.to_vec1::<f32>().unwrap(), vec![5.0, 1.0, 2.0]);
    }
}
